"""The two sums of the training loss (the original ``nn.ParallelCriterion`` of per-stack ``MSECriterion``s with
equal weights), which :mod:`hourglass.train.criterion` applies to the outputs a supervision mode supervises.

Each supervised output's mean squared error against the (optionally scaled) target, summed over outputs. For
``supervision: resolutions`` (HG-Int) the lower-resolution maps of the top-down path join the sum with the same
weight, each against the target max-pooled to its size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def heatmap_loss(supervised: Tensor, target: Tensor, target_scale: float = 1.0) -> Tensor:
    """Sum over supervised outputs (N, K, J, H, W) of the mean squared error against ``target`` (N, J, H, W)."""
    if supervised.shape[0] != target.shape[0] or supervised.shape[2:] != target.shape[1:]:
        raise ValueError(f"heatmaps {tuple(supervised.shape)} do not match targets {tuple(target.shape)}")
    diff = supervised.float() - (target.float() * target_scale).unsqueeze(1)
    return diff.pow(2).mean(dim=(0, 2, 3, 4)).sum()


def auxiliary_loss(maps: Sequence[Tensor], target: Tensor, target_scale: float = 1.0) -> Tensor:
    """Sum over lower-resolution heatmaps (N, J, h, w) of the mean squared error against ``target`` (N, J, H, W)
    max-pooled to (h, w). Max pooling keeps each peak at its full height, so a coarse map is asked for the same
    response as the full-resolution one, in the cell that holds the joint."""
    full_h, full_w = target.shape[-2:]
    total = target.new_zeros((), dtype=torch.float32)
    for heatmaps in maps:
        h, w = heatmaps.shape[-2:]
        if heatmaps.shape[:2] != target.shape[:2] or not h or not w or full_h % h or full_w % w \
                or full_h // h != full_w // w:
            raise ValueError(f"auxiliary heatmaps {tuple(heatmaps.shape)} are not targets {tuple(target.shape)} "
                             f"pooled by one whole factor")
        pooled = F.max_pool2d(target.float() * target_scale, kernel_size=full_h // h)
        total = total + (heatmaps.float() - pooled).pow(2).mean()
    return total
