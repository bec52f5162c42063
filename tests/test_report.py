"""The report stage on a fabricated models/ tree over a tiny synthetic dataset (budget: under 60 s).

Predictions are the ground truth plus noise, scored with the real metric, so every number the report prints can be
checked against an independent computation; a second tree with nothing in it checks that absent inputs are named
in the report instead of crashing the stage.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import matplotlib.image
import numpy as np
import pytest
import yaml
from matplotlib.figure import Figure

from hourglass.annotations import Annotations, read_annotations
from hourglass.baselines import mean_pose, mean_pose_predictions, place_pose, score_mean_pose
from hourglass.config import parse_params
from hourglass.data.synthetic import generate_dataset
from hourglass.draw import draw_skeleton
from hourglass.evaluate import score
from hourglass.joints import MPII
from hourglass.family import FAMILIES
from hourglass.readers import read_ground_truth, write_predictions
from hourglass.report import (PAPER_MPII_FINAL, PAPER_MPII_INTERMEDIATE, data_version, discover_variants,
                              rank_people)
from pipeline.report import main
from shipped import paper, write_params

FIGURES = ("figure4.png", "figure5.png", "examples_best.png", "examples_worst.png")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/raw/synthetic with a few images: real JPEGs and annotation files in the download layout."""
    out = tmp_path_factory.mktemp("data") / "raw" / "synthetic"
    generate_dataset(paper("synthetic", train_images=16, valid_images=8, workers=1), out, progress=False)
    return out


def _params(tmp: Path, raw: Path, joint_set: str = "mpii") -> Path:
    params = {"dataset": "synthetic", "sweep": ["hg2", "hg1", "hg4"], "flows": {"champion_variant": "hg2"},
              "download": {"root": str(raw.parent)}, "synthetic": {"joint_set": joint_set},
              "train": {"batch_size": 4, "variants": {"hg2": {"stacks": 2}, "hg1": {"stacks": 1},
                                                      "hg4": {"stacks": 4}}},
              "mlflow": {"enabled": False}, "report": {"examples": 4}}
    return write_params(tmp / "params.yaml", params)


def _noisy(gt: Annotations, sigma: float, seed: int) -> np.ndarray:
    """Predictions: ground truth plus Gaussian noise in head-size units; unannotated joints at the centre."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, sigma, gt.joints.shape) * gt.normalize[:, None, None]
    return np.where(gt.annotated[..., None], gt.joints + noise, gt.center[:, None, :])


def _eval_block(preds: np.ndarray, valid: Path) -> tuple[dict, dict]:
    result = score(preds, read_ground_truth(valid))
    final = {**result.as_dict(), "figure4": FAMILIES[result.dataset].figure4(result)}
    return final, dict(zip(result.joint_names, result.per_joint.tolist()))


def _fake_variant(models: Path, raw: Path, params: Path, name: str, stacks: int, sigma: float) -> dict:
    """models/<name>/ as training and evaluation leave it; returns the evaluation's final scores."""
    out = models / name
    (out / "eval").mkdir(parents=True)
    gt = read_annotations(raw / "annot" / "valid.h5")
    valid = raw / "annot" / "valid.h5"
    final_preds = _noisy(gt, sigma, seed=stacks)
    write_predictions(out / "eval" / "preds.h5", final_preds,
                      {"maxvals": np.ones(gt.joints.shape[:2]), "rows": np.arange(len(gt))})
    final, per_joint = _eval_block(final_preds, valid)
    stack_list = [{"stack": stacks, "metrics": final, "per_joint": per_joint}]
    if stacks > 1:
        first, first_joints = _eval_block(_noisy(gt, 2 * sigma, seed=10 + stacks), valid)
        stack_list.insert(0, {"stack": 1, "metrics": first, "per_joint": first_joints})
    evaluation = {"variant": name, "dataset": "synthetic", "metric": "PCKh@0.5", "flip_test": True,
                  "num_people": len(gt), "final": final, "per_joint": per_joint, "stacks": stack_list,
                  "seconds": 12.5, "images_per_s": 3.2}
    if stacks > 1:  # the 1-stack variant's count must then come from its config
        evaluation["parameters"] = 6_570_400
    (out / "eval" / "metrics.json").write_text(json.dumps(evaluation))
    config = yaml.safe_load(params.read_text())
    resolved = parse_params(config).model_copy(deep=True).model_dump(mode="json")
    resolved["model"]["stacks"] = stacks
    (out / "config.yaml").write_text(yaml.safe_dump({"variant": name, **resolved}))
    (out / "mlflow.json").write_text(json.dumps({"run_id": f"run-{name}"}))
    prefix = "val/pckh" if "Mean@0.1" in final else "val/pck"
    columns = ["epoch", f"{prefix}/Mean", "val/figure4",
               "val/loss", "train/loss", "train/lr", "train/img_s", "step"]
    with open(out / "epochs.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for epoch in range(1, 4):
            writer.writerow([epoch, 20 * epoch, 15 * epoch + stacks, 1e-3, 2e-3, 2.5e-4, 8.0, 10 * epoch])
    (out / "metrics.json").write_text(json.dumps({f"{prefix}/Mean": 60.0, f"best/{prefix}/Mean": 60.0,
                                                  "best/epoch": 3.0, "steps": 30.0}))
    return final


def _run(tmp: Path, params: Path, models: Path, anchor: Path) -> Path:
    out = tmp / "reports"
    assert main(["--params", str(params), "--models", str(models), "--out", str(out),
                 "--dvc-lock", str(tmp / "dvc.lock"), "--anchor-data", str(anchor)]) == 0
    return out


def _assert_pngs(figures: Path) -> None:
    for name in FIGURES:
        path = figures / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE, name
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 200, (name, pixels.shape)
        assert pixels[..., :3].std() > 0.01, f"{name} is blank"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, raw: Path) -> tuple[Path, dict[str, dict]]:
    tmp = tmp_path_factory.mktemp("project")
    params = _params(tmp, raw)
    models = tmp / "models"
    finals = {"hg2": _fake_variant(models, raw, params, "hg2", 2, 0.12),
              "hg1": _fake_variant(models, raw, params, "hg1", 1, 0.3)}
    (tmp / "reports").mkdir()
    (tmp / "reports" / "champion.json").write_text("{}")  # another stage's file: must survive untouched
    out = _run(tmp, params, models, tmp / "no-anchor-data")
    return out, finals


