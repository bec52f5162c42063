"""The stacked hourglass network, as the original Torch code builds it.

Read against pose-hg-train ``src/models/hg.lua`` and ``src/models/layers/Residual.lua``:

* ``Residual`` is the pre-activation bottleneck BN-ReLU-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1 with an identity skip,
  or a 1x1 projection when the channel count changes. Every convolution carries a bias, as cudnn's did.
* ``Hourglass`` is the recursive block: an upper branch at the current resolution, a lower branch that max-pools,
  recurses (or, at the bottom, applies residuals), and is upsampled by nearest neighbour and added to the upper one.
* ``StackedHourglass`` = stem (7x7/2 conv, residuals, max-pool: 256 px in, 64 px out), then per stack an hourglass,
  a head (residuals, 1x1 conv-BN-ReLU, 1x1 conv to the heatmaps) and, between stacks, the sum of the stack input,
  the 1x1-remapped features and the 1x1-remapped heatmaps.

Every registered parameter takes part in every forward pass (DDP needs no ``find_unused_parameters``): the
intermediate heatmap convolutions feed the remap even when only the last stack is supervised.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Supervision = Literal["intermediate", "final", "add"]
SUPERVISION_MODES: tuple[str, ...] = ("intermediate", "final", "add")
HOURGLASS_DEPTH = 4  # 64 -> 32 -> 16 -> 8 -> 4 px, as in hg.lua


class Residual(nn.Module):
    """Pre-activation bottleneck residual (Residual.lua): the bottleneck has ``out // 2`` channels."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, mid, 1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 1),
        )
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.skip(x)


def residuals(count: int, channels: int) -> nn.Sequential:
    """``count`` residual modules at one location (the paper's ``nModules``)."""
    return nn.Sequential(*(Residual(channels, channels) for _ in range(count)))


class Hourglass(nn.Module):
    """One hourglass of ``depth`` levels; each level halves the resolution once."""

    def __init__(self, depth: int, features: int, modules: int) -> None:
        super().__init__()
        self.up1 = residuals(modules, features)
        self.pool = nn.MaxPool2d(2, 2)
        self.low1 = residuals(modules, features)
        self.low2 = Hourglass(depth - 1, features, modules) if depth > 1 else residuals(modules, features)
        self.low3 = residuals(modules, features)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: Tensor) -> Tensor:
        up1 = self.up1(x)
        low = self.low3(self.low2(self.low1(self.pool(x))))
        return up1 + self.upsample(low)


class StackedHourglass(nn.Module):
    """Stem + ``stacks`` hourglasses; ``forward`` returns every stack's heatmaps as ``(N, stacks, joints, H/4, W/4)``."""

    def __init__(
        self,
        stacks: int = 8,
        features: int = 256,
        modules: int = 1,
        joints: int = 16,
        supervision: Supervision = "intermediate",
    ) -> None:
        super().__init__()
        if supervision not in SUPERVISION_MODES:
            raise ValueError(f"supervision={supervision!r}; expected one of {SUPERVISION_MODES}")
        if stacks < 1 or modules < 1 or joints < 1:
            raise ValueError(f"stacks, modules and joints must be >= 1, got {stacks}, {modules}, {joints}")
        if features < 4 or features % 4:
            raise ValueError(f"features must be a positive multiple of 4, got {features}")
        self.stacks, self.joints, self.supervision = stacks, joints, supervision
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            Residual(64, 128),
            nn.MaxPool2d(2, 2),
            Residual(128, 128),
            Residual(128, features),
        )
        self.hourglasses = nn.ModuleList(Hourglass(HOURGLASS_DEPTH, features, modules) for _ in range(stacks))
        self.heads = nn.ModuleList(
            nn.Sequential(
                residuals(modules, features),
                nn.Conv2d(features, features, 1), nn.BatchNorm2d(features), nn.ReLU(inplace=True),
            )
            for _ in range(stacks)
        )
        self.heatmaps = nn.ModuleList(nn.Conv2d(features, joints, 1) for _ in range(stacks))
        self.remap_features = nn.ModuleList(nn.Conv2d(features, features, 1) for _ in range(stacks - 1))
        self.remap_heatmaps = nn.ModuleList(nn.Conv2d(joints, features, 1) for _ in range(stacks - 1))

    def forward(self, images: Tensor) -> Tensor:
        """``images``: (N, 3, H, W) RGB in [0, 1], H and W multiples of 64."""
        x = self.stem(images)
        outputs = []
        for i in range(self.stacks):
            features = self.heads[i](self.hourglasses[i](x))
            heatmaps = self.heatmaps[i](features)
            outputs.append(heatmaps)
            if i < self.stacks - 1:
                x = x + self.remap_features[i](features) + self.remap_heatmaps[i](heatmaps)
        return torch.stack(outputs, dim=1)

    def supervised(self, outputs: Tensor) -> Tensor:
        """The heatmaps the loss applies to, as (N, K, joints, H, W), per the supervision mode.

        ``intermediate``: every stack (the paper's default); ``final``: the last stack only; ``add``: the sum of
        all stacks (Figure 4's HG-Stacked-Add). The same tensor is what the model predicts with.
        """
        if self.supervision == "intermediate":
            return outputs
        if self.supervision == "final":
            return outputs[:, -1:]
        return outputs.sum(dim=1, keepdim=True)

    def predict(self, images: Tensor) -> Tensor:
        """Final heatmaps (N, joints, H, W): the last supervised output."""
        return self.supervised(self(images))[:, -1]


def create_model(
    stacks: int = 8,
    features: int = 256,
    modules: int = 1,
    joints: int = 16,
    supervision: Supervision = "intermediate",
) -> StackedHourglass:
    """Build the network. ``modules`` is the number of residual modules per location (``nModules``): the single
    hourglass "HG" of the same depth as a 2-stack model is ``create_model(stacks=1, modules=2)``."""
    return StackedHourglass(stacks=stacks, features=features, modules=modules, joints=joints, supervision=supervision)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, the figure the paper's ablations hold constant."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
