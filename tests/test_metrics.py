"""PCKh / PCK against hand-computed cases and the golden numbers of the authors' MPII validation predictions."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io

from hourglass.evaluation.score import score
from hourglass.family import family_named
from hourglass.io.eval_files import ReaderError, read_ground_truth, read_predictions, write_predictions
from hourglass.joints import FLIC, MPII
from hourglass.metrics import (
    FLIC_CURVE_THRESHOLDS,
    MEAN_AT_0_1_INDEX,
    MPII_CURVE_THRESHOLDS,
    MPII_MEAN_JOINTS,
    THRESHOLD_OPERATOR,
    flic_pck,
    mpii_pckh,
    normalized_errors,
    within,
)

MPII_FAMILY = family_named("mpii")

# The authors' released validation predictions (pose-hg-demo's valid-ours.h5) against Tompson's
# detections_our_format.mat, measured independently of this code: the official protocol's answer.
GOLDEN = {
    "Head": 95.94, "Shoulder": 94.68, "Elbow": 88.53, "Wrist": 83.38, "Hip": 87.48, "Knee": 83.09, "Ankle": 79.05,
    "Mean": 88.04, "Mean_unweighted": 87.56, "Mean@0.1": 28.65,
}
MPII_KEYS = ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean_unweighted", "Mean@0.1"]


def _mpii_case(errors_px: np.ndarray, head: float = 10.0) -> tuple[np.ndarray, ...]:
    """One-row-per-entry MPII case: prediction = gt shifted right by ``errors_px`` (N, 16) pixels."""
    errors_px = np.atleast_2d(np.asarray(errors_px, dtype=np.float64))
    n = errors_px.shape[0]
    gt = np.zeros((n, MPII.count, 2))
    pred = gt.copy()
    pred[..., 0] = errors_px
    return pred, gt, np.ones((n, MPII.count), bool), np.full(n, head)


# ---------------------------------------------------------------- hand-computed cases


def test_operator_is_less_or_equal_at_the_exact_boundary():
    assert THRESHOLD_OPERATOR == "<="
    # 3-4-5 triangle scaled: distance 20 px exactly, head size 40 -> error 0.5 exactly (20/40 is exact in binary).
    gt = np.zeros((1, MPII.count, 2))
    pred = gt.copy()
    pred[0, :, 0], pred[0, :, 1] = 12.0, 16.0
    result = mpii_pckh(pred, gt, np.ones((1, MPII.count), bool), np.array([40.0]))
    assert np.all(result.per_joint == 100.0)
    assert within(np.array([0.5, 0.5000001, np.nan]), 0.5).tolist() == [True, False, False]
    # With the strict operator the same joints would all be wrong: the choice matters only exactly on the boundary.
    errors = normalized_errors(pred, gt, np.ones((1, MPII.count), bool), np.array([40.0]))
    assert not np.less(errors, 0.5).any()


def test_pelvis_and_thorax_are_excluded_neck_and_head_top_included():
    wrong = np.zeros(MPII.count)
    wrong[[MPII.index("pelvis"), MPII.index("thorax")]] = 100.0  # 10 head sizes away
    result = mpii_pckh(*_mpii_case(wrong))
    assert result.per_joint[MPII.index("pelvis")] == 0.0
    assert result.mean == result.mean_unweighted == 100.0
    assert MPII_MEAN_JOINTS == (0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15)

    wrong = np.zeros(MPII.count)
    wrong[MPII.index("upper_neck")] = 100.0
    result = mpii_pckh(*_mpii_case(wrong))
    assert result.mean == pytest.approx(100.0 * 13 / 14)
    assert result.groups["Head"] == 100.0  # Head = head top only, the upper neck is not in it

    wrong = np.zeros(MPII.count)
    wrong[MPII.index("head_top")] = 100.0
    assert mpii_pckh(*_mpii_case(wrong)).groups["Head"] == 0.0


def test_weighted_and_unweighted_means_differ_by_joint_counts():
    # Two people. Person 0: everything annotated and correct. Person 1: only the left wrist annotated, and wrong.
    pred, gt, annotated, head = _mpii_case(np.zeros((2, MPII.count)))
    lwri = MPII.index("l_wrist")
    pred[1, lwri, 0] = 100.0
    annotated[1] = False
    annotated[1, lwri] = True
    result = mpii_pckh(pred, gt, annotated, head)
    assert result.per_joint[lwri] == 50.0 and result.counts[lwri] == 2
    # weighted: 14 correct of 15 annotated mean joints; unweighted: (13 x 100 + 50) / 14.
    assert result.mean == pytest.approx(100.0 * 14 / 15)
    assert result.mean_unweighted == pytest.approx((13 * 100.0 + 50.0) / 14)
    assert result.groups["Wrist"] == pytest.approx(75.0)  # mean of left (50) and right (100)


def test_unannotated_joints_are_ignored_and_nan_predictions_are_wrong():
    pred, gt, annotated, head = _mpii_case(np.zeros((3, MPII.count)))
    rank = MPII.index("r_ankle")
    annotated[:, rank] = False
    gt[:, rank] = np.nan  # unannotated ground truth may be NaN (that is how the readers deliver it)
    lank = MPII.index("l_ankle")
    pred[0, lank] = np.nan
    result = mpii_pckh(pred, gt, annotated, head)
    assert np.isnan(result.per_joint[rank]) and result.counts[rank] == 0
    assert result.per_joint[lank] == pytest.approx(200.0 / 3)
    assert result.groups["Ankle"] == pytest.approx(200.0 / 3)  # a joint with no annotation is left out of its group
    # 13 annotated mean joints per row (r_ankle is not), one of the 39 wrong.
    assert result.mean == pytest.approx(100.0 * (13 * 3 - 1) / (13 * 3))


def test_mean_at_0_1_is_read_at_exactly_0_10_not_0_11():
    assert MPII_CURVE_THRESHOLDS[MEAN_AT_0_1_INDEX] == 0.1
    assert MPII_CURVE_THRESHOLDS[0] == 0.0 and MPII_CURVE_THRESHOLDS[-1] == 0.5 and len(MPII_CURVE_THRESHOLDS) == 51
    assert FLIC_CURVE_THRESHOLDS[-1] == 0.2
    # Every joint at error 0.105: wrong at 0.10, right at 0.11 (HRNet's pckAll[11] would report 100).
    result = mpii_pckh(*_mpii_case(np.full(MPII.count, 1.05)))
    assert result.mean_at_0_1 == 0.0
    assert result.curve[11] == 100.0
    assert result.curve[-1] == result.mean == 100.0
    assert np.all(np.diff(result.curve) >= 0)


def test_threshold_argument_and_figure4_accuracy():
    errors_px = np.zeros(MPII.count)
    errors_px[[MPII.index("l_wrist"), MPII.index("r_knee")]] = 3.0  # error 0.3
    result = mpii_pckh(*_mpii_case(errors_px), threshold=0.2)
    assert result.threshold == 0.2 and result.per_joint[MPII.index("l_wrist")] == 0.0
    assert MPII_FAMILY.figure4(result) == pytest.approx(100.0 * 6 / 8)
    assert mpii_pckh(*_mpii_case(errors_px), threshold=0.3).mean == 100.0
    with pytest.raises(ValueError, match="a .flic. result has other joints than .mpii."):
        MPII_FAMILY.figure4(flic_pck(np.zeros((1, 11, 2)), np.zeros((1, 11, 2)), np.ones((1, 11), bool), np.ones(1)))


def test_as_dict_keys():
    result = mpii_pckh(*_mpii_case(np.zeros(MPII.count)))
    assert list(result.as_dict()) == MPII_KEYS
    flic = flic_pck(np.zeros((2, 11, 2)), np.zeros((2, 11, 2)), np.ones((2, 11), bool), np.ones(2))
    assert list(flic.as_dict()) == ["Shoulder", "Elbow", "Wrist", "Hip", "Eye", "Nose", "Mean"]
    assert flic.mean_at_0_1 is None


@pytest.mark.parametrize("change, message", [
    (lambda p, g, a, n: (p[:, :3], g, a, n), "differ in shape"),
    (lambda p, g, a, n: (p, g, a[:, :3], n), "annotated mask"),
    (lambda p, g, a, n: (p, g, a, n[:1]), "normalize must be"),
    (lambda p, g, a, n: (p, g, a, np.r_[n[:1], 0.0]), "non-positive or non-finite normalize .*row 1"),
])
def test_inconsistent_inputs_are_rejected(change, message):
    case = _mpii_case(np.zeros((2, MPII.count)))
    with pytest.raises(ValueError, match=message):
        mpii_pckh(*change(*case))


def test_annotated_joint_without_ground_truth_is_rejected_and_row_without_annotations_may_have_no_size():
    pred, gt, annotated, head = _mpii_case(np.zeros((2, MPII.count)))
    gt[1, 4] = np.nan
    with pytest.raises(ValueError, match="row 1, joint 4"):
        mpii_pckh(pred, gt, annotated, head)
    annotated[1] = False
    head[1] = 0.0  # MPII test rows: no annotation, normalize meaningless
    assert mpii_pckh(pred, gt, annotated, head).mean == 100.0


# ---------------------------------------------------------------- golden MPII numbers


@pytest.fixture(scope="module")
def authors_preds(anchor_dir):
    return read_predictions(anchor_dir / "pose-hg-demo/preds/valid-ours.h5")


@pytest.fixture(scope="module")
def tompson_gt(anchor_dir):
    return read_ground_truth(anchor_dir / "pytorch-pose/evaluation/data/detections_our_format.mat")


@pytest.fixture(scope="module")
def h5_gt(anchor_dir):
    return read_ground_truth(anchor_dir / "pose-hg-train/data/mpii/annot/valid.h5")


def test_golden_authors_predictions_vs_tompson_ground_truth(authors_preds, tompson_gt):
    assert tompson_gt.dataset == "mpii" and len(tompson_gt) == 2958
    result = mpii_pckh(authors_preds, tompson_gt.joints, tompson_gt.annotated, tompson_gt.normalize)
    got = result.as_dict()
    assert list(got) == MPII_KEYS
    for key, value in GOLDEN.items():
        assert abs(got[key] - value) < 0.005, (key, got[key], value)
    # HRNet's index bug would have reported the curve at 0.11 as "Mean@0.1" (reference: 32.81).
    assert result.curve[11] == pytest.approx(32.81, abs=0.005)
    assert int(result.counts.sum()) == 44240
    assert MPII_FAMILY.figure4(result) == pytest.approx(83.514, abs=0.001)


def test_strict_operator_gives_the_same_golden_numbers(authors_preds, tompson_gt):
    # No normalised error lies exactly on 0.5 or 0.1, so '<' (bearpaw, mmpose) and '<=' (official toolkit, HRNet)
    # agree on every per-joint value of the golden set; the operator choice does not move the published numbers.
    errors = normalized_errors(authors_preds, tompson_gt.joints, tompson_gt.annotated, tompson_gt.normalize)
    for threshold in (0.5, 0.1):
        assert np.array_equal(np.less(errors, threshold), np.less_equal(errors, threshold))


def test_authors_predictions_vs_integer_truncated_valid_h5(authors_preds, tompson_gt, h5_gt):
    """pose-hg-train's valid.h5 truncates the GT to integers; measured effect on the authors' predictions.

    The annotated masks agree and head sizes agree to 6e-5 px, but coordinates differ by up to 1 px from truncation
    plus 13 joint entries that differ by 22-571 px (e.g. row 682 r_ankle: x = -1 in Tompson's file, 285 in valid.h5).
    At PCKh@0.5 only 4 joint decisions flip (rows 141, 2040 head_top lose, 682 r_ankle and 1340 upper_neck gain):
    head_top -0.07, upper_neck +0.03, r_ankle +0.05 points; the max per-joint difference is 0.068 points, Head 95.87
    and Ankle 79.07, while the weighted Mean stays 88.04 (the gains and losses cancel). PCKh@0.1 becomes 28.70.
    With integer GT and integer predictions two errors sit exactly on 0.1, so '<' would change Mean@0.1 here.
    """
    assert np.array_equal(h5_gt.annotated, tompson_gt.annotated)
    assert np.abs(h5_gt.normalize - tompson_gt.normalize).max() < 1e-4
    diff = np.abs(h5_gt.joints - tompson_gt.joints)[h5_gt.annotated].max(axis=1)
    assert int((diff > 1.0).sum()) == 13 and diff.max() == 571.0

    ref = mpii_pckh(authors_preds, tompson_gt.joints, tompson_gt.annotated, tompson_gt.normalize)
    result = mpii_pckh(authors_preds, h5_gt.joints, h5_gt.annotated, h5_gt.normalize)
    expected = {"Head": 95.87, "Shoulder": 94.68, "Elbow": 88.53, "Wrist": 83.38, "Hip": 87.48, "Knee": 83.09,
                "Ankle": 79.07, "Mean": 88.04, "Mean_unweighted": 87.56, "Mean@0.1": 28.70}
    for key, value in expected.items():
        assert abs(result.as_dict()[key] - value) < 0.005, (key, result.as_dict()[key], value)
    delta = result.per_joint - ref.per_joint
    assert np.abs(delta).max() == pytest.approx(100 * 2 / 2932)
    assert np.flatnonzero(delta).tolist() == [MPII.index("r_ankle"), MPII.index("upper_neck"), MPII.index("head_top")]

    errors = normalized_errors(authors_preds, h5_gt.joints, h5_gt.annotated, h5_gt.normalize)
    assert int((np.less(errors, 0.1) != np.less_equal(errors, 0.1)).sum()) == 2
    assert np.array_equal(np.less(errors, 0.5), np.less_equal(errors, 0.5))


# ---------------------------------------------------------------- FLIC


@pytest.fixture(scope="module")
def flic_gt(anchor_dir):
    return read_ground_truth(anchor_dir / "pose-hg-train/data/flic/annot/valid.h5")


def test_flic_ground_truth_against_itself_is_perfect(flic_gt):
    assert flic_gt.dataset == "flic" and len(flic_gt) == 1016
    result = flic_pck(flic_gt.joints, flic_gt.joints, flic_gt.annotated, flic_gt.normalize)
    assert all(v == 100.0 for v in result.as_dict().values())
    assert result.curve[0] == 100.0 and result.threshold == 0.2


def test_flic_perturbed_across_the_boundary(flic_gt):
    n = len(flic_gt)
    pred = flic_gt.joints.copy()
    direction = np.array([0.6, 0.8])  # unit vector

    def move(rows: slice, joint: str, factor: float) -> None:
        j = FLIC.index(joint)
        pred[rows, j] += (factor * 0.2 * flic_gt.normalize[rows])[:, None] * direction

    move(slice(0, 100), "l_wrist", 1 + 1e-6)  # just outside 0.2 torso: wrong
    move(slice(0, 300), "r_elbow", 1 - 1e-6)  # just inside: still right
    move(slice(0, 254), "nose", 1 + 1e-6)
    result = flic_pck(pred, flic_gt.joints, flic_gt.annotated, flic_gt.normalize)
    assert result.per_joint[FLIC.index("l_wrist")] == pytest.approx(100 * (n - 100) / n)
    assert result.per_joint[FLIC.index("r_elbow")] == 100.0
    assert result.groups["Nose"] == pytest.approx(75.0)
    assert result.groups["Wrist"] == pytest.approx(50 * (n - 100) / n + 50)
    assert result.groups["Elbow"] == 100.0
    assert result.mean == pytest.approx(100 * (11 * n - 354) / (11 * n))
    # Looser threshold: all correct again; at 0.21 on the curve too.
    assert flic_pck(pred, flic_gt.joints, flic_gt.annotated, flic_gt.normalize, threshold=0.21).mean == 100.0


def test_flic_ignores_missing_ground_truth():
    gt = np.full((2, 11, 2), 50.0)
    annotated = np.ones((2, 11), bool)
    annotated[1, 0] = False
    pred = gt.copy()
    pred[1, 0] = 0.0  # far away, but not annotated
    result = flic_pck(pred, gt, annotated, np.array([10.0, 10.0]))
    assert result.per_joint[0] == 100.0 and result.counts[0] == 1


# ---------------------------------------------------------------- readers


def test_prediction_round_trip_is_one_based_on_disk(tmp_path):
    preds = np.arange(2 * 16 * 2, dtype=np.float64).reshape(2, 16, 2) + 0.25
    path = tmp_path / "out" / "preds.h5"
    write_predictions(path, preds, extra={"index": np.array([3, 7])})
    with h5py.File(path, "r") as h5:
        assert np.array_equal(h5["preds"][()], preds + 1.0) and h5["preds"].dtype == np.float64
        assert h5["index"][()].tolist() == [3, 7]
    assert np.array_equal(read_predictions(path), preds)
    assert [p.name for p in path.parent.iterdir()] == ["preds.h5"]  # no temporary left behind
    with pytest.raises(ValueError, match="reserved"):
        write_predictions(path, preds, extra={"preds": preds})
    assert np.array_equal(read_predictions(path), preds)  # a failed write leaves the old file intact


def test_prediction_reader_errors_name_the_file(tmp_path):
    with pytest.raises(ReaderError, match="missing.h5: prediction file not found"):
        read_predictions(tmp_path / "missing.h5")
    no_preds = tmp_path / "no_preds.h5"
    with h5py.File(no_preds, "w") as h5:
        h5["pred"] = np.zeros((2, 16, 2))
    with pytest.raises(ReaderError, match=r"no_preds.h5: missing dataset 'preds'; found \['pred'\]"):
        read_predictions(no_preds)
    bad_shape = tmp_path / "bad_shape.h5"
    with h5py.File(bad_shape, "w") as h5:
        h5["preds"] = np.zeros((3, 16, 3))  # neither (N, J, 2) nor Tompson's (2, J, N)
    with pytest.raises(ReaderError, match=r"bad_shape.h5: 'preds' has shape \(3, 16, 3\), which fits neither"):
        read_predictions(bad_shape)
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(ReaderError, match="text.h5: not a readable HDF5 file"):
        read_predictions(text)


def _tompson_like(path, n=3, drop=None):
    rng = np.random.default_rng(0)
    data = {
        "jnt_missing": np.zeros((16, n), np.uint8),
        "pos_gt_src": rng.uniform(1, 100, (16, 2, n)),
        "headboxes_src": np.stack([np.full((2, n), 10.0), np.stack([np.full(n, 13.0), np.full(n, 14.0)])]),
    }
    data["jnt_missing"][3, 1] = 1
    data.pop(drop, None)
    scipy.io.savemat(path, data)
    return data


def test_tompson_mat_reader_converts_coordinates_and_head_size(tmp_path):
    path = tmp_path / "gt.mat"
    data = _tompson_like(path)
    gt = read_ground_truth(path)
    assert gt.dataset == "mpii" and gt.joints.shape == (3, 16, 2) and gt.source == path
    assert np.allclose(gt.joints[2, 5], data["pos_gt_src"][5, :, 2] - 1.0)
    assert not gt.annotated[1, 3] and np.isnan(gt.joints[1, 3]).all()
    assert np.allclose(gt.normalize, 0.6 * 5.0)  # head box (10,10)-(13,14): diagonal 5


def test_ground_truth_reader_errors(tmp_path):
    with pytest.raises(ReaderError, match="nope.mat: ground-truth file not found"):
        read_ground_truth(tmp_path / "nope.mat")
    _tompson_like(tmp_path / "nohead.mat", drop="headboxes_src")
    with pytest.raises(ReaderError, match=r"nohead.mat: missing variable\(s\) \['headboxes_src'\]"):
        read_ground_truth(tmp_path / "nohead.mat")
    v73 = tmp_path / "v73.mat"
    v73.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64" + bytes(200))
    with pytest.raises(ReaderError, match="v73.mat: MATLAB v7.3"):
        read_ground_truth(v73)
    junk = tmp_path / "junk.txt"
    junk.write_text("hello")
    with pytest.raises(ReaderError, match="junk.txt: unknown ground-truth format"):
        read_ground_truth(junk)
    odd = tmp_path / "odd.h5"
    with h5py.File(odd, "w") as h5:
        h5["center"], h5["scale"] = np.ones((1, 2)), np.ones(1)
        h5["part"], h5["imgname"] = np.ones((1, 14, 2)), np.array([b"a.jpg"])
    # 14 joints: readable, but no built-in card has 14 keypoints, so scoring asks for the card by name
    assert read_ground_truth(odd).dataset is None
    with pytest.raises(ReaderError, match="odd.h5: 14 joints per person match no built-in card; name the dataset's "
                                          "card with --dataset NAME"):
        score(np.ones((1, 14, 2)), read_ground_truth(odd))
    preds_as_gt = tmp_path / "preds.h5"
    write_predictions(preds_as_gt, np.zeros((1, 16, 2)))
    with pytest.raises(ReaderError, match=r"preds.h5: missing dataset\(s\)"):
        read_ground_truth(preds_as_gt)
