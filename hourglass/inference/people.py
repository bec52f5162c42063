"""Who to look at in a user's image: a person box, MPII's centre and scale, or the whole image.

The network sees one person per square crop of ``200 * scale`` px around a centre (:class:`Person`), as in
training. A box becomes the crop around its centre with its longer side times MPII's 1.25 margin; MPII's
``objpos``/``scale`` are adjusted as the training rows adjust them; with neither, the whole image is taken as one
centred person (what pose-hg-demo expects), which :func:`whole_image_warning` tells the user.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hourglass.geometry import CROP_UNIT
from hourglass.inference.errors import PredictError

# MPII's person annotation is (objpos, s) with s = person height / 200 px; the training rows (and the original's
# loader) move the centre down by 15 * s px and enlarge the box by 1.25, so user-given MPII values get the same.
MPII_SCALE_FACTOR = 1.25
MPII_CENTER_SHIFT = 15.0


@dataclass(frozen=True)
class Person:
    """One person to predict, as the crop the network sees: a square of ``200 * scale`` px centred on ``center``."""

    center: tuple[float, float]
    scale: float

    @classmethod
    def from_box(cls, box: Sequence[float], width: int, height: int) -> Person:
        """The crop around ``box = (x1, y1, x2, y2)``: its centre, its longer side times MPII's 1.25 margin. A box
        that is empty, not finite, or does not overlap the ``width`` x ``height`` image is an error naming it."""
        x1, y1, x2, y2 = _four(box, "box")
        if not (x2 > x1 and y2 > y1):
            raise PredictError(f"box {_fmt(box)}: expected x1,y1,x2,y2 with x2 > x1 and y2 > y1")
        if x2 <= -0.5 or y2 <= -0.5 or x1 >= width - 0.5 or y1 >= height - 0.5:
            raise PredictError(f"box {_fmt(box)} lies outside the {width}x{height} image")
        side = max(x2 - x1, y2 - y1)
        return cls(((x1 + x2) / 2.0, (y1 + y2) / 2.0), MPII_SCALE_FACTOR * side / CROP_UNIT)

    @classmethod
    def from_mpii(cls, center: Sequence[float], scale: float, width: int, height: int) -> Person:
        """MPII's ``objpos`` and ``scale`` (person height / 200 px), adjusted as the training data are."""
        if len(center) != 2 or not all(math.isfinite(float(v)) for v in center):
            raise PredictError(f"center {_fmt(center)}: expected two finite numbers x,y")
        scale = float(scale)
        if not (math.isfinite(scale) and scale > 0):
            raise PredictError(f"scale {scale!r}: expected a positive number (person height / 200 px)")
        cx, cy = float(center[0]), float(center[1]) + MPII_CENTER_SHIFT * scale
        half = CROP_UNIT * MPII_SCALE_FACTOR * scale / 2.0
        if cx + half <= -0.5 or cy + half <= -0.5 or cx - half >= width - 0.5 or cy - half >= height - 0.5:
            raise PredictError(f"center {_fmt(center)} with scale {scale:g} lies outside the {width}x{height} image")
        return cls((cx, cy), MPII_SCALE_FACTOR * scale)

    @classmethod
    def whole_image(cls, width: int, height: int) -> Person:
        """The whole image with the person centred: the crop is the image's longer side (pose-hg-demo's input)."""
        return cls(((width - 1) / 2.0, (height - 1) / 2.0), max(width, height) / CROP_UNIT)


def _four(values: Sequence[float], what: str) -> tuple[float, float, float, float]:
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise PredictError(f"{what} {values!r}: expected four numbers x1,y1,x2,y2") from None
    if len(numbers) != 4 or not all(math.isfinite(v) for v in numbers):
        raise PredictError(f"{what} {_fmt(values)}: expected four finite numbers x1,y1,x2,y2")
    return numbers  # type: ignore[return-value]


def _fmt(values: Any) -> str:
    try:
        return ",".join(f"{float(v):g}" for v in values)
    except (TypeError, ValueError):
        return repr(values)


def parse_numbers(text: str, count: int, what: str) -> tuple[float, ...]:
    """``"1,2,3"`` -> floats, exactly ``count`` of them; the error names ``what`` and the text."""
    try:
        numbers = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise PredictError(f"{what} {text!r}: expected {count} comma-separated numbers") from None
    if len(numbers) != count:
        raise PredictError(f"{what} {text!r}: expected {count} comma-separated numbers, got {len(numbers)}")
    return numbers


def people_for(image: np.ndarray, boxes: Sequence[Sequence[float]] = (), center: Sequence[float] | None = None,
               scale: float | None = None) -> list[Person]:
    """The people to predict in ``image``: every box, or the MPII centre/scale, or the whole image."""
    height, width = image.shape[:2]
    people = [Person.from_box(b, width, height) for b in boxes]
    if center is not None or scale is not None:
        if center is None or scale is None:
            raise PredictError("--center and --scale go together (MPII's objpos and person height / 200 px)")
        people.append(Person.from_mpii(center, scale, width, height))
    return people or [Person.whole_image(width, height)]


def whole_image_warning(name: str) -> str:
    """The warning for an input predicted without a person box or centre/scale (``name``: the image or video)."""
    return (f"{name}: no --box or --center/--scale given, so the whole image is taken as one person, centred and "
            "filling it; a smaller or off-centre person gets a skeleton on the background: give --box")
