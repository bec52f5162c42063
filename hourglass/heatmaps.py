"""Heatmap targets, decoding and the flip test, following pose-hg-train (``src/util/img.lua`` ``drawGaussian``,
``src/util/pose.lua`` ``postprocess``, ``src/train.lua``).

All coordinates are 0-based heatmap pixels with pixel centres at integers (see ``hourglass.geometry``).

* Targets: one Gaussian per joint with peak 1.0 on the joint's nearest pixel, cut off outside a
  ``(2 * radius + 1)``-pixel square, as the original pastes a 7 x 7 ``image.gaussian(7)`` patch. Built separably
  (outer product of two 1-D exponentials, all joints at once) because the data loader draws 16 maps per sample.
* Decoding: argmax plus a quarter pixel toward the higher neighbour in x and y when the argmax is not on the
  border. The original's extra ``+ 0.5`` belongs to its 1-based frame and is absorbed by our crop convention
  (derivation in ``hourglass.geometry``).
* Flip test: run the mirrored image too, mirror its heatmaps back with the joint swap, average. HRNet's 1-pixel shift
  of the mirrored heatmaps is available (``shift=True``) but off by default: with pixel centres at integers the
  mirror at 256 px input is exactly the mirror at 64 px output (``x -> W - 1 - x`` on both), so no shift is due.

``decode`` and the flip functions accept ``numpy.ndarray`` or ``torch.Tensor`` and return the same kind (torch
results stay on the input's device); ``gaussian_heatmaps`` and ``heatmaps_to_image`` are numpy, for the loader and
for evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
from numpy.typing import ArrayLike

from hourglass.geometry import inverse_permutation, transform_points

# Torch's drawGaussian(hm, pt, 1) pastes image.gaussian(7), whose sigma is relative to the kernel size (default
# 0.25): 0.25 * 7 = 1.75 px at 64 x 64. The PyTorch ports (bearpaw, pytorch_stacked_hourglass) use 1 px and
# HRNet/mmpose 2 px; we keep the original's 1.75.
DEFAULT_SIGMA = 1.75
# The original's patch is 7 x 7 (3 * hmGauss with hmGauss = 1), so the target is cut off 3 px from its peak (value
# exp(-9 / (2 * 1.75^2)) = 0.23 at the edge). A larger radius approaches an untruncated Gaussian.
DEFAULT_RADIUS = 3
QUARTER = 0.25

Maps = TypeVar("Maps", np.ndarray, torch.Tensor)


def gaussian_heatmaps(
    points: ArrayLike,
    annotated: ArrayLike,
    res: int,
    sigma: float = DEFAULT_SIGMA,
    radius: int = DEFAULT_RADIUS,
    subpixel: bool = False,
) -> np.ndarray:
    """Targets ``float32 (..., J, res, res)`` for points ``(..., J, 2)`` in 0-based heatmap coordinates.

    Each map peaks at 1.0 on the pixel nearest the point (``floor(p + 0.5)``, what the original's integer transform
    amounts to) and is zero beyond ``radius`` pixels from it in x or y. ``subpixel=True`` centres the Gaussian on the
    exact point instead (same window; the peak value then drops below 1), which the original does not do. Maps are
    all zero for joints not ``annotated``, NaN points, and points whose window lies fully outside the map.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"radius must be a non-negative int, got {radius!r}")
    if isinstance(res, bool) or not isinstance(res, (int, np.integer)) or res < 1:
        raise ValueError(f"res must be a positive int, got {res!r}")
    points = np.asarray(points, dtype=np.float32)
    annotated = np.asarray(annotated, dtype=bool)
    if points.ndim < 2 or points.shape[-1] != 2 or annotated.shape != points.shape[:-1]:
        raise ValueError(f"points must be (..., J, 2) and annotated (..., J); got {points.shape} and {annotated.shape}")
    valid = annotated & np.isfinite(points).all(axis=-1)
    # Park invalid points far away: their window then misses the map and exp() underflows without warnings.
    points = np.where(valid[..., None], points, np.float32(-1e4))
    nearest = np.floor(points + np.float32(0.5))
    mean = points if subpixel else nearest
    grid = np.arange(res, dtype=np.float32)
    offset = grid - mean[..., None]  # (..., J, 2, res): x row then y row
    profile = np.exp(offset * offset * np.float32(-0.5 / sigma**2))
    profile[np.abs(grid - nearest[..., None]) > radius] = 0.0
    return profile[..., 1, :, None] * profile[..., 0, None, :]


