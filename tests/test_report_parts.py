"""The report's parts on their own: the mean-pose baseline, the example ranking, skeleton drawing, the data
version and the discovery of trained runs."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from matplotlib.figure import Figure

from hourglass.draw import draw_skeleton
from hourglass.evaluation.baselines import mean_pose, mean_pose_predictions, place_pose
from hourglass.io.annotations import Annotations
from hourglass.joints import MPII
from hourglass.report.examples import rank_people
from hourglass.report.inputs import discover_variants
from hourglass.report.provenance import data_version


def _table(joints: np.ndarray, center: np.ndarray, scale: np.ndarray) -> Annotations:
    n, j = joints.shape[:2]
    annotated = np.isfinite(joints).all(axis=2)
    return Annotations(imgname=np.array([f"{i}.jpg" for i in range(n)]), center=center, scale=scale,
                       joints=joints, annotated=annotated, visible=annotated, normalize=np.full(n, 10.0))


def test_mean_pose_is_scale_and_position_invariant() -> None:
    pose = np.random.default_rng(0).uniform(-0.4, 0.4, (MPII.count, 2))
    center = np.array([[100.0, 80.0], [300.0, 200.0], [50.0, 60.0]])
    scale = np.array([1.0, 2.0, 0.5])
    train = _table(place_pose(pose, center, scale), center, scale)
    train.joints[0, 3] = np.nan  # a missing joint does not bias the mean
    train.annotated[0, 3] = False
    np.testing.assert_allclose(mean_pose(train), pose, atol=1e-12)
    valid = _table(place_pose(pose, center[:2] + 7, scale[:2] * 3), center[:2] + 7, scale[:2] * 3)
    np.testing.assert_allclose(mean_pose_predictions(train, valid), valid.joints, atol=1e-9)
    train.joints[:, 5] = np.nan  # never annotated: no prediction is invented
    assert np.isnan(mean_pose(train)[5]).all() and np.isfinite(mean_pose(train)[4]).all()
    with pytest.raises(ValueError, match="scale"):
        mean_pose(_table(train.joints, center, np.array([1.0, 0.0, 1.0])))


def test_rank_people_orders_by_accuracy_then_error() -> None:
    gt = _table(np.zeros((3, MPII.count, 2)), np.zeros((3, 2)), np.ones(3))
    pred = gt.joints.copy()
    pred[0] += 2.0  # all joints within 0.5 x 10 px but 2.8 px off
    pred[1, :8] += 20.0  # half the joints wrong
    best, worst = rank_people(pred, gt, threshold=0.5)
    assert [e.row for e in best] == [2, 0, 1] and [e.row for e in worst] == [1, 0, 2]
    assert best[0].accuracy == 100.0 and worst[0].accuracy == 50.0


def test_draw_skeleton_checks_shape_and_skips_missing_joints() -> None:
    ax = Figure().add_subplot()
    joints = np.arange(MPII.count * 2, dtype=float).reshape(MPII.count, 2)
    joints[0] = np.nan
    draw_skeleton(ax, joints, MPII, colour="red", label="prediction")
    assert len(ax.lines) == len(MPII.limbs) - 1  # the limb touching the missing ankle is not drawn
    assert [h.get_label() for h in ax.get_legend_handles_labels()[0]] == ["prediction"]
    with pytest.raises(ValueError, match=r"\(16, 2\)"):
        draw_skeleton(ax, joints[:5], MPII, colour="red")


def test_data_version_prefers_dvc_lock(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {"preprocess": {"outs": [
        {"path": "data/processed/synthetic", "md5": "abc123.dir", "nfiles": 3}]}}}))
    assert "md5 `abc123.dir`" in data_version("synthetic", lock, tmp_path / "annot")
    with h5py.File(tmp_path / "x.h5", "w") as h5:
        h5["a"] = [1]
    assert "`x.h5` sha256" in data_version("mpii", lock, tmp_path)


def test_discover_lists_params_variants_and_seeds_first_then_others(tmp_path: Path) -> None:
    """Sweep variants with the params' seeds (trained or not); other directories with metrics: their seed
    directories, or the directory itself when it has no seed level (an imported model evaluated by hand)."""
    for path in ("zz/eval", "yy/seed-4/eval", "yy/seed-x/eval", "hg2/seed-1/eval", "hg2/seed-9/eval"):
        (tmp_path / path).mkdir(parents=True)
        (tmp_path / path / "metrics.json").write_text("{}")
    (tmp_path / "empty" / "seed-0").mkdir(parents=True)
    runs = discover_variants(tmp_path, ["hg8", "hg2"], [1, 0])
    assert [r.name for r in runs] == ["hg8", "hg2", "yy", "zz"]
    assert [[s.seed for s in r.seeds] for r in runs] == [[1, 0], [1, 0], [4], [None]]
    assert [[s.seed for s in r.evaluated] for r in runs] == [[], [1], [4], [None]]
    assert runs[3].seeds[0].path == tmp_path / "zz"
    assert any("seed(s) 9 under" in m and "left out: not in params `seeds` [1, 0]" in m for m in runs[1].missing)
    assert any("`hg8` seed 1 has not been trained" in m for m in runs[0].missing)
