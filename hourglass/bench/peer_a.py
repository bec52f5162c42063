"""A replica of peer A's network (princeton-vl/pytorch_stacked_hourglass, the official PyTorch port, commit
``ceedc14b``), for timing it and for golden tests only: nothing in the product trains or predicts with it.

Issues 26 and 27 set speed bars against peer A as shipped; ``python -m hourglass.bench peer`` times this replica
beside our network in one run. It is written here from the port's structure (``models/posenet.py``,
``models/layers.py``; see shared/reference/paper-and-peers.md 1.2), not copied, with the port's module names, so the
port's own checkpoints load into it with ``strict=True`` (tests/test_bench_peer.py loads the anchor checkpoint,
made by the port's own code, and reproduces the outputs it recorded). What it keeps of the port, on purpose:

* ``Conv(inp, out, k, stride, bn, relu)``: a convolution with a bias and padding ``(k - 1) // 2``, then an optional
  BatchNorm, then an optional ReLU (attributes ``conv``, ``bn``, ``relu``; absent parts are ``None``);
* ``Residual(inp, out)``: BN-ReLU-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1 (``bn1, conv1, bn2, conv2, bn3, conv3``,
  each ``conv<k>`` a ``Conv`` without BN or ReLU) plus ``skip_layer``, a 1x1 ``Conv`` that is always registered
  but used only when ``inp != out`` (else the input itself is added): about 22 % of the registered parameters never
  run, and the parameter counts of the paper-and-peers table include them;
* ``Hourglass(n, f)``: ``up1`` residual, ``pool1`` 2x2 max-pool, ``low1`` residual, ``low2`` = ``Hourglass(n - 1)``
  or a residual at the bottom, ``low3`` residual, ``up2`` nearest 2x upsampling, output ``up1 + up2``;
* ``PoseNet(nstack, inp_dim, oup_dim)``: ``pre`` = 7x7/2 ``Conv(3, 64, bn, relu)``, ``Residual(64, 128)``, 2x2
  max-pool, ``Residual(128, 128)``, ``Residual(128, inp_dim)``; per stack ``hgs[i]`` (a ``Sequential`` holding one
  ``Hourglass(4, inp_dim)``), ``features[i]`` = ``Residual`` + ``Conv(1x1, bn, relu)``, ``outs[i]`` = 1x1 ``Conv``
  to the heatmaps, and between stacks ``x = x + merge_preds[i](preds) + merge_features[i](feature)`` (``Merge``: a
  1x1 ``Conv`` in ``.conv``, no BN, no ReLU);
* its input convention: ``forward`` takes NHWC images and permutes them to NCHW itself (a view, not a copy: the
  first convolution then sees channels_last strides, and torch's CPU kernels carry that layout through the
  network), and returns ``torch.stack`` of every stack's heatmaps, ``(N, nstack, oup_dim, H/4, W/4)``;
* its loss (``task/loss.py`` ``HeatmapLoss``, ``PoseNet.calc_loss``, ``task/pose.py`` ``make_train``): per sample
  and stack the mean over channels and pixels of ``(pred - gt) ** 2``, stacked to ``(N, nstack)``, then reduced
  with ``torch.mean`` by the trainer (the mean of the per-stack losses, 1/nstack of their sum: the same arithmetic
  and the same cost as the sum the reference notes describe);
* its optimiser: ``torch.optim.Adam`` at 1e-3 with torch's defaults (``task/pose.py``), ``zero_grad`` then
  ``backward`` then ``step``.

Left out: the ``Trainer``/``DataParallel`` wrappers (no computation on one device; :func:`port_state_dict` strips
their ``model.module.`` prefix), the ``increase`` and ``bn`` options (the port's defaults are 0 and unused), and the
per-step logging of the loss to a file.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

PEER_A = "princeton-vl/pytorch_stacked_hourglass"
PEER_A_COMMIT = "ceedc14b9b8814ba641f4a00baa5d0af153588a9"
PEER_A_LR = 1e-3  # task/pose.py: Adam, learning_rate 1e-3
PORT_PREFIXES = ("model.module.", "module.")  # Trainer(DataParallel(PoseNet)), DataParallel(PoseNet)


class Conv(nn.Module):
    """Convolution (with bias, 'same' padding for odd kernels), then optional BatchNorm, then optional ReLU."""

    def __init__(self, inp_dim: int, out_dim: int, kernel_size: int = 3, stride: int = 1, bn: bool = False,
                 relu: bool = True) -> None:
        super().__init__()
        self.inp_dim = inp_dim
        self.conv = nn.Conv2d(inp_dim, out_dim, kernel_size, stride, padding=(kernel_size - 1) // 2, bias=True)
        self.bn = nn.BatchNorm2d(out_dim) if bn else None
        self.relu = nn.ReLU() if relu else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.relu is not None:
            x = self.relu(x)
        return x


class Residual(nn.Module):
    """Pre-activation bottleneck with the port's always-registered ``skip_layer`` (run only when widths differ)."""

    def __init__(self, inp_dim: int, out_dim: int) -> None:
        super().__init__()
        mid = out_dim // 2
        self.relu = nn.ReLU()
        self.bn1 = nn.BatchNorm2d(inp_dim)
        self.conv1 = Conv(inp_dim, mid, 1, relu=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = Conv(mid, mid, 3, relu=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = Conv(mid, out_dim, 1, relu=False)
        self.skip_layer = Conv(inp_dim, out_dim, 1, relu=False)
        self.need_skip = inp_dim != out_dim

    def forward(self, x: Tensor) -> Tensor:
        shortcut = self.skip_layer(x) if self.need_skip else x
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        out += shortcut  # in place, as the port does
        return out


class Hourglass(nn.Module):
    """The recursive hourglass of depth ``n`` at ``f`` channels."""

    def __init__(self, n: int, f: int) -> None:
        super().__init__()
        self.up1 = Residual(f, f)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.low1 = Residual(f, f)
        self.n = n
        self.low2: nn.Module = Hourglass(n - 1, f) if n > 1 else Residual(f, f)
        self.low3 = Residual(f, f)
        self.up2 = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: Tensor) -> Tensor:
        upper = self.up1(x)
        lower = self.low3(self.low2(self.low1(self.pool1(x))))
        return upper + self.up2(lower)


class Merge(nn.Module):
    """The port's inter-stack 1x1 remap: a ``Conv`` without BN or ReLU, held in ``.conv``."""

    def __init__(self, x_dim: int, y_dim: int) -> None:
        super().__init__()
        self.conv = Conv(x_dim, y_dim, 1, relu=False, bn=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class PoseNet(nn.Module):
    """Peer A's network (module names as the port's, so its state dicts load strictly); NHWC in, every stack's
    heatmaps out."""

    def __init__(self, nstack: int = 8, inp_dim: int = 256, oup_dim: int = 16) -> None:
        super().__init__()
        self.nstack = nstack
        self.pre = nn.Sequential(
            Conv(3, 64, 7, 2, bn=True, relu=True),
            Residual(64, 128),
            nn.MaxPool2d(2, 2),
            Residual(128, 128),
            Residual(128, inp_dim),
        )
        self.hgs = nn.ModuleList(nn.Sequential(Hourglass(4, inp_dim)) for _ in range(nstack))
        self.features = nn.ModuleList(
            nn.Sequential(Residual(inp_dim, inp_dim), Conv(inp_dim, inp_dim, 1, bn=True, relu=True))
            for _ in range(nstack))
        self.outs = nn.ModuleList(Conv(inp_dim, oup_dim, 1, relu=False, bn=False) for _ in range(nstack))
        self.merge_features = nn.ModuleList(Merge(inp_dim, inp_dim) for _ in range(nstack - 1))
        self.merge_preds = nn.ModuleList(Merge(oup_dim, inp_dim) for _ in range(nstack - 1))

    def forward(self, imgs: Tensor) -> Tensor:
        """``imgs``: (N, H, W, 3) RGB in [0, 1]; returns (N, nstack, oup_dim, H/4, W/4)."""
        x = self.pre(imgs.permute(0, 3, 1, 2))
        preds_per_stack = []
        for i in range(self.nstack):
            feature = self.features[i](self.hgs[i](x))
            preds = self.outs[i](feature)
            preds_per_stack.append(preds)
            if i < self.nstack - 1:
                x = x + self.merge_preds[i](preds) + self.merge_features[i](feature)
        return torch.stack(preds_per_stack, 1)

    def calc_loss(self, combined_hm_preds: Tensor, heatmaps: Tensor) -> Tensor:
        """(N, nstack): each sample's and stack's mean over channels and pixels of the squared error."""
        per_stack = [((combined_hm_preds[:, i] - heatmaps) ** 2).mean(dim=(1, 2, 3)) for i in range(self.nstack)]
        return torch.stack(per_stack, dim=1)


def train_loss(model: PoseNet, imgs: Tensor, heatmaps: Tensor) -> Tensor:
    """The scalar the port's trainer backpropagates: ``torch.mean`` of :meth:`PoseNet.calc_loss`."""
    return torch.mean(model.calc_loss(model(imgs), heatmaps))


def create_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """The port's optimiser: Adam at 1e-3 over the trainable parameters, torch's defaults otherwise."""
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], PEER_A_LR)


def count_parameters(model: nn.Module) -> int:
    """Registered parameters, the unused skip convolutions included (the paper-and-peers table's middle column)."""
    return sum(p.numel() for p in model.parameters())


def port_state_dict(checkpoint: Mapping[str, object]) -> dict[str, Tensor]:
    """The ``PoseNet`` state dict of a port checkpoint (its ``train.py`` dict, or a bare state dict), the
    ``Trainer``/``DataParallel`` prefix stripped."""
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping) or not state:
        raise ValueError("not a pytorch_stacked_hourglass state dict")
    first = next(iter(state))
    prefix = next((p for p in PORT_PREFIXES if first.startswith(p)), "")
    return {key[len(prefix):] if key.startswith(prefix) else key: value for key, value in state.items()}
