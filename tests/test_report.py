"""The report stage on a fabricated models/ tree over a tiny synthetic dataset (budget: under 60 s), and the
bootstrap intervals it prints.

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
from hourglass.family import FAMILIES, FLIC_FAMILY, MPII_FAMILY
from hourglass.metrics import MPII_MEAN_JOINTS
from hourglass.readers import read_ground_truth, read_predictions, write_predictions
from hourglass.report.bootstrap import (BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, Interval, PeopleBootstrap,
                                        correct_joints, mean_joints, resample_weights)
from hourglass.report.examples import rank_people
from hourglass.report.inputs import discover_variants
from hourglass.report.paper import PAPER_MPII_FINAL, PAPER_MPII_INTERMEDIATE
from hourglass.report.provenance import data_version
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


def _params(tmp: Path, raw: Path, joint_set: str = "mpii", seeds: tuple[int, ...] = (0,)) -> Path:
    params = {"dataset": "synthetic", "sweep": ["hg2", "hg1", "hg4"], "seeds": list(seeds),
              "flows": {"champion_variant": "hg2"},
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


def _fake_variant(models: Path, raw: Path, params: Path, name: str, stacks: int, sigma: float,
                  seed: int = 0) -> dict:
    """models/<name>/seed-<seed>/ as training and evaluation leave it; returns the evaluation's final scores. The
    noise draw depends on the stack count and the seed only (two variants of equal stacks predict alike)."""
    out = models / name / f"seed-{seed}"
    (out / "eval").mkdir(parents=True)
    gt = read_annotations(raw / "annot" / "valid.h5")
    valid = raw / "annot" / "valid.h5"
    final_preds = _noisy(gt, sigma, seed=stacks + 100 * seed)
    write_predictions(out / "eval" / "preds.h5", final_preds,
                      {"maxvals": np.ones(gt.joints.shape[:2]), "rows": np.arange(len(gt))})
    final, per_joint = _eval_block(final_preds, valid)
    stack_list = [{"stack": stacks, "metrics": final, "per_joint": per_joint}]
    if stacks > 1:
        first, first_joints = _eval_block(_noisy(gt, 2 * sigma, seed=10 + stacks + 100 * seed), valid)
        stack_list.insert(0, {"stack": 1, "metrics": first, "per_joint": first_joints})
    evaluation = {"variant": name, "seed": seed, "dataset": "synthetic", "metric": "PCKh@0.5", "flip_test": True,
                  "num_people": len(gt), "final": final, "per_joint": per_joint, "stacks": stack_list,
                  "seconds": 12.5, "images_per_s": 3.2}
    if stacks > 1:  # the 1-stack variant's count must then come from its config
        evaluation["parameters"] = 6_570_400
    (out / "eval" / "metrics.json").write_text(json.dumps(evaluation))
    config = yaml.safe_load(params.read_text())
    resolved = parse_params(config).model_copy(deep=True).model_dump(mode="json")
    resolved["model"]["stacks"] = stacks
    (out / "config.yaml").write_text(yaml.safe_dump({"variant": name, **resolved, "seed": seed}))
    (out / "mlflow.json").write_text(json.dumps({"run_id": f"run-{name}" + (f"-{seed}" if seed else "")}))
    prefix = "val/pckh" if "Mean@0.1" in final else "val/pck"
    columns = ["epoch", f"{prefix}/Mean", "val/figure4",
               "val/loss", "train/loss", "train/lr", "train/img_s", "step"]
    with open(out / "epochs.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for epoch in range(1, 4):
            writer.writerow([epoch, 20 * epoch, 15 * epoch + stacks + seed, 1e-3, 2e-3, 2.5e-4, 8.0 + seed,
                             10 * epoch])
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
    assert sorted(p.name for p in out.iterdir()) == ["champion.json", "curves.csv", "figures", "results.md",
                                                    "scores.json", "summary.json"]
    assert (out / "champion.json").read_text() == "{}"
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(FIGURES)
    height, width = matplotlib.image.imread(out / "figures" / "figure5.png").shape[:2]
    assert width <= 2 * height and width <= 1000, (width, height)  # small multiples, readable at page width


def _resampled_scores(preds: Path, valid: Path) -> dict[str, np.ndarray]:
    """Mean and Figure-4 accuracy of ``preds`` on every resample of the validation people, each scored from
    scratch by the evaluator (the report's documented draws: rows with an annotated joint, resample b = row b of
    ``default_rng(BOOTSTRAP_SEED).integers(0, people, (BOOTSTRAP_RESAMPLES, people))``)."""
    gt = read_ground_truth(valid)
    pred = read_predictions(preds, joints=gt.joints.shape[1], people=len(gt))
    scored = np.flatnonzero(gt.annotated.any(axis=1))
    people = len(scored)
    draws = np.random.default_rng(BOOTSTRAP_SEED).integers(0, people, size=(BOOTSTRAP_RESAMPLES, people))
    family = FAMILIES[gt.dataset]
    out: dict[str, list[float]] = {"Mean": [], "figure4": []}
    for rows in scored[draws]:
        result = family.score(pred[rows], gt.joints[rows], gt.annotated[rows], gt.normalize[rows])
        out["Mean"].append(result.mean)
        out["figure4"].append(family.figure4(result))
    return {k: np.array(v) for k, v in out.items()}


def test_intervals_are_recomputed_from_the_predictions(report: tuple[Path, dict], raw: Path) -> None:
    """The issue's bar: the report's intervals come from the predictions. One interval and one paired difference
    are recomputed here from preds.h5 and valid.h5, scoring every resample with the evaluator itself."""
    out, finals = report
    summary = json.loads((out / "summary.json").read_text())
    models = out.parent / "models"
    valid = raw / "annot" / "valid.h5"
    hg1 = _resampled_scores(models / "hg1" / "seed-0" / "eval" / "preds.h5", valid)
    hg2 = _resampled_scores(models / "hg2" / "seed-0" / "eval" / "preds.h5", valid)
    mean = summary["variants"]["hg1"]["interval"]["Mean"]
    assert mean["estimate"] == pytest.approx(finals["hg1"]["Mean"])
    assert [mean["low"], mean["high"]] == pytest.approx(np.percentile(hg1["Mean"], [2.5, 97.5]).tolist())
    assert mean["low"] < finals["hg1"]["Mean"] < mean["high"]
    # hg2 is the reference here: the sweep's first variant, since the sweep has no hg_stacked_int
    diff = summary["variants"]["hg1"]["difference_from_reference"]["figure4"]
    assert diff["estimate"] == pytest.approx(finals["hg1"]["figure4"] - finals["hg2"]["figure4"])
    assert [diff["low"], diff["high"]] == pytest.approx(
        np.percentile(hg1["figure4"] - hg2["figure4"], [2.5, 97.5]).tolist())
    assert diff["distinguishable"] is (diff["high"] < 0)
    assert "difference_from_reference" not in summary["variants"]["hg2"]
    assert summary["bootstrap"] == {"people": len(read_ground_truth(valid)), "resamples": BOOTSTRAP_RESAMPLES,
                                    "seed": BOOTSTRAP_SEED, "confidence": 95.0, "reference": "hg2",
                                    "reference_is_first_in_sweep": True}
    text = (out / "results.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| **hg1** |"))
    assert f"| [{mean['low']:.1f}, {mean['high']:.1f}] |" in row
    uncertainty = text.split("## Uncertainty")[1].split("\n## ")[0]
    assert "`hg2`, the first variant of the sweep: `hg_stacked_int`" in uncertainty
    row = next(line for line in uncertainty.splitlines() if line.startswith("| `hg1` |"))
    assert f"{diff['estimate']:+.2f} [{diff['low']:+.2f}, {diff['high']:+.2f}]" in row
    assert "Best variant: `hg2`" in text and "ahead of the runner-up `hg1`" in text


# -- several training seeds: the report's numbers are the seed-averaged ones, with the spread across seeds
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def seeds_report(tmp_path_factory: pytest.TempPathFactory, raw: Path) -> tuple[Path, dict[tuple[str, int], dict]]:
    """hg2 and hg1 trained from two seeds each; hg4 predicts exactly as hg2 (same stacks, same draws)."""
    tmp = tmp_path_factory.mktemp("seeds")
    params = _params(tmp, raw, seeds=SEEDS)
    models = tmp / "models"
    finals = {}
    for name, stacks, sigma in (("hg2", 2, 0.25), ("hg1", 1, 0.35), ("hg4", 2, 0.25)):
        for seed in SEEDS:
            finals[name, seed] = _fake_variant(models, raw, params, name, stacks, sigma, seed=seed)
    return _run(tmp, params, models, tmp / "no-anchor-data"), finals


def test_several_seeds_mean_and_sd_are_those_of_the_per_seed_evaluations(seeds_report) -> None:
    out, finals = seeds_report
    summary = json.loads((out / "summary.json").read_text())
    scores = json.loads((out / "scores.json").read_text())
    text = (out / "results.md").read_text()
    assert summary["seeds"] == list(SEEDS)
    for name in ("hg2", "hg1"):
        per_seed = [finals[name, seed]["Mean"] for seed in SEEDS]
        assert per_seed[0] != per_seed[1]  # the seeds really differ
        mean, sd = float(np.mean(per_seed)), float(np.std(per_seed, ddof=1))
        entry = summary["variants"][name]
        assert entry["seeds"] == list(SEEDS)
        assert [entry["per_seed"][str(seed)]["Mean"] for seed in SEEDS] == pytest.approx(per_seed)
        assert entry["across_seeds"]["Mean"] == pytest.approx({"mean": mean, "sd": sd, "n": 2})
        assert entry["final"]["Mean"] == pytest.approx(mean)
        elbow = np.mean([finals[name, seed]["Elbow"] for seed in SEEDS])
        assert entry["final"]["Elbow"] == pytest.approx(elbow)
        assert scores[name] == round(mean, 2)  # `dvc metrics show`: the seed-averaged Mean
        row = next(line for line in text.splitlines() if line.startswith(f"| **{name}** |"))
        assert f"| {mean:.1f} |" in row and f"| {mean:.1f} ± {sd:.1f} (2 seeds) |" in row
        assert "mean of 2 seeds" in row
        for seed in SEEDS:  # the costs table: one row per seed
            assert any(line.startswith(f"| {name} | {seed} | ") for line in text.splitlines())
    assert "- Training seeds: 0, 1; each variant's numbers are the mean over its seeds" in text
    uncertainty = text.split("## Uncertainty")[1].split("\n## ")[0]
    assert "across seeds, ± sd" in uncertainty and "the mean over 2 training seeds" in uncertainty
    assert "each variant was trained once, on one seed" not in text


def test_several_seeds_curves_are_the_mean_curves(seeds_report) -> None:
    out, _ = seeds_report
    with open(out / "curves.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    # epochs.csv's val/figure4 is 15 * epoch + stacks + seed: the mean over seeds 0 and 1 adds 0.5
    assert [float(r["step"]) for r in rows] == [10.0, 20.0, 30.0]
    assert [float(r["hg2"]) for r in rows] == pytest.approx([15 * e + 2.5 for e in (1, 2, 3)])
    assert [float(r["hg1"]) for r in rows] == pytest.approx([15 * e + 1.5 for e in (1, 2, 3)])


def test_several_seeds_interval_is_of_the_seed_averaged_score(seeds_report, raw: Path) -> None:
    """People resampled once; on every resample each seed is scored (by the evaluator, from scratch) and the seeds'
    scores averaged: the interval and the paired difference are percentiles of those averages."""
    out, finals = seeds_report
    summary = json.loads((out / "summary.json").read_text())
    models = out.parent / "models"
    valid = raw / "annot" / "valid.h5"
    draws = {name: [_resampled_scores(models / name / f"seed-{seed}" / "eval" / "preds.h5", valid)
                    for seed in SEEDS] for name in ("hg2", "hg1")}
    averaged = {name: {k: np.mean([d[k] for d in runs], axis=0) for k in ("Mean", "figure4")}
                for name, runs in draws.items()}
    interval = summary["variants"]["hg1"]["interval"]["Mean"]
    assert interval["estimate"] == pytest.approx(np.mean([finals["hg1", s]["Mean"] for s in SEEDS]))
    assert [interval["low"], interval["high"]] == pytest.approx(
        np.percentile(averaged["hg1"]["Mean"], [2.5, 97.5]).tolist())
    diff = summary["variants"]["hg1"]["difference_from_reference"]["figure4"]
    assert diff["estimate"] == pytest.approx(np.mean([finals["hg1", s]["figure4"] - finals["hg2", s]["figure4"]
                                                      for s in SEEDS]))
    assert [diff["low"], diff["high"]] == pytest.approx(
        np.percentile(averaged["hg1"]["figure4"] - averaged["hg2"]["figure4"], [2.5, 97.5]).tolist())


def test_several_seeds_wording_names_the_seed_count(seeds_report) -> None:
    out, _ = seeds_report
    text = (out / "results.md").read_text()
    assert "one seed" not in text.split("## Provenance")[0]
    assert "Best variant: not distinguishable on 2 seeds. `hg2` (Mean PCKh@0.5 " in text
    assert " sd over 2 seeds [95 % interval" in text
    row = next(line for line in text.split("## Uncertainty")[1].splitlines() if line.startswith("| `hg4` |"))
    assert "neither (not distinguishable on 2 seeds)" in row
    assert "not distinguishable on 2 seeds: `hg4` +0.00 [+0.00, +0.00]" in text
    examples = text.split("## Examples")[1].split("\n## ")[0]
    assert "Validation people of variant `hg2 seed " in examples and "the one with the best Mean" in examples
    assert "| `hg2 seed 1` resolved params |" in text


def test_one_seed_of_several_missing_is_named_and_not_averaged(tmp_path: Path, raw: Path) -> None:
    params = _params(tmp_path, raw, seeds=SEEDS)
    models = tmp_path / "models"
    final = _fake_variant(models, raw, params, "hg2", 2, 0.12, seed=1)
    out = _run(tmp_path, params, models, tmp_path / "none")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["variants"]["hg2"]["seeds"] == [1]
    assert summary["variants"]["hg2"]["final"]["Mean"] == pytest.approx(final["Mean"])
    assert summary["variants"]["hg2"]["across_seeds"]["Mean"] == {"mean": pytest.approx(final["Mean"]), "sd": None,
                                                                "n": 1}
    text = (out / "results.md").read_text()
    assert "variant `hg2` seed 0 has not been trained" in text
    assert "across seeds" not in text and "each variant was trained once, on one seed" in text  # reads as one seed


def test_best_variant_is_not_crowned_within_the_noise(tmp_path: Path, raw: Path) -> None:
    """Two variants with identical predictions: their paired difference is exactly 0, so neither is "best"."""
    params = _params(tmp_path, raw)
    models = tmp_path / "models"
    _fake_variant(models, raw, params, "hg2", 2, 0.12)
    _fake_variant(models, raw, params, "hg4", 2, 0.12)  # the same noise draw as hg2 (seeded by the stack count)
    out = _run(tmp_path, params, models, tmp_path / "none")
    text = (out / "results.md").read_text()
    assert "Best variant: not distinguishable on one seed. `hg2`" in text
    assert "leads the runner-up `hg4` by +0.00 [+0.00, +0.00] points" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_variant"] is None and summary["leading_variant"] == "hg2"
    assert summary["best_variant_margin"]["distinguishable"] is False
    assert "neither (not distinguishable on one seed)" in text


def test_ordering_against_the_paper_and_the_unsupervised_first_stack(tmp_path: Path, raw: Path) -> None:
    """`hg` above `hg_stacked` contradicts the paper's Figure 4: the report says so, and that hg_stacked's first
    stack has no loss (its first-hourglass score of 0 is expected)."""
    params = write_params(tmp_path / "params.yaml", {
        "dataset": "synthetic", "sweep": ["hg", "hg_stacked"], "flows": {"champion_variant": "hg_stacked"},
        "download": {"root": str(raw.parent)}, "mlflow": {"enabled": False}, "report": {"examples": 2},
        "train": {"batch_size": 4, "variants": {"hg": {"stacks": 1, "supervision": "final"},
                                                 "hg_stacked": {"stacks": 2, "supervision": "final"}}}})
    models = tmp_path / "models"
    _fake_variant(models, raw, params, "hg", 1, 0.12)
    _fake_variant(models, raw, params, "hg_stacked", 2, 0.3)
    evaluation = json.loads((models / "hg_stacked" / "seed-0" / "eval" / "metrics.json").read_text())
    evaluation["stacks"][0]["metrics"] = {k: 0.0 for k in evaluation["stacks"][0]["metrics"]}
    (models / "hg_stacked" / "seed-0" / "eval" / "metrics.json").write_text(json.dumps(evaluation))
    config = yaml.safe_load((models / "hg_stacked" / "seed-0" / "config.yaml").read_text())
    config["model"]["supervision"] = "final"
    (models / "hg_stacked" / "seed-0" / "config.yaml").write_text(yaml.safe_dump(config))
    out = _run(tmp_path, params, models, tmp_path / "none")
    text = (out / "results.md").read_text()
    line = next(line for line in text.splitlines() if line.startswith("- Against the paper's Figure 4:"))
    assert "The single hourglass `hg` scores above the two-stack `hg_stacked`" in line
    assert "points, distinguishable)" in line and "first stack gets none" in line
    assert "first-hourglass score in Figure 5 is 0.0 %, not a bug" in line
    assert "`hg_stacked` has one loss, on its last stack (supervision `final`)" in text.split("## Ablation")[1]
    assert "`hg`, the first variant of the sweep" in text
    _assert_pngs(out / "figures")


def test_absent_optional_inputs_are_named(report: tuple[Path, dict]) -> None:
    out, _ = report
    text = (out / "results.md").read_text()
    missing = text.split("### Missing inputs")[1].split("## Results")[0]
    assert "variant `hg4` seed 0 has not been trained" in missing
    assert "authors' released predictions not scored" in missing


def test_empty_project_degrades_to_a_report(tmp_path: Path, raw: Path) -> None:
    params = _params(tmp_path, tmp_path / "raw" / "synthetic")  # no data, no models
    models = tmp_path / "models"
    (models / "hg2" / "seed-0" / "eval").mkdir(parents=True)
    (models / "hg2" / "seed-0" / "eval" / "metrics.json").write_text("{not json")
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
    assert "variant `hg4` seed 0 has not been trained" in text
    assert "hg8" not in text.split("<details>")[0]  # (the params dump at the end lists every variant)


# -- the bootstrap itself: hand-built cases with known answers, and the vectorised resampling against the real
# metric recomputed on every resampled set of people
def _bootstrap_people(family, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground truth (n, J, 2) with some joints and one whole person unannotated, and normalisers."""
    rng = np.random.default_rng(seed)
    joints = rng.uniform(0, 200, (n, family.joints.count, 2))
    annotated = rng.random((n, family.joints.count)) > 0.2
    annotated[3] = False  # a person without any annotated joint is not one of the scored people
    joints[~annotated] = np.nan
    return joints, annotated, rng.uniform(5.0, 15.0, n)