def decode(heatmaps: Maps) -> tuple[Maps, Maps]:
    """Coordinates ``(..., J, 2)`` (x, y; 0-based heatmap pixels) and peak values ``(..., J)`` of ``(..., J, H, W)``.

    The argmax (first one on ties) moves 0.25 px toward the higher of its two neighbours in x and in y, only when it
    is not on the border of the map (both coordinates inside, as the original's test). A tie between the neighbours
    leaves that coordinate on the pixel. The peak value is the confidence. numpy in, numpy out; torch in, torch out.
    """
    as_numpy = isinstance(heatmaps, np.ndarray)
    maps = torch.from_numpy(np.ascontiguousarray(heatmaps)) if as_numpy else heatmaps.detach()
    if maps.ndim < 3 or maps.shape[-1] < 1 or maps.shape[-2] < 1:
        raise ValueError(f"heatmaps must be (..., J, H, W), got shape {tuple(maps.shape)}")
    height, width = maps.shape[-2:]
    flat = maps.reshape(*maps.shape[:-2], height * width)
    maxvals, index = flat.max(dim=-1)
    x, y = index % width, torch.div(index, width, rounding_mode="floor")
    inside = (x > 0) & (x < width - 1) & (y > 0) & (y < height - 1)

    def value(dx: int, dy: int) -> torch.Tensor:
        neighbour = (y + dy).clamp(0, height - 1) * width + (x + dx).clamp(0, width - 1)
        return flat.gather(-1, neighbour.unsqueeze(-1)).squeeze(-1)

    dtype = torch.float64 if maps.dtype == torch.float64 else torch.float32
    step = QUARTER * inside.to(dtype)
    coords = torch.stack(
        [
            x.to(dtype) + step * torch.sign(value(1, 0) - value(-1, 0)).to(dtype),
            y.to(dtype) + step * torch.sign(value(0, 1) - value(0, -1)).to(dtype),
        ],
        dim=-1,
    )
    if as_numpy:
        return coords.numpy(), maxvals.numpy()
    return coords, maxvals


def flip_heatmaps(heatmaps: Maps, perm: Sequence[int]) -> Maps:
    """Mirror ``(..., J, H, W)`` heatmaps along W and move joint ``j``'s map to ``perm[j]`` (``JointSet.flip``)."""
    if heatmaps.ndim < 3:
        raise ValueError(f"heatmaps must be (..., J, H, W), got shape {tuple(heatmaps.shape)}")
    inverse = inverse_permutation(perm, heatmaps.shape[-3])
    if isinstance(heatmaps, np.ndarray):
        return np.ascontiguousarray(heatmaps[..., inverse, :, ::-1])
    index = torch.as_tensor(inverse, device=heatmaps.device)
    return heatmaps.flip(-1).index_select(heatmaps.ndim - 3, index)


def flip_average(heatmaps: Maps, flipped_input_heatmaps: Maps, perm: Sequence[int], shift: bool = False) -> Maps:
    """The flip test: average ``heatmaps`` of an image with those of its mirror (``flipped_input_heatmaps``) after
    mirroring the latter back (``flip_heatmaps``); ``shift=True`` first moves them 1 px right (HRNet, not original).
    """
    if tuple(heatmaps.shape) != tuple(flipped_input_heatmaps.shape):
        raise ValueError(
            f"heatmaps {tuple(heatmaps.shape)} and flipped-input heatmaps {tuple(flipped_input_heatmaps.shape)} differ"
        )
    back = flip_heatmaps(flipped_input_heatmaps, perm)
    if shift:
        if isinstance(back, np.ndarray):
            back = np.concatenate([back[..., :1], back[..., :-1]], axis=-1)
        else:
            back = torch.cat([back[..., :1], back[..., :-1]], dim=-1)
    return (heatmaps + back) / 2


def heatmaps_to_image(
    coords: ArrayLike | torch.Tensor,
    center: ArrayLike,
    scale: ArrayLike,
    heatmap_res: int,
    rot: ArrayLike = 0.0,
) -> np.ndarray:
    """Decoded heatmap coordinates ``(..., J, 2)`` back to original 0-based image coordinates (float64, no rounding).

    Per-person ``center (N, 2)``/``scale (N,)`` align with the leading axis of ``(N, J, 2)`` coordinates.
    """
    if isinstance(coords, torch.Tensor):
        coords = coords.detach().cpu().numpy()
    return transform_points(coords, center, scale, heatmap_res, rot, inverse=True)
