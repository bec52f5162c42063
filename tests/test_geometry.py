"""The crop transform: conventions, agreement of pixels and points, the original getTransform, flips."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hourglass.geometry import crop_image, crop_matrix, flip_image, flip_points, transform_points
from hourglass.joints import FLIC, MPII


def original_get_transform(center: np.ndarray, scale: float, rot: float, res: int) -> np.ndarray:
    """pose-hg-train img.lua getTransform, restated as 3x3 matrices (continuous frame: pixel k spans [k, k+1))."""
    h = 200.0 * scale
    t = np.array([[res / h, 0, res * (-center[0] / h + 0.5)], [0, res / h, res * (-center[1] / h + 0.5)], [0, 0, 1]])
    if rot != 0:
        ang = math.radians(-rot)
        r = np.array([[math.cos(ang), -math.sin(ang), 0], [math.sin(ang), math.cos(ang), 0], [0, 0, 1]])
        to_origin = np.array([[1, 0, -res / 2], [0, 1, -res / 2], [0, 0, 1]])
        back = np.array([[1, 0, res / 2], [0, 1, res / 2], [0, 0, 1]])
        t = back @ r @ to_origin @ t
    return t


@pytest.mark.parametrize("rot", [0.0, 17.0, -45.0, 90.0])
@pytest.mark.parametrize("res", [64, 256])
def test_matches_original_get_transform_up_to_the_half_pixel_frame(rot: float, res: int) -> None:
    # The original's continuous frame puts pixel k's centre at k + 0.5; ours at k. Same map otherwise.
    rng = np.random.default_rng(1)
    center, scale = np.array([312.3, 205.7]), 1.37
    points = rng.uniform(0, 600, (20, 2))
    original = original_get_transform(center + 0.5, scale, rot, res)
    expected = (np.c_[points + 0.5, np.ones(20)] @ original.T)[:, :2] - 0.5
    np.testing.assert_allclose(transform_points(points, center, scale, res, rot), expected, atol=1e-9)


def test_center_lands_on_the_middle_of_the_crop() -> None:
    for res in (64, 256, 7):
        for rot in (0.0, 33.0):
            out = transform_points([120.5, 88.25], [120.5, 88.25], 0.8, res, rot)
            np.testing.assert_allclose(out, [(res - 1) / 2] * 2, atol=1e-12)


def test_crop_edges_map_to_pixel_borders() -> None:
    # [c - h/2, c + h/2] -> [-0.5, res - 0.5]
    out = transform_points([[100 - 100.0, 50 - 100.0], [100 + 100.0, 50 + 100.0]], [100, 50], 1.0, 64)
    np.testing.assert_allclose(out, [[-0.5, -0.5], [63.5, 63.5]], atol=1e-12)


def test_positive_rotation_turns_content_counter_clockwise() -> None:
    # A point right of the centre goes up (y decreases) in the crop for rot = +90.
    out = transform_points([150.0, 100.0], [100.0, 100.0], 1.0, 200, rot=90.0)
    np.testing.assert_allclose(out, [99.5, 99.5 - 50.0], atol=1e-9)


def test_round_trip_with_rotation_and_per_row_centres() -> None:
    rng = np.random.default_rng(0)
    n, joints = 12, 16
    centers = rng.uniform(100, 500, (n, 2))
    scales = rng.uniform(0.5, 3.0, n)
    rots = rng.uniform(-60, 60, n)
    points = centers[:, None, :] + rng.uniform(-150, 150, (n, joints, 2))
    points[3, 5] = np.nan
    for res in (64, 256):
        crop = transform_points(points, centers, scales, res, rots)
        back = transform_points(crop, centers, scales, res, rots, inverse=True)
        np.testing.assert_allclose(back, points, atol=0.01)
        assert np.isnan(crop[3, 5]).all() and np.isnan(back[3, 5]).all()
        # The batched answer equals person-by-person calls.
        for i in (0, 7):
            np.testing.assert_allclose(crop[i], transform_points(points[i], centers[i], scales[i], res, rots[i]))
    one_each = transform_points(points[:, 0], centers, scales, 64, rots)
    np.testing.assert_allclose(one_each, transform_points(points, centers, scales, 64, rots)[:, 0])


def test_inverse_matrix_inverts() -> None:
    forward = crop_matrix([[10.0, 20.0], [300.0, 40.0]], [1.0, 2.5], 64, [30.0, -10.0])
    inverse = crop_matrix([[10.0, 20.0], [300.0, 40.0]], [1.0, 2.5], 64, [30.0, -10.0], inverse=True)
    assert forward.shape == inverse.shape == (2, 2, 3)
    square = lambda m: np.concatenate([m, np.broadcast_to([0.0, 0.0, 1.0], m.shape[:-2] + (1, 3))], -2)  # noqa: E731
    np.testing.assert_allclose(square(forward) @ square(inverse), np.broadcast_to(np.eye(3), (2, 3, 3)), atol=1e-12)


def dot_image(height: int, width: int, at: tuple[float, float], channels: int = 3, sigma: float = 3.0) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    blob = np.exp(-((xs - at[0]) ** 2 + (ys - at[1]) ** 2) / (2 * sigma**2))
    image = np.zeros((height, width, channels), np.uint8)
    image[..., channels // 2] = np.round(255 * blob).astype(np.uint8)
    return image


def centroid(channel: np.ndarray) -> np.ndarray:
    weights = channel.astype(np.float64)
    ys, xs = np.mgrid[0 : channel.shape[0], 0 : channel.shape[1]]
    return np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()


@pytest.mark.parametrize(
    ("scale", "rot", "res"),
    [(1.0, 0.0, 256), (1.6, 30.0, 256), (0.7, -50.0, 256), (2.0, 90.0, 64), (1.2, 15.0, 64)],
)
def test_crop_image_puts_a_dot_where_transform_points_says(scale: float, rot: float, res: int) -> None:
    dot = (243.3, 161.7)
    center = np.array([220.0, 190.0])
    image = dot_image(360, 480, dot, sigma=3.0 * scale)  # a blob that stays a few crop pixels wide at any scale
    crop = crop_image(image, center, scale, res, rot)
    assert crop.shape == (res, res, 3) and crop.dtype == np.uint8
    assert crop[..., 0].max() == 0 and crop[..., 2].max() == 0 and crop[..., 1].max() > 100
    expected = transform_points(dot, center, scale, res, rot)
    assert np.abs(centroid(crop[..., 1]) - expected).max() < 0.05  # measured ~0.01; a half-pixel slip fails


def test_crop_image_fills_outside_with_zero_and_keeps_layout() -> None:
    image = np.full((40, 30), 200, np.uint8)
    crop = crop_image(image, [15.0, 20.0], 1.0, 64)  # 200 px window around a 30 x 40 image
    assert crop.shape == (64, 64) and crop[0, 0] == 0 and crop[32, 32] == 200
    many = np.full((40, 30, 6), 7, np.uint8)
    many[..., 5] = 9
    out = crop_image(many, [15.0, 20.0], 0.1, 16)
    assert out.shape == (16, 16, 6) and (out[..., :5] == 7).all() and (out[..., 5] == 9).all()


def test_flip_points_twice_is_identity_and_matches_flip_image() -> None:
    rng = np.random.default_rng(2)
    points = rng.uniform(0, 100, (4, 16, 2))
    points[1, 2] = np.nan
    twice = flip_points(flip_points(points, 101, MPII.flip), 101, MPII.flip)
    np.testing.assert_allclose(twice, points, atol=1e-12)  # NaN stays NaN (equal_nan)
    image = dot_image(50, 80, (21.0, 30.0), channels=1, sigma=1.5)
    mirrored = flip_image(image)
    np.testing.assert_array_equal(flip_image(mirrored), image)
    one_joint = flip_points([[[21.0, 30.0]]], 80, [0])[0, 0]
    np.testing.assert_allclose(centroid(mirrored[..., 0]), one_joint, atol=1e-6)


@pytest.mark.parametrize("joints", [MPII, FLIC], ids=lambda s: s.name)
def test_flip_points_swaps_left_and_right(joints) -> None:
    rng = np.random.default_rng(3)
    points = rng.uniform(0, 63, (joints.count, 2))
    flipped = flip_points(points, 64, joints.flip)
    for j, name in enumerate(joints.names):
        side = {"l_": "r_", "r_": "l_"}.get(name[:2])
        mirror = side + name[2:] if side else name
        k = joints.index(mirror)
        assert (k != j) == (name[:2] in ("l_", "r_"))
        np.testing.assert_allclose(flipped[k], [63 - points[j, 0], points[j, 1]])


def test_bad_input_is_rejected_with_the_value() -> None:
    with pytest.raises(ValueError, match="res"):
        crop_matrix([0, 0], 1.0, 0)
    with pytest.raises(ValueError, match="scale"):
        transform_points([1, 2], [0, 0], -1.0, 64)
    with pytest.raises(ValueError, match="points"):
        transform_points(np.zeros((3, 2)), np.zeros((4, 2)), np.ones(4), 64)
    with pytest.raises(ValueError, match="permutation"):
        flip_points(np.zeros((16, 2)), 64, FLIC.flip)
    with pytest.raises(ValueError, match="one person"):
        crop_image(np.zeros((8, 8, 3), np.uint8), np.zeros((2, 2)), np.ones(2), 8)
