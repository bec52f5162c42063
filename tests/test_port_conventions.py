"""The official PyTorch port's input crops against ours, on the five real MPII people (issue: released weights).

The port cuts a person (its ``utils/img.py`` ``crop``, described here, not copied) as the window between the integer
parts of ``centre -+ 100 * scale`` (zero outside the image), resized to the input size with OpenCV's bilinear
``resize``. Ours (:func:`hourglass.data.crop.crop_person`) maps ``centre`` to the crop's middle exactly, and
shrinks by box averages before the warp for downscales above 2x. So the two differ by the half-pixel convention:
the port's window starts at ``trunc(centre - 100 * scale)``, half a source pixel plus that truncation off ours, and
its side is an integer. Given that same window, ours reproduces the port's crop to under 1/255 (mean absolute
difference, after a 2-px Gaussian blur that takes out the anti-aliasing ours adds); the MPII people's centre and
scale are adjusted as the annotation files hold them (centre 15 x s lower, scale x 1.25).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hourglass.data.crop import CropSpec, crop_person
from hourglass.geometry import CROP_UNIT

MPII_IMAGES = "mmpose/tests/data/mpii"
RES = 256  # the port's input


def _port_window(center: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The port's window corners: the integer parts of centre -+ half the side."""
    half = CROP_UNIT * scale / 2.0
    return np.trunc(center - half).astype(int), np.trunc(center + half).astype(int)


def port_convention_crop(image: np.ndarray, center: np.ndarray, scale: float, res: int = RES) -> np.ndarray:
    """The port's crop convention: the window, zero-padded where it leaves the image, bilinearly resized."""
    (x0, y0), (x1, y1) = _port_window(center, scale)
    height, width = image.shape[:2]
    window = np.zeros((y1 - y0, x1 - x0, image.shape[2]), np.float64)
    sx0, sx1, sy0, sy1 = max(0, x0), min(width, x1), max(0, y0), min(height, y1)
    window[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return cv2.resize(window, (res, res), interpolation=cv2.INTER_LINEAR)


def _people(anchor_dir: Path) -> list[tuple[np.ndarray, np.ndarray, float]]:
    folder = anchor_dir / MPII_IMAGES
    out = []
    for person in json.loads((folder / "test_mpii.json").read_text()):
        image = cv2.imread(str(folder / person["image"]), cv2.IMREAD_COLOR)[:, :, ::-1]
        scale = float(person["scale"])
        center = np.array(person["center"], np.float64) + np.array([0.0, 15.0 * scale])
        out.append((np.ascontiguousarray(image), center, 1.25 * scale))
    assert len(out) == 5
    return out


def _blurred_difference(a: np.ndarray, b: np.ndarray) -> float:
    blur = lambda x: cv2.GaussianBlur(x.astype(np.float64), (0, 0), 2.0)  # noqa: E731
    return float(np.abs(blur(a) - blur(b)).mean() / 255.0)


def test_given_the_ports_window_our_crop_is_the_ports_crop(anchor_dir):
    spec = CropSpec(margin=1.0, crop_res=RES)  # anti-aliased, as the pipeline and hourglass predict crop
    for image, center, scale in _people(anchor_dir):
        theirs = port_convention_crop(image, center, scale)
        (x0, y0), (x1, y1) = _port_window(center, scale)
        side = ((x1 - x0) + (y1 - y0)) / 2.0  # the window is square to within a pixel
        # the port's window in our convention: its first pixel's centre is at x0 - 0.5 + half a target pixel
        window_center = np.array([x0 + (x1 - x0) / 2.0, y0 + (y1 - y0) / 2.0]) - 0.5
        ours = crop_person(image, window_center, side / CROP_UNIT, spec)
        assert _blurred_difference(ours, theirs) < 1 / 255


def test_our_default_crop_differs_from_the_ports_only_by_that_offset(anchor_dir):
    """Without the port's window, ours is the same crop shifted by the half-pixel convention: further from the
    port's crop than with it, by a fraction of a pixel (blurred difference a few /255, not a different picture)."""
    spec = CropSpec(margin=1.0, crop_res=RES)
    for image, center, scale in _people(anchor_dir):
        theirs = port_convention_crop(image, center, scale)
        ours = crop_person(image, center, scale, spec)
        shifted = crop_person(image, center - 0.5, scale, spec)  # the half pixel alone
        plain, half = _blurred_difference(ours, theirs), _blurred_difference(shifted, theirs)
        assert half < plain < 4 / 255, (plain, half)


@pytest.mark.parametrize("offset", [0.0, 0.5])
def test_port_convention_crop_pads_outside_the_image_with_zeros(offset):
    """The helper itself: a window leaving the image is zero outside it, as the port pads."""
    image = np.full((40, 60, 3), 200, np.uint8)
    crop = port_convention_crop(image, np.array([5.0 + offset, 20.0]), 0.2, res=40)
    assert crop[:, :10].max() == 0 and crop[:, 25:].min() == 200
