"""The training augmentation of pose-hg-train (``src/util/pose.lua`` lines 18-43), as one affine warp.

The original draws ``rnd(x) = clip(N(0, x^2), -2x, 2x)`` and then

* scales the person box by ``2^rnd(0.25)`` (a factor in [0.71, 1.41]),
* rotates by ``rnd(30)`` degrees (so at most 60), but only with probability 0.4,
* mirrors with probability 0.5, swapping left and right joints,
* multiplies each colour channel by ``U(0.6, 1.4)`` and clamps to [0, 1].

Everything geometric is folded into a single ``(2, 3)`` matrix from the stored crop (written by
``hourglass.data.preprocess``) to the network input, so a sample costs one ``cv2.warpAffine`` on uint8 pixels; the
colour multiplier is folded into the uint8 -> float conversion. The joints go through the very same matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hourglass.config import AugmentConfig
from hourglass.geometry import CROP_UNIT, crop_matrix


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the augmentation: ``scale`` multiplies the person scale (>1 zooms out), ``rotation`` in degrees
    (the sign convention of ``hourglass.geometry``), ``flip`` mirrors, ``colour`` multiplies R, G, B."""

    scale: float = 1.0
    rotation: float = 0.0
    flip: bool = False
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)


IDENTITY = AugmentParams()


def sample_augmentation(config: AugmentConfig, rng: np.random.Generator) -> AugmentParams:
    """Draw one augmentation as the original does; a disabled config gives the identity."""
    if not config.enabled:
        return IDENTITY
    log2_limit = config.scale_clip * config.scale_sigma
    scale = 2.0 ** float(np.clip(rng.normal(0.0, config.scale_sigma), -log2_limit, log2_limit))
    rotation = 0.0
    # Draw both numbers every time so the stream of random numbers does not depend on the outcome.
    angle = float(np.clip(rng.normal(0.0, config.rotation_sigma), -config.rotation_clip, config.rotation_clip))
    if rng.random() < config.rotation_prob:
        rotation = angle
    flip = bool(rng.random() < config.flip_prob)
    colour = rng.uniform(config.colour_low, config.colour_high, size=3)
    return AugmentParams(scale=scale, rotation=rotation, flip=flip, colour=(float(colour[0]), float(colour[1]),
                                                                           float(colour[2])))


def required_margin(config: AugmentConfig | None) -> float:
    """The smallest stored-crop margin (stored side / (200 * scale)) that the worst draw of ``config`` stays inside.

    The input window is a square of side ``200 * scale * f`` with ``f <= 2^(scale_clip * scale_sigma)``, turned by
    ``|theta| <= rotation_clip`` about the person centre. A square of side ``a`` turned by ``theta`` spans
    ``a * (|cos theta| + |sin theta|)`` along each axis, which grows up to ``sqrt(2) * a`` at 45 degrees. So the
    axis-aligned stored square must be ``f_max * max_{|theta| <= clip}(|cos| + |sin|)`` times the person box:
    with the defaults ``2^0.5 * sqrt(2) = 2``.
    """
    if config is None or not config.enabled:
        return 1.0
    zoom = 2.0 ** (config.scale_clip * config.scale_sigma)
    limit = config.rotation_clip if (config.rotation_prob > 0 and config.rotation_sigma > 0) else 0.0
    if limit >= 45.0:
        spread = math.sqrt(2.0)
    else:
        theta = math.radians(limit)
        spread = math.cos(theta) + math.sin(theta)
    return zoom * spread


def stored_to_input(crop_res: int, margin: float, input_res: int, params: AugmentParams) -> np.ndarray:
    """The ``(2, 3)`` map from stored-crop pixels to input pixels for one augmentation draw.

    The stored crop is ``crop_matrix(center, margin * scale, crop_res)`` of the original, i.e. an axis-aligned
    scaling, so in its own pixels the person sits at the middle with scale ``crop_res / (margin * 200)``; the
    augmented window is then an ordinary ``crop_matrix`` there. A mirror ``x -> R - 1 - x`` is applied last.
    """
    middle = (crop_res - 1) / 2.0
    person_scale = crop_res / (margin * CROP_UNIT)
    matrix = crop_matrix((middle, middle), person_scale * params.scale, input_res, params.rotation)
    if params.flip:
        matrix = matrix.copy()
        matrix[0] = -matrix[0]
        matrix[0, 2] += input_res - 1
    return matrix


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points (..., 2)`` through a ``(2, 3)`` affine matrix; NaN stays NaN."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def to_float_chw(image: np.ndarray, colour: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """uint8 ``(R, R, 3)`` RGB -> float32 ``(3, R, R)`` in [0, 1], each channel times ``colour`` and clamped.

    The colour multiplier and the /255 share one multiply per channel, written straight into the output planes.
    """
    height, width, channels = image.shape
    out = np.empty((channels, height, width), dtype=np.float32)
    clamp = False
    for c in range(channels):
        factor = np.float32(colour[c] / 255.0)
        np.multiply(image[:, :, c], factor, out=out[c], casting="unsafe")
        clamp = clamp or colour[c] > 1.0
    if clamp:
        np.minimum(out, np.float32(1.0), out=out)
    return out
