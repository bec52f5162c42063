"""The renaming of princeton-vl/pytorch_stacked_hourglass's ``PoseNet`` tensors to ours, layer by layer; the two
networks are hg.lua's, so every tensor has exactly one counterpart (:mod:`hourglass.weights.port` imports a file
with it).

Layer by layer (port key below ``model.module.`` -> ours; a port ``Conv`` is ``conv`` (+ ``bn``) (+ ReLU)):

* ``pre.0.conv`` / ``pre.0.bn`` -> ``stem.0`` / ``stem.1`` (7x7/2 conv, BN; ReLU ``stem.2``); ``pre.2`` and
  ``stem.4`` are the max-pool; the residuals ``pre.1``, ``pre.3``, ``pre.4`` -> ``stem.3``, ``stem.5``, ``stem.6``;
* a port ``Residual`` ``bn1, conv1.conv, bn2, conv2.conv, bn3, conv3.conv`` -> our ``body.0, body.2, body.3, body.5,
  body.6, body.8`` (the ReLUs are ``body.1/4/7``), ``skip_layer.conv`` -> ``skip`` where the widths differ;
* ``hgs.<i>.0`` (a one-hourglass ``Sequential``) -> ``hourglasses.<i>``; in each level ``up1``, ``low1``, ``low3``
  -> ``up1.0``, ``low1.0``, ``low3.0`` (our locations are ``Sequential`` s of ``modules`` residuals), the inner
  hourglass ``low2`` -> ``low2``, and the bottom level's residual ``low2`` -> ``low2.0``;
* ``features.<i>.0`` (residual) -> ``heads.<i>.0.0``; ``features.<i>.1.conv`` / ``.bn`` -> ``heads.<i>.1`` /
  ``heads.<i>.2`` (1x1 conv, BN, ReLU ``heads.<i>.3``);
* ``outs.<i>.conv`` -> ``heatmaps.<i>``; ``merge_features.<i>.conv.conv`` -> ``remap_features.<i>``;
  ``merge_preds.<i>.conv.conv`` -> ``remap_heatmaps.<i>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hourglass.model import HOURGLASS_DEPTH

PORT_STEM_CHANNELS = 64  # the port's 7x7 convolution: Conv(3, 64, 7, 2, bn=True, relu=True)
BN_TENSORS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
CONV_TENSORS = ("weight", "bias")


@dataclass(frozen=True)
class PortArchitecture:
    """The port's ``PoseNet`` as its tensors describe it, in our terms."""

    stacks: int
    features: int  # the port's inp_dim
    joints: int  # the port's oup_dim
    stem_width: int  # 2 x the 7x7 convolution's channels

    def network_kwargs(self) -> dict[str, Any]:
        return {"stacks": self.stacks, "features": self.features, "modules": 1, "joints": self.joints,
                "stem_width": self.stem_width}


def _conv(ours: str, port: str) -> Iterator[tuple[str, str]]:
    for name in CONV_TENSORS:
        yield f"{ours}.{name}", f"{port}.{name}"


def _bn(ours: str, port: str) -> Iterator[tuple[str, str]]:
    for name in BN_TENSORS:
        yield f"{ours}.{name}", f"{port}.{name}"


def _residual(ours: str, port: str, in_channels: int, out_channels: int,
              unused: list[str]) -> Iterator[tuple[str, str]]:
    """Our ``Residual`` (``body`` = BN, ReLU, conv1x1, BN, ReLU, conv3x3, BN, ReLU, conv1x1; ``skip``) from the
    port's (``bn1, conv1, bn2, conv2, bn3, conv3, skip_layer``; each ``conv<k>`` a ``Conv`` holding ``.conv``)."""
    yield from _bn(f"{ours}.body.0", f"{port}.bn1")
    yield from _conv(f"{ours}.body.2", f"{port}.conv1.conv")
    yield from _bn(f"{ours}.body.3", f"{port}.bn2")
    yield from _conv(f"{ours}.body.5", f"{port}.conv2.conv")
    yield from _bn(f"{ours}.body.6", f"{port}.bn3")
    yield from _conv(f"{ours}.body.8", f"{port}.conv3.conv")
    if in_channels != out_channels:
        yield from _conv(f"{ours}.skip", f"{port}.skip_layer.conv")
    else:  # registered by the port, never run: its forward adds x itself when need_skip is False
        unused.extend(f"{port}.skip_layer.conv.{name}" for name in CONV_TENSORS)


def _hourglass(ours: str, port: str, depth: int, features: int, unused: list[str]) -> Iterator[tuple[str, str]]:
    """One level of the recursive hourglass (ours: ``residuals`` of one module at each location)."""
    yield from _residual(f"{ours}.up1.0", f"{port}.up1", features, features, unused)
    yield from _residual(f"{ours}.low1.0", f"{port}.low1", features, features, unused)
    if depth > 1:
        yield from _hourglass(f"{ours}.low2", f"{port}.low2", depth - 1, features, unused)
    else:
        yield from _residual(f"{ours}.low2.0", f"{port}.low2", features, features, unused)
    yield from _residual(f"{ours}.low3.0", f"{port}.low3", features, features, unused)


def port_key_map(arch: PortArchitecture) -> tuple[dict[str, str], list[str]]:
    """``({our key: port key}, [unused port keys])`` for the port's ``PoseNet`` of ``arch`` (keys without prefix),
    in the order of the port's own state dict."""
    pairs: list[tuple[str, str]] = []
    unused: list[str] = []
    half, width, features = arch.stem_width // 2, arch.stem_width, arch.features
    pairs += _conv("stem.0", "pre.0.conv")
    pairs += _bn("stem.1", "pre.0.bn")
    pairs += _residual("stem.3", "pre.1", half, width, unused)
    pairs += _residual("stem.5", "pre.3", width, width, unused)
    pairs += _residual("stem.6", "pre.4", width, features, unused)
    for i in range(arch.stacks):
        pairs += _hourglass(f"hourglasses.{i}", f"hgs.{i}.0", HOURGLASS_DEPTH, features, unused)
    for i in range(arch.stacks):
        pairs += _residual(f"heads.{i}.0.0", f"features.{i}.0", features, features, unused)
        pairs += _conv(f"heads.{i}.1", f"features.{i}.1.conv")
        pairs += _bn(f"heads.{i}.2", f"features.{i}.1.bn")
    for i in range(arch.stacks):
        pairs += _conv(f"heatmaps.{i}", f"outs.{i}.conv")
    for i in range(arch.stacks - 1):
        pairs += _conv(f"remap_features.{i}", f"merge_features.{i}.conv.conv")
    for i in range(arch.stacks - 1):
        pairs += _conv(f"remap_heatmaps.{i}", f"merge_preds.{i}.conv.conv")
    mapping = dict(pairs)
    if len(mapping) != len(pairs) or len(set(mapping.values())) != len(pairs):
        raise AssertionError("port_key_map maps a key twice")  # a bug here, not in the file
    return mapping, unused