def test_results_table_has_paper_variants_and_baseline(report: tuple[Path, dict], raw: Path) -> None:
    out, finals = report
    text = (out / "results.md").read_text()
    for value in (*PAPER_MPII_FINAL.values(), *PAPER_MPII_INTERMEDIATE.values(), 90.0, 85.2):
        assert f"| {value:.1f} |" in text, value
    baseline = score_mean_pose(raw / "annot" / "train.h5", raw / "annot" / "valid.h5")
    for name, final in finals.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| **{name}** |"))
        assert f"| {final['Elbow']:.1f} |" in row and f"| {final['Mean']:.1f} |" in row
        assert final["Mean"] > baseline.mean + 20  # the fabricated models beat the floor clearly
    assert next(line for line in text.splitlines() if line.startswith("| mean-pose baseline |")).count(
        f"| {baseline.mean:.1f} |") == 1
    assert "Mean PCKh@0.5 (%)" in text and "Training throughput (img/s)" in text and "Parameters (M)" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["variants"]["hg2"]["final"]["Mean"] == pytest.approx(finals["hg2"]["Mean"])
    assert summary["mean_pose_baseline"]["Mean"] == pytest.approx(baseline.mean)
    assert summary["variants"]["hg2"]["margin_over_mean_pose"] == pytest.approx(finals["hg2"]["Mean"] - baseline.mean)
    assert summary["best_variant"] == "hg2"


def test_costs_parameters_and_provenance(report: tuple[Path, dict]) -> None:
    out, _ = report
    text = (out / "results.md").read_text()
    hg1 = next(line for line in text.splitlines() if line.startswith("| hg1 | 1 |"))
    assert "3.43 (from config)" in hg1  # hg.lua's exact 1-stack count, counted on the meta device
    hg2 = next(line for line in text.splitlines() if line.startswith("| hg2 | 2 |"))
    # 3 epochs of 10 steps x batch 4 at 8 img/s = 15 s of optimiser time
    assert "| 6.57 |" in hg2 and f"| {15 / 3600:.3g} |" in hg2 and "`run-hg2`" in hg2
    assert "<details><summary>params.yaml" in text and "sha256" in text and "git commit" in text
    assert "annotation files in" in text  # no dvc.lock: the data version falls back to annotation digests


def test_figures_are_written_and_linked(report: tuple[Path, dict]) -> None:
    out, _ = report
    _assert_pngs(out / "figures")
    text = (out / "results.md").read_text()
    for name in FIGURES:
        assert f"](figures/{name})" in text
    assert "hg2: stack 1 (first hourglass)" in text and "hg1: stack 1" not in text
    assert sorted(p.name for p in out.iterdir()) == ["champion.json", "figures", "results.md", "summary.json"]
    assert (out / "champion.json").read_text() == "{}"
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(FIGURES)