def _bootstrap_predictions(joints: np.ndarray, normalize: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pred = np.nan_to_num(joints, nan=50.0) + rng.normal(0, sigma, joints.shape) * normalize[:, None, None]
    pred[1] = np.nan  # a missed person: every joint wrong
    return pred


def test_two_people_one_right_one_wrong_gives_the_binomial_answer() -> None:
    """Resampling 2 people: both the good one (Mean 100) with probability 1/4, both the bad one (0) with 1/4,
    one of each (50) otherwise; the 95 % interval therefore spans 0 to 100 around the estimate 50."""
    count = MPII_FAMILY.joints.count
    annotated = np.ones((2, count), bool)
    correct = np.zeros((2, count), bool)
    correct[0] = True
    boot = PeopleBootstrap(MPII_FAMILY, annotated, resamples=4000, seed=1)
    boot.add("a", correct)
    for statistic in ("Mean", "figure4"):
        interval = boot.interval("a", statistic)
        assert (interval.estimate, interval.low, interval.high) == (50.0, 0.0, 100.0)
        values, frequency = np.unique(boot.draws["a"][statistic], return_counts=True)
        assert values.tolist() == [0.0, 50.0, 100.0]
        np.testing.assert_allclose(frequency / 4000, [0.25, 0.5, 0.25], atol=0.03)


def test_all_correct_and_identical_variants() -> None:
    annotated = np.ones((5, FLIC_FAMILY.joints.count), bool)
    boot = PeopleBootstrap(FLIC_FAMILY, annotated, resamples=50)
    boot.add("a", annotated)
    boot.add("b", annotated)
    assert boot.interval("a", "Mean") == Interval(100.0, 100.0, 100.0)
    same = boot.difference("a", "b", "figure4")
    assert same == Interval(0.0, 0.0, 0.0) and not same.excludes_zero
    boot.add("c", np.zeros_like(annotated))
    worse = boot.difference("c", "a", "Mean")
    assert worse == Interval(-100.0, -100.0, -100.0) and worse.excludes_zero


def test_pooled_mean_weights_by_joint_count_and_skips_pelvis_and_thorax() -> None:
    """One person with only the pelvis and thorax wrong scores Mean 100 on MPII; a person with one annotated
    (correct) joint counts once in the pooled Mean but as a whole joint's accuracy in the Figure-4 average."""
    count = MPII_FAMILY.joints.count
    names = MPII_FAMILY.joints.names
    annotated = np.ones((2, count), bool)
    annotated[1] = False
    annotated[1, names.index("l_wrist")] = True
    correct = annotated.copy()
    correct[0, [names.index("pelvis"), names.index("thorax")]] = False
    correct[0, names.index("l_wrist")] = False
    boot = PeopleBootstrap(MPII_FAMILY, annotated, resamples=10)
    estimates = boot.add("a", correct)
    assert estimates["Mean"] == pytest.approx(100.0 * 14 / 15)  # 15 pooled joints, the first wrist wrong
    assert estimates["figure4"] == pytest.approx((50.0 + 7 * 100.0) / 8)  # l_wrist: 1 of 2 people


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_intervals_match_the_metric_recomputed_on_each_resample(name: str) -> None:
    """The module's contract (resample b = row b of default_rng(seed).integers(0, people, (resamples, people)) over
    the people with an annotated joint, numpy.percentile at 2.5 and 97.5), recomputed with the family's own
    scorer on the resampled rows, one resample at a time."""
    family = FAMILIES[name]
    joints, annotated, normalize = _bootstrap_people(family, 30, seed=3)
    pred_a = _bootstrap_predictions(joints, normalize, 0.25 if name == "mpii" else 0.1, seed=4)
    pred_b = _bootstrap_predictions(joints, normalize, 0.3 if name == "mpii" else 0.12, seed=5)
    resamples, seed = 300, 7
    boot = PeopleBootstrap(family, annotated, resamples=resamples, seed=seed)
    for label, pred in (("a", pred_a), ("b", pred_b)):
        boot.add(label, correct_joints(pred, joints, annotated, normalize, family.threshold))

    scored = np.flatnonzero(annotated.any(axis=1))
    assert boot.people == len(scored) == 29
    draws = np.random.default_rng(seed).integers(0, len(scored), size=(resamples, len(scored)))
    stats = {"a": {"Mean": [], "figure4": []}, "b": {"Mean": [], "figure4": []}}
    for rows in scored[draws]:
        for label, pred in (("a", pred_a), ("b", pred_b)):
            result = family.score(pred[rows], joints[rows], annotated[rows], normalize[rows])
            stats[label]["Mean"].append(result.mean)
            stats[label]["figure4"].append(family.figure4(result))
    full = {label: family.score(pred, joints, annotated, normalize) for label, pred in (("a", pred_a),
                                                                                       ("b", pred_b))}
    for statistic in ("Mean", "figure4"):
        interval = boot.interval("a", statistic)
        low, high = np.percentile(stats["a"][statistic], [2.5, 97.5])
        estimate = full["a"].mean if statistic == "Mean" else family.figure4(full["a"])
        assert (interval.estimate, interval.low, interval.high) == pytest.approx((estimate, low, high), abs=1e-9)
        paired = np.subtract(stats["b"][statistic], stats["a"][statistic])
        diff = boot.difference("b", "a", statistic)
        assert (diff.low, diff.high) == pytest.approx(tuple(np.percentile(paired, [2.5, 97.5])), abs=1e-9)
    assert 0 < boot.interval("a", "Mean").low < boot.interval("a", "Mean").high < 100


def test_resample_weights_follow_the_documented_draws() -> None:
    weights = resample_weights(7, 5, seed=11)
    draws = np.random.default_rng(11).integers(0, 7, size=(5, 7))
    assert weights.shape == (5, 7) and (weights.sum(axis=1) == 7).all()
    for row, drawn in zip(weights, draws):
        assert row.tolist() == np.bincount(drawn, minlength=7).tolist()
    with pytest.raises(ValueError, match="at least one person"):
        resample_weights(0, 5, seed=0)


def test_mean_joints_are_the_scorers() -> None:
    assert mean_joints(MPII_FAMILY) == MPII_MEAN_JOINTS
    assert mean_joints(FLIC_FAMILY) == tuple(range(FLIC_FAMILY.joints.count))


def test_bad_shapes_are_refused() -> None:
    annotated = np.ones((4, MPII_FAMILY.joints.count), bool)
    with pytest.raises(ValueError, match=r"\(N, 11\)"):
        PeopleBootstrap(FLIC_FAMILY, annotated)
    boot = PeopleBootstrap(MPII_FAMILY, annotated, resamples=10)
    with pytest.raises(ValueError, match="ground truth's people"):
        boot.add("a", annotated[:3])
    with pytest.raises(ValueError, match="no validation person"):
        PeopleBootstrap(MPII_FAMILY, np.zeros_like(annotated))
