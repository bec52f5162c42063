"""The stacked hourglass network, as the original Torch code builds it.

Read against pose-hg-train ``src/models/hg.lua`` and ``src/models/layers/Residual.lua``:

* ``Residual`` is the pre-activation bottleneck BN-ReLU-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1 with an identity skip,
  or a 1x1 projection when the channel count changes. Every convolution carries a bias, as cudnn's did.
* ``Hourglass`` is the recursive block: an upper branch at the current resolution, a lower branch that max-pools,
  recurses (or, at the bottom, applies residuals), and is upsampled by nearest neighbour and added to the upper one.
* ``StackedHourglass`` = stem (7x7/2 conv, residuals, max-pool: 256 px in, 64 px out), then per stack an hourglass,
  a head (residuals, 1x1 conv-BN-ReLU, 1x1 conv to the heatmaps) and, between stacks, the sum of the stack input,
  the 1x1-remapped features and the 1x1-remapped heatmaps.

The network's settings (stacks, features, modules, joints, supervision, stem width) are one
:class:`~hourglass.network_config.NetworkConfig`, which the model is built from and carries as ``model.config``.

Supervision modes (which outputs the loss sees is the criterion's, :mod:`hourglass.supervision`; ``forward`` returns
every stack's full-resolution heatmaps, and the lower-resolution ones of ``resolutions``):

* ``intermediate``: every stack's heatmaps (the paper's default; Figure 4's HG-Stacked-Int);
* ``final``: the last stack's only (HG, HG-Stacked);
* ``add``: one loss on the sum of all stacks (HG-Stacked-Add);
* ``resolutions``: the last stack's heatmaps plus, from a 1x1 convolution each, heatmaps at every lower resolution
  of the last hourglass's top-down path, taken where each level's features are about to be upsampled (32, 16 and
  8 px for a 64-px output); the loss compares them with the target max-pooled to their size (Figure 4's HG-Int).
  The 4-px bottom is not supervised: it is the turn of the hourglass, not yet merged with any skip branch, and at
  the 64-px inputs used for quick runs it is 1x1, where a heatmap has no location left to learn.

Every registered parameter takes part in every training forward pass (DDP needs no ``find_unused_parameters``):
the intermediate heatmap convolutions feed the remap even when only the last stack is supervised, and the
``resolutions`` heads run in every forward pass (three 1x1 convolutions at 1/8 resolution and below).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from hourglass.network_config import HOURGLASS_DEPTH, NetworkConfig


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
        return self.top_down(x)[-1]

    def top_down(self, x: Tensor) -> list[Tensor]:
        """The top-down path, coarse to fine: the features each level below the bottom hands up just before they
        are upsampled (``depth - 1`` maps, at 1/8 .. 1/2 of ``x``'s size), then the hourglass's output."""
        up1 = self.up1(x)
        inner = self.low1(self.pool(x))
        if isinstance(self.low2, Hourglass):
            *path, merged = self.low2.top_down(inner)
            low = self.low3(merged)
            return [*path, low, up1 + self.upsample(low)]
        return [up1 + self.upsample(self.low3(self.low2(inner)))]


class HeatmapOutputs(NamedTuple):
    """What the network computes: ``stacks``, every stack's heatmaps (N, stacks, joints, H/4, W/4); ``levels``, in
    the ``resolutions`` mode the last hourglass's top-down heatmaps coarse to fine (H/32, H/16, H/8), else empty."""

    stacks: Tensor
    levels: tuple[Tensor, ...] = ()


class StackedHourglass(nn.Module):
    """Stem + ``stacks`` hourglasses; ``forward`` returns :class:`HeatmapOutputs`."""

    def __init__(self, config: NetworkConfig | None = None) -> None:
        super().__init__()
        config = config or NetworkConfig()
        self.config = config  # checkpoints and logged models record it; create_model(**config.as_record()) rebuilds
        self.stacks, self.joints, self.supervision = config.stacks, config.joints, config.supervision
        features, modules, joints, stacks = config.features, config.modules, config.joints, config.stacks
        half = config.stem_width // 2
        self.stem = nn.Sequential(
            nn.Conv2d(3, half, 7, stride=2, padding=3), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            Residual(half, config.stem_width),
            nn.MaxPool2d(2, 2),
            Residual(config.stem_width, config.stem_width),
            Residual(config.stem_width, features),
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
        # HG-Int: one 1x1 head per level of the last hourglass's top-down path below the output resolution; the
        # list stays empty (no parameters, no state_dict keys) in every other mode.
        levels = HOURGLASS_DEPTH - 1 if config.supervision == "resolutions" else 0
        self.auxiliary_heatmaps = nn.ModuleList(nn.Conv2d(features, joints, 1) for _ in range(levels))

    def forward(self, images: Tensor) -> HeatmapOutputs:
        """``images``: (N, 3, H, W) RGB in [0, 1], H and W multiples of 64. Every stack's heatmaps, and in the
        ``resolutions`` mode the last hourglass's lower-resolution ones (what the loss takes is the criterion's
        choice: :mod:`hourglass.supervision`)."""
        x = self.stem(images)
        outputs = []
        for i in range(self.stacks):
            *path, merged = self.hourglasses[i].top_down(x)
            features = self.heads[i](merged)
            heatmaps = self.heatmaps[i](features)
            outputs.append(heatmaps)
            if i < self.stacks - 1:
                x = x + self.remap_features[i](features) + self.remap_heatmaps[i](heatmaps)
        # Outside the resolutions mode there are no heads, so the path's levels go unused (the zip is empty).
        levels = tuple(head(level) for head, level in zip(self.auxiliary_heatmaps, path, strict=False))
        return HeatmapOutputs(torch.stack(outputs, dim=1), levels)


def create_model(**arguments: Any) -> StackedHourglass:
    """Build the network from :class:`NetworkConfig`'s fields (defaults: the paper's 8-stack, 256-feature MPII
    model). ``modules`` is the number of residual modules per location (``nModules``): the single hourglass "HG" of
    the same depth as a 2-stack model is ``create_model(stacks=1, modules=2)``, and Figure 4's "HG-Int" is that
    hourglass with ``supervision="resolutions"``. ``stem_width`` is the stem's width (the original's 128; its 7x7
    convolution has half as many channels)."""
    return StackedHourglass(NetworkConfig(**arguments))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, the figure the paper's ablations hold constant."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