def test_absent_optional_inputs_are_named(report: tuple[Path, dict]) -> None:
    out, _ = report
    text = (out / "results.md").read_text()
    missing = text.split("### Missing inputs")[1].split("## Results")[0]
    assert "variant `hg4` has not been trained" in missing
    assert "authors' released predictions not scored" in missing


def test_empty_project_degrades_to_a_report(tmp_path: Path, raw: Path) -> None:
    params = _params(tmp_path, tmp_path / "raw" / "synthetic")  # no data, no models
    models = tmp_path / "models"
    (models / "hg2" / "eval").mkdir(parents=True)
    (models / "hg2" / "eval" / "metrics.json").write_text("{not json")
    out = _run(tmp_path, params, models, tmp_path / "none")
    text = (out / "results.md").read_text()
    assert "unreadable" in text and "mean-pose baseline not computed" in text
    assert "example figures not drawn" in text and "Figure 4 is empty" in text
    assert "| paper: 8-stack, final | 97.7 |" in text
    _assert_pngs(out / "figures")
    assert json.loads((out / "summary.json").read_text())["missing_inputs"] >= 4


def test_flic_family_uses_pck_and_its_paper_rows(tmp_path: Path) -> None:
    raw = tmp_path / "raw" / "synthetic"
    generate_dataset(paper("synthetic", train_images=6, valid_images=4, joint_set="flic", workers=1), raw,
                     progress=False)
    params = _params(tmp_path, raw, joint_set="flic")
    final = _fake_variant(tmp_path / "models", raw, params, "hg2", 2, 0.02)
    out = _run(tmp_path, params, tmp_path / "models", tmp_path / "none")
    text = (out / "results.md").read_text()
    assert "Wrist PCK@0.2 (%)" in text and "Eye PCK@0.2 (%)" in text and "PCKh" not in text.split("## Provenance")[0]
    assert "| 95.2 |" in text and "| 99.0 |" in text and "authors' released" not in text
    row = next(line for line in text.splitlines() if line.startswith("| **hg2** |"))
    assert f"| {final['Wrist']:.1f} |" in row
    assert "Figure 4 is empty" not in text and "Figure 5 has no variant" not in text
    _assert_pngs(out / "figures")


def test_bad_params_exit_1(tmp_path: Path) -> None:
    write_params(tmp_path / "params.yaml", {"report": {"examples": 0}})
    assert main(["--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "r")]) == 1
    assert not (tmp_path / "r").exists()


def test_authors_released_predictions_row(anchor_dir: Path, raw: Path, tmp_path: Path) -> None:
    params = _params(tmp_path, raw)
    out = _run(tmp_path, params, tmp_path / "models", anchor_dir)
    row = next(line for line in (out / "results.md").read_text().splitlines()
               if line.startswith("| authors' released model (measured) |"))
    # reference section 5: Head 95.94, Wrist 83.38, Mean 88.04 (joint-count weighted), PCKh@0.1 28.65
    assert "| 95.9 |" in row and "| 83.4 |" in row and "| 88.0 |" in row and "| 28.7 |" in row


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


def test_discover_lists_params_variants_first_then_others(tmp_path: Path) -> None:
    (tmp_path / "zz" / "eval").mkdir(parents=True)
    (tmp_path / "zz" / "eval" / "metrics.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    names = [r.name for r in discover_variants(tmp_path, ["hg8", "hg2"])]
    assert names == ["hg8", "hg2", "zz"]


def test_report_covers_the_sweep_and_other_trained_variants_only(tmp_path: Path, raw: Path) -> None:
    """Variants defined in params but neither in the sweep nor trained are not "missing": nobody asked for them."""
    path = _params(tmp_path, raw)
    params = yaml.safe_load(path.read_text())
    params["train"]["variants"]["hg8"] = {"stacks": 8}
    params["sweep"] = ["hg2", "hg4"]
    params["flows"]["champion_variant"] = "hg2"
    path.write_text(yaml.safe_dump(params))
    models = tmp_path / "models"
    _fake_variant(models, raw, path, "hg2", 2, 0.12)
    _fake_variant(models, raw, path, "hg1", 1, 0.3)  # trained by hand, outside the sweep: still reported
    text = (_run(tmp_path, path, models, tmp_path / "no-anchor-data") / "results.md").read_text()
    assert "| **hg2** |" in text and "| **hg1** |" in text
    assert "variant `hg4` has not been trained" in text
    assert "hg8" not in text.split("<details>")[0]  # (the params dump at the end lists every variant)
