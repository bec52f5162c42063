"""The crop transform of pose-hg-train (``src/util/img.lua`` ``getTransform``/``crop``) in 0-based pixel centres.

Convention
----------
A person is cropped as a square of side ``h = 200 * scale`` original pixels centred on ``center``. The continuous
original interval ``[c - h/2, c + h/2]`` maps onto the crop's continuous ``[-0.5, res - 0.5]``; pixel centres sit at
integers on both sides, so with ``k = res / h``::

    x_crop = (x - cx) * k + (res - 1) / 2        (the same for y)

A point at ``center`` lands on ``(res - 1) / 2``, the crop's middle. The rotation ``rot`` (degrees) turns the
crop about that middle. **Sign: a positive ``rot`` rotates the image content counter-clockwise as seen on screen**
(y pointing down), as in the original: ``getTransform`` negates ``rot`` and applies ``[[cos, -sin], [sin, cos]]``,
which sends a point right of the centre upwards, and ``crop`` turns the pixels with Torch's ``image.rotate`` by the
same angle so that images and joints agree. Here a point offset ``(dx, dy)`` from the centre becomes
``k * (cos r * dx + sin r * dy, -sin r * dx + cos r * dy)``. ``crop_image`` warps with the very matrix that
``transform_points`` applies, so pixels and joints can never drift apart.

Decoding equals the original's
------------------------------
pose-hg-train predicts the 1-based argmax ``p1 = p0 + 1`` (``p0`` our 0-based argmax), adds the quarter offset
``o`` and 0.5, then ``transformPreds`` subtracts 1, applies the inverse of ``getTransform`` at ``res = 64`` and
returns ``int(.) + 1``. With the annotation centre ``C1 = c0 + 1`` (1-based, as stored in the h5 files) the value
before truncation is::

    v = (p1 + o + 0.5 - 1 - res/2) * h/res + C1 = (p0 + o - (res - 1)/2) * h/res + c0 + 1,

which is exactly our ``transform_points(p0 + o, inverse=True)`` (0-based) plus 1, i.e. the same position in 1-based
coordinates. The original then returns ``int(v) + 1`` (an integer rounded up); we keep ``v`` as a float.

On the training side the original subtracts 1 from the joint but not from the 1-based centre, so its targets sit one
original pixel (``res / h`` crop pixels) up and left of ours; its decoding undoes the same shift. We use the one
consistent map both ways instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import ArrayLike

CROP_UNIT = 200.0  # "scale" is the person size in units of 200 original pixels (MPII's convention)


def _resolution(res: int) -> int:
    if isinstance(res, bool) or not isinstance(res, (int, np.integer)) or res < 1:
        raise ValueError(f"res must be a positive int (the side of the square crop), got {res!r}")
    return int(res)


def crop_matrix(
    center: ArrayLike, scale: ArrayLike, res: int, rot: ArrayLike = 0.0, inverse: bool = False
) -> np.ndarray:
    """Affine map from original 0-based coordinates to crop 0-based coordinates (or back with ``inverse``).

    Scalars give one ``(2, 3)`` matrix; ``center (..., 2)``, ``scale (...)`` and ``rot (...)`` broadcast to a stack
    ``(..., 2, 3)``, one matrix per person.
    """
    res = _resolution(res)
    center = np.asarray(center, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    rot = np.asarray(rot, dtype=np.float64)
    if center.ndim == 0 or center.shape[-1] != 2:
        raise ValueError(f"center must have shape (..., 2), got {center.shape}")
    if not np.all(np.isfinite(scale) & (scale > 0)):
        raise ValueError(f"scale must be positive and finite, got {scale}")
    shape = np.broadcast_shapes(center.shape[:-1], scale.shape, rot.shape)
    k = np.broadcast_to(res / (CROP_UNIT * scale), shape)
    angle = np.deg2rad(np.broadcast_to(rot, shape))
    cos, sin = np.cos(angle), np.sin(angle)
    centre = np.broadcast_to(center, shape + (2,))
    middle = (res - 1) / 2.0
    matrix = np.empty(shape + (2, 3))
    if not inverse:
        # Scale, then rotate the offset from the centre; the crop middle is the image of the centre.
        linear = k[..., None, None] * np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)
        matrix[..., :2] = linear
        matrix[..., 2] = middle - np.einsum("...ij,...j->...i", linear, centre)
    else:
        # Inverse of k * R is R^T / k; the crop middle goes back to the centre.
        linear = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2) / k[..., None, None]
        matrix[..., :2] = linear
        matrix[..., 2] = centre - linear.sum(-1) * middle
    return matrix


def transform_points(
    points: ArrayLike,
    center: ArrayLike,
    scale: ArrayLike,
    res: int,
    rot: ArrayLike = 0.0,
    inverse: bool = False,
) -> np.ndarray:
    """Map points ``(..., 2)`` from the original image into the crop (or back with ``inverse``).

    Per-person transforms align with the *leading* axes of ``points``: with ``center (N, 2)``, ``scale (N,)`` and
    ``rot`` scalar or ``(N,)``, ``points`` may be ``(N, J, 2)`` (J joints per person) or ``(N, 2)`` (one point each).
    NaN points (unannotated joints) stay NaN. Returns float64.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim == 0 or points.shape[-1] != 2:
        raise ValueError(f"points must have shape (..., 2), got {points.shape}")
    matrix = crop_matrix(center, scale, res, rot, inverse=inverse)
    batch = matrix.shape[:-2]
    extra = points.ndim - 1 - len(batch)
    if extra < 0:
        raise ValueError(
            f"points {points.shape} have fewer leading axes than the per-person transforms {batch}; "
            "give points as (N, J, 2) or (N, 2)"
        )
    matrix = matrix.reshape(batch + (1,) * extra + (2, 3))
    try:
        return np.einsum("...ij,...j->...i", matrix[..., :2], points) + matrix[..., 2]
    except ValueError as err:
        raise ValueError(f"points {points.shape} do not match per-person transforms {batch}: {err}") from None


