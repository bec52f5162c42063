"""The person crop shared by training preprocessing and prediction: one warp of the ``hourglass.geometry`` crop
matrix, anti-aliased for large downscales.

Kept apart from the preprocessing stage so that prediction crops exactly as training did without importing the
stage's HDF5 and Parquet writers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from hourglass.geometry import CROP_UNIT, crop_matrix


@dataclass(frozen=True)
class CropSpec:
    """How people are stored: side ``margin * 200 * scale`` original px, resampled to ``crop_res`` px."""

    margin: float
    crop_res: int
    antialias: bool = True
    jpeg_eoi_check: bool = True


def _aligned(lo: int, hi: int, size: int, unit: int) -> tuple[int, int]:
    """Grow ``[lo, hi)`` within ``[0, size)`` to a multiple of ``unit`` long; trim the far end only when the range
    already spans the whole image (those last < unit pixels then read as zero padding)."""
    short = -(hi - lo) % unit
    grow = min(short, size - hi)
    hi, short = hi + grow, short - grow
    grow = min(short, lo)
    lo, short = lo - grow, short - grow
    if short:
        hi -= unit - short
    return lo, hi


def crop_person(image: np.ndarray, center: np.ndarray, scale: float, spec: CropSpec) -> np.ndarray:
    """The stored crop ``crop_matrix(center, margin * scale, crop_res)`` of an image, same channel order.

    For downscales beyond 2x the window's bounding box is first shrunk by 2^m with 2x2 box averages (``INTER_AREA``
    at an integer factor, OpenCV's fast path), leaving at most 2x to the bilinear warp, so the crop does not alias
    (the original scaled the image with ``image.scale`` before cropping for the same reason). The warp matrix
    accounts for the shrink exactly, so pixels stay where ``transform_points`` puts the joints.
    """
    res = spec.crop_res
    crop_scale = scale * spec.margin
    matrix = crop_matrix(center, crop_scale, res)
    source = image
    side = CROP_UNIT * crop_scale
    factor = side / res
    if spec.antialias and factor > 2.0:
        height, width = image.shape[:2]
        unit = 2 ** math.ceil(math.log2(factor / 2.0))
        half = side / 2.0 + 1.0
        x0, x1 = max(0, math.floor(center[0] - half)), min(width, math.ceil(center[0] + half) + 1)
        y0, y1 = max(0, math.floor(center[1] - half)), min(height, math.ceil(center[1] + half) + 1)
        x0, x1 = _aligned(x0, x1, width, unit)
        y0, y1 = _aligned(y0, y1, height, unit)
        if x1 - x0 >= unit and y1 - y0 >= unit:
            source = image[y0:y1, x0:x1]
            for _ in range(int(math.log2(unit))):
                source = cv2.resize(source, (source.shape[1] // 2, source.shape[0] // 2),
                                    interpolation=cv2.INTER_AREA)
            # A 2^m box shrink maps pixel centres as u = (x - x0 + 0.5) / unit - 0.5; invert that and compose.
            back = np.array([[unit, 0.0, 0.5 * unit - 0.5 + x0], [0.0, unit, 0.5 * unit - 0.5 + y0],
                             [0.0, 0.0, 1.0]])
            matrix = matrix @ back
    return cv2.warpAffine(source, matrix, (res, res), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)
