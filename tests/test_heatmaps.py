"""Targets, decoding and the flip test, each against an independent statement of the original's rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from shipped import paper

from hourglass import create_model
from hourglass.geometry import flip_points, transform_points
from hourglass.heatmaps import (
    DEFAULT_RADIUS,
    DEFAULT_SIGMA,
    decode,
    flip_average,
    flip_heatmaps,
    gaussian_heatmaps,
    heatmaps_to_image,
)
from hourglass.joints import FLIC, MPII
from hourglass.supervision import final_heatmaps


def test_defaults_match_the_config_schema() -> None:
    assert DEFAULT_SIGMA == paper("targets").sigma == 1.75
    assert DEFAULT_RADIUS == paper("targets").radius == 3


def test_target_peak_value_and_shape_match_a_direct_2d_formula() -> None:
    points = np.array([[10.4, 20.6], [30.0, 31.0], [0.2, 63.4]])
    maps = gaussian_heatmaps(points, [True, True, True], 64)
    assert maps.shape == (3, 64, 64) and maps.dtype == np.float32
    for j, (px, py) in enumerate(np.floor(points + 0.5)):  # nearest pixel: (10, 21), (30, 31), (0, 63)
        assert maps[j].max() == 1.0 and maps[j, int(py), int(px)] == 1.0
        ys, xs = np.mgrid[0:64, 0:64]
        window = (np.abs(xs - px) <= 3) & (np.abs(ys - py) <= 3)
        expected = np.exp(-((xs - px) ** 2 + (ys - py) ** 2) / (2 * 1.75**2)) * window
        np.testing.assert_allclose(maps[j], expected, atol=1e-6)
    assert maps[0, 21, 13] > 0.2 and maps[0, 21, 14] == 0.0  # cut off beyond 3 px, like the 7x7 patch


def test_subpixel_target_is_centred_on_the_point() -> None:
    maps = gaussian_heatmaps([[10.4, 20.6]], [True], 64, subpixel=True, radius=8)
    assert maps[0].max() < 1.0 and np.unravel_index(maps[0].argmax(), maps[0].shape) == (21, 10)
    ys, xs = np.mgrid[0:64, 0:64]
    weights = maps[0].astype(np.float64)
    np.testing.assert_allclose([(weights * xs).sum() / weights.sum(), (weights * ys).sum() / weights.sum()],
                               [10.4, 20.6], atol=1e-3)


def test_unannotated_nan_and_out_of_range_joints_give_zero_maps() -> None:
    points = np.array([[[5.0, 5.0], [np.nan, 3.0], [-3.6, 10.0], [-3.4, 10.0], [30.0, 66.6], [30.0, 66.4]]] * 2)
    annotated = np.array([[False, True, True, True, True, True], [True] * 6])
    maps = gaussian_heatmaps(points, annotated, 64)
    assert maps.shape == (2, 6, 64, 64)
    peaks = maps.max(axis=(-2, -1))
    # x = -3.6 rounds to -4: its window ends at -1, off the map; -3.4 rounds to -3 and reaches column 0.
    np.testing.assert_array_equal(peaks > 0, [[False, False, False, True, False, True],
                                              [True, False, False, True, False, True]])
    np.testing.assert_allclose(maps[1, 3, 10, 0], math.exp(-9 / (2 * 1.75**2)), rtol=1e-6)


def test_targets_reject_bad_shapes() -> None:
    with pytest.raises(ValueError, match="annotated"):
        gaussian_heatmaps(np.zeros((16, 2)), np.ones(15, bool), 64)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_heatmaps(np.zeros((16, 2)), np.ones(16, bool), 64, sigma=0)


def original_postprocess(maps: np.ndarray) -> np.ndarray:
    """pose.lua postprocess restated literally in 1-based indices: argmax, quarter offset, no +0.5 (frame shift)."""
    joints, height, width = maps.shape
    out = np.zeros((joints, 2))
    for j in range(joints):
        index = int(np.argmax(maps[j]))
        px, py = index % width + 1, index // width + 1
        hm = lambda x, y, j=j: maps[j, y - 1, x - 1]  # noqa: E731  (1-based access)
        if 1 < px < width and 1 < py < height:
            diff = (hm(px + 1, py) - hm(px - 1, py), hm(px, py + 1) - hm(px, py - 1))
            out[j] = px + 0.25 * np.sign(diff[0]), py + 0.25 * np.sign(diff[1])
        else:
            out[j] = px, py
    return out - 1


def test_decode_recovers_integer_peaks_and_applies_the_quarter_offset() -> None:
    maps = np.zeros((5, 16, 16), np.float32)
    maps[0, 7, 9] = 1.0  # lone peak: exact
    maps[1, 7, 9], maps[1, 7, 10], maps[1, 7, 8] = 1.0, 0.6, 0.5  # right neighbour higher: +0.25 x
    maps[1, 6, 9], maps[1, 8, 9] = 0.7, 0.2  # upper neighbour higher: -0.25 y
    maps[2, 0, 5], maps[2, 0, 6] = 1.0, 0.5  # top border: no offset at all
    maps[3, 4, 4], maps[3, 4, 5], maps[3, 4, 3] = 1.0, 0.5, 0.5  # tied neighbours: no offset
    maps[4, 15, 15] = 0.3  # corner
    coords, maxvals = decode(maps)
    assert isinstance(coords, np.ndarray) and coords.shape == (5, 2) and maxvals.shape == (5,)
    np.testing.assert_array_equal(coords, [[9, 7], [9.25, 6.75], [5, 0], [4, 4], [15, 15]])
    np.testing.assert_allclose(maxvals, [1, 1, 1, 1, 0.3])


def test_decode_agrees_with_the_original_on_random_maps_for_numpy_and_torch() -> None:
    rng = np.random.default_rng(4)
    maps = rng.random((2, 3, 16, 12, 10)).astype(np.float32)  # (N, stacks, J, H, W)
    maps[0, 0, 0] = 0.0
    maps[0, 0, 0, 4, 0] = 1.0  # a peak on the left border
    coords, maxvals = decode(maps)
    assert coords.shape == (2, 3, 16, 2) and maxvals.shape == (2, 3, 16)
    for n in range(2):
        for s in range(3):
            np.testing.assert_array_equal(coords[n, s], original_postprocess(maps[n, s]))
    np.testing.assert_array_equal(maxvals, maps.max(axis=(-2, -1)))
    torch_coords, torch_maxvals = decode(torch.from_numpy(maps))
    assert isinstance(torch_coords, torch.Tensor) and torch_coords.dtype == torch.float32
    np.testing.assert_array_equal(torch_coords.numpy(), coords)
    np.testing.assert_array_equal(torch_maxvals.numpy(), maxvals)


def test_flip_heatmaps_numpy_and_torch_agree_and_invert() -> None:
    rng = np.random.default_rng(5)
    maps = rng.random((2, 11, 8, 6)).astype(np.float32)
    flipped = flip_heatmaps(maps, FLIC.flip)
    np.testing.assert_array_equal(flipped[:, 3], maps[:, 0, :, ::-1])  # l_shoulder's map becomes r_shoulder's
    np.testing.assert_array_equal(flipped[:, 10], maps[:, 10, :, ::-1])  # nose stays
    np.testing.assert_array_equal(flip_heatmaps(flipped, FLIC.flip), maps)
    np.testing.assert_array_equal(flip_heatmaps(torch.from_numpy(maps), FLIC.flip).numpy(), flipped)


def test_flip_average_shift_moves_the_mirrored_maps_one_pixel_right() -> None:
    mirrored = np.zeros((1, 16, 8, 8), np.float32)
    mirrored[0, 0, 3, 6] = 1.0  # r_ankle at x = 6 in the mirror -> l_ankle at x = 1 in the image
    plain = flip_average(np.zeros_like(mirrored), mirrored, MPII.flip)
    shifted = flip_average(torch.zeros(1, 16, 8, 8), torch.from_numpy(mirrored), MPII.flip, shift=True)
    assert plain[0, 5, 3, 1] == 0.5 and plain.sum() == 0.5
    assert shifted[0, 5, 3, 2] == 0.5 and float(shifted.sum()) == 0.5


def test_flip_test_gives_mirrored_predictions_for_a_mirrored_input() -> None:
    torch.manual_seed(0)
    model = create_model(stacks=1, features=16, joints=16).eval()
    image = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        out = final_heatmaps(model(torch.cat([image, image.flip(-1)])).stacks, "intermediate")  # (2, 16, 32, 32)
    width = out.shape[-1]
    plain, _ = decode(out.numpy())
    # The random network alone is not mirror-symmetric, so the check below is not vacuous.
    assert np.abs(plain[1] - flip_points(plain[0], width, MPII.flip)).max() > 1
    coords, maxvals = decode(flip_average(out[:1], out[1:], MPII.flip))
    mirror_coords, mirror_maxvals = decode(flip_average(out[1:], out[:1], MPII.flip))
    expected = flip_points(coords.numpy()[0], width, MPII.flip)
    np.testing.assert_allclose(mirror_coords.numpy()[0], expected, atol=1e-4)
    np.testing.assert_allclose(mirror_maxvals.numpy()[0], maxvals.numpy()[0][list(MPII.flip)], atol=1e-6)


@pytest.mark.parametrize(("subpixel", "bound"), [(True, 0.25), (False, 0.5)])
def test_target_decode_and_back_to_the_image_recovers_the_point(subpixel: bool, bound: float) -> None:
    # With the Gaussian on the exact point the quarter offset leaves at most 0.25 heatmap px per axis; with the
    # original's rounded peak it never fires on a clean target, so the error is the rounding, at most 0.5.
    rng = np.random.default_rng(6)
    n, joints, res = 64, 16, 64
    centers = rng.uniform(200, 600, (n, 2))
    scales = rng.uniform(0.6, 3.0, n)
    rots = rng.choice([0.0, 25.0, -40.0], n)
    inside = rng.uniform(1.0, res - 2.0, (n, joints, 2))  # keep argmaxes off the border, where no offset applies
    points = transform_points(inside, centers, scales, res, rots, inverse=True)
    targets = gaussian_heatmaps(transform_points(points, centers, scales, res, rots), np.ones((n, joints), bool),
                                res, subpixel=subpixel)
    coords, _ = decode(targets)
    back = heatmaps_to_image(torch.from_numpy(coords), centers, scales, res, rots)
    error_hm = (back - points) * (res / (200.0 * scales))[:, None, None]  # original px -> heatmap px
    assert np.hypot(*np.moveaxis(error_hm, -1, 0)).max() <= bound * math.sqrt(2) + 1e-4
    straight = rots == 0  # heatmap and image axes coincide: the bound holds per axis
    assert np.abs(error_hm[straight]).max() <= bound + 1e-4
    assert np.abs(error_hm[straight]).max() > bound - 0.05  # the bound is reached, so it is the right one