def crop_image(image: np.ndarray, center: ArrayLike, scale: float, res: int, rot: float = 0.0) -> np.ndarray:
    """Cut the ``res x res`` crop out of ``image`` (H x W or H x W x C) with one bilinear ``cv2.warpAffine``.

    Outside the image is filled with 0, as the original's zero padding. Uses the matrix of ``transform_points``, so a
    joint mapped by it lands on the pixel that shows it. Large downscales alias (bilinear, no pre-blur), as in
    other ports; the original Torch code scaled the cut-out with ``image.scale`` instead.
    """
    res = _resolution(res)
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must be H x W or H x W x C, got shape {image.shape}")
    matrix = crop_matrix(center, scale, res, rot)
    if matrix.shape != (2, 3):
        raise ValueError("crop_image takes one person: center (2,), scalar scale and rot")
    if image.ndim == 3 and image.shape[2] > 4:
        # cv2 warps at most 4 channels at once; warp groups and stack them back.
        parts = [crop_image(image[..., i:i + 4], center, scale, res, rot) for i in range(0, image.shape[2], 4)]
        return np.concatenate([p.reshape(res, res, -1) for p in parts], axis=2)
    out = cv2.warpAffine(
        image, matrix, (res, res), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    return out.reshape(res, res, *image.shape[2:])


def flip_points(points: ArrayLike, width: ArrayLike, perm: Sequence[int]) -> np.ndarray:
    """Mirror joints ``(..., J, 2)`` in an image ``width`` pixels wide and swap left/right joints.

    ``x -> width - 1 - x`` (pixel centres at integers), then joint ``j`` moves to index ``perm[j]``
    (``JointSet.flip``). ``width`` broadcasts against ``points[..., 0]`` (pass ``width[:, None]`` for one width per
    person of ``(N, J, 2)`` points).
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim < 2 or points.shape[-1] != 2:
        raise ValueError(f"points must have shape (..., J, 2), got {points.shape}")
    inverse = inverse_permutation(perm, points.shape[-2])
    mirrored = points.copy()
    mirrored[..., 0] = np.asarray(width, dtype=np.float64) - 1.0 - points[..., 0]
    return mirrored[..., inverse, :]


def flip_image(image: np.ndarray) -> np.ndarray:
    """Mirror an H x W (x C) image left-right (a contiguous copy)."""
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be H x W or H x W x C, got shape {image.shape}")
    return np.ascontiguousarray(image[:, ::-1])


def inverse_permutation(perm: Sequence[int], joints: int) -> np.ndarray:
    """Index array ``inv`` with ``out = x[inv]`` putting joint ``j`` of ``x`` at ``perm[j]``; validates ``perm``."""
    perm = np.asarray(perm, dtype=np.int64)
    if perm.ndim != 1 or len(perm) != joints or not np.array_equal(np.sort(perm), np.arange(joints)):
        raise ValueError(f"flip permutation {perm.tolist()} is not a permutation of the {joints} joints")
    return np.argsort(perm)
