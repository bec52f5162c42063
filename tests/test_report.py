"""The report stage on a fabricated models/ tree over a tiny synthetic dataset (budget: under 60 s).

Predictions are the ground truth plus noise, scored with the real metric, so every number of the report can be
checked against an independent computation. Numbers and decisions are checked on the report's data model
(:class:`hourglass.report.summary.Summary`, of which summary.json, scores.json and curves.csv are the serialisation:
every run below checks that); a few tests check that results.md renders the model. A second tree with nothing in it
checks that absent inputs are named instead of crashing the stage.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import matplotlib.image
import numpy as np
import pytest
import yaml
from matplotlib.figure import Figure
from shipped import paper, write_params

from hourglass.data.synthetic import generate_dataset
from hourglass.draw import draw_skeleton
from hourglass.evaluation.baselines import mean_pose, mean_pose_predictions, place_pose, score_mean_pose
from hourglass.evaluation.score import score
from hourglass.family import FAMILIES
from hourglass.io.annotations import Annotations, read_annotations
from hourglass.io.eval_files import read_ground_truth, read_predictions, write_predictions
from hourglass.joints import MPII
from hourglass.params_file import load_params, parse_params
from hourglass.report.bootstrap import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, Interval
from hourglass.report.examples import rank_people
from hourglass.report.inputs import ReportPaths, discover_variants
from hourglass.report.markdown import render_markdown
from hourglass.report.paper import PAPER_MPII_FINAL, PAPER_MPII_INTERMEDIATE
from hourglass.report.provenance import data_version
from hourglass.report.summary import Summary, compute_summary, figure5_variants
from pipeline.report import main

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
    return final, dict(zip(result.joint_names, result.per_joint.tolist(), strict=True))


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




@dataclass(frozen=True)
class Report:
    """What one run of the stage left: its output directory, its results.md, and the summary it renders."""

    out: Path
    text: str
    summary: Summary


def _masked(markdown: str) -> str:
    """results.md without its "generated" time, the one line that differs between two renderings."""
    return "\n".join("| generated | (masked) |" if line.startswith("| generated | ") else line
                     for line in markdown.splitlines())


def _run(tmp: Path, params: Path, models: Path, anchor: Path) -> Report:
    """Run the stage, and compute the summary of the same inputs: the stage's summary.json, scores.json, curves.csv
    and results.md must be that summary serialised and rendered."""
    out = tmp / "reports"
    assert main(["--params", str(params), "--models", str(models), "--out", str(out),
                 "--dvc-lock", str(tmp / "dvc.lock"), "--anchor-data", str(anchor)]) == 0
    loaded = load_params(params)
    summary = compute_summary(loaded, ReportPaths(params=params, models=models, out=out,
                                                  raw=Path(loaded.download.root) / loaded.dataset,
                                                  dvc_lock=tmp / "dvc.lock", anchor=anchor))
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary.to_json()))
    assert json.loads((out / "scores.json").read_text()) == summary.scores()
    assert (out / "curves.csv").read_text() == summary.curves_csv()
    text = (out / "results.md").read_text()
    assert _masked(text) == _masked(render_markdown(summary))
    return Report(out, text, summary)


def _section(text: str, title: str) -> str:
    """The markdown section headed ``title`` (up to the next section of the same or a higher level)."""
    return text.split(f"## {title}\n")[1].split("\n## ")[0]


def _row(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


def _assert_pngs(figures: Path) -> None:
    for name in FIGURES:
        path = figures / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE, name
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 200, (name, pixels.shape)
        assert pixels[..., :3].std() > 0.01, f"{name} is blank"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, raw: Path) -> tuple[Report, dict[str, dict]]:
    tmp = tmp_path_factory.mktemp("project")
    params = _params(tmp, raw)
    models = tmp / "models"
    finals = {"hg2": _fake_variant(models, raw, params, "hg2", 2, 0.12),
              "hg1": _fake_variant(models, raw, params, "hg1", 1, 0.3)}
    (tmp / "reports").mkdir()
    (tmp / "reports" / "champion.json").write_text("{}")  # another stage's file: must survive untouched
    return _run(tmp, params, models, tmp / "no-anchor-data"), finals


def test_variants_are_scored_beside_the_baseline(report: tuple[Report, dict], raw: Path) -> None:
    rep, finals = report
    summary = rep.summary
    baseline = score_mean_pose(raw / "annot" / "train.h5", raw / "annot" / "valid.h5")
    assert summary.baseline.mean == pytest.approx(baseline.mean)
    assert summary.baseline.values["figure4"] == pytest.approx(FAMILIES["mpii"].figure4(baseline))
    assert [v.name for v in summary.variants] == ["hg2", "hg1", "hg4"]  # the sweep's order, trained or not
    for name, final in finals.items():
        variant = summary.variant(name)
        assert variant.final == pytest.approx(final)  # every group, Mean, Mean@0.1 and the Figure-4 accuracy
        assert variant.source == "evaluate stage (flip test)"
        assert final["Mean"] > baseline.mean + 20  # the fabricated models beat the floor clearly
        assert variant.margin_over_mean_pose == pytest.approx(final["Mean"] - baseline.mean)
    assert summary.variant("hg4").final is None and summary.variant("hg4").seeds == ()
    assert summary.best.best == "hg2"


def test_costs_parameters_and_provenance(report: tuple[Report, dict], raw: Path) -> None:
    rep, _ = report
    summary = rep.summary
    (hg1,) = summary.variant("hg1").cost_rows
    assert (hg1.stacks, hg1.parameters, hg1.parameters_from) == (1, 3_426_448, "config")  # hg.lua's exact
    # 1-stack count, counted on the meta device: its evaluation recorded none
    (hg2,) = summary.variant("hg2").cost_rows
    assert (hg2.stacks, hg2.parameters, hg2.parameters_from) == (2, 6_570_400, "evaluate")
    assert hg2.train_hours == pytest.approx(15 / 3600)  # 3 epochs of 10 steps x batch 4 at 8 img/s: 15 s
    assert (hg2.epochs, hg2.steps, hg2.train_img_per_s, hg2.eval_img_per_s, hg2.eval_seconds) == (3, 30, 8, 3.2, 12.5)
    assert (hg2.best_mean, hg2.best_epoch, hg2.mlflow_run, hg2.seed_row) == (60.0, 3, "run-hg2", False)
    provenance = summary.provenance
    params = rep.out.parent / "params.yaml"
    assert provenance.params_sha256 == hashlib.sha256(params.read_bytes()).hexdigest()
    assert provenance.params_text == params.read_text()
    assert provenance.git.startswith(("`", "unknown"))
    # no dvc.lock: the data version falls back to the annotation files' digests
    assert provenance.data.startswith("no `data/processed/synthetic` entry in dvc.lock; annotation files in")
    for name in ("train.h5", "valid.h5"):
        digest = hashlib.sha256((raw / "annot" / name).read_bytes()).hexdigest()[:16]
        assert f"`{name}` sha256 `{digest}`" in provenance.data
    models = rep.out.parent / "models"
    assert [(r.label, r.path) for r in provenance.resolved] == [(n, models / n / "seed-0" / "config.yaml")
                                                                 for n in ("hg2", "hg1")]
    assert provenance.resolved[0].sha256 == hashlib.sha256(provenance.resolved[0].path.read_bytes()).hexdigest()[:16]


def test_figures_are_written_and_linked(report: tuple[Report, dict]) -> None:
    rep, _ = report
    out = rep.out
    _assert_pngs(out / "figures")
    for name in FIGURES:
        assert f"](figures/{name})" in rep.text
    # Figure 5 and its table: the multi-stack variant only
    assert [v.name for v in figure5_variants(rep.summary)] == ["hg2"]
    assert rep.summary.variant("hg2").intermediate[0] == 1 and rep.summary.variant("hg1").intermediate is None
    assert sorted(p.name for p in out.iterdir()) == ["champion.json", "curves.csv", "figures", "results.md",
                                                    "scores.json", "summary.json"]
    assert (out / "champion.json").read_text() == "{}"
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(FIGURES)
    height, width = matplotlib.image.imread(out / "figures" / "figure5.png").shape[:2]
    assert width <= 2 * height and width <= 1000, (width, height)  # small multiples, readable at page width


def test_markdown_renders_the_summary(report: tuple[Report, dict]) -> None:
    """results.md shows the summary's numbers: the results table beside the paper's rows, the uncertainty
    paragraph and its table, the best variant, the costs, the provenance and the missing inputs."""
    rep, _ = report
    text, summary = rep.text, rep.summary
    for value in (*PAPER_MPII_FINAL.values(), *PAPER_MPII_INTERMEDIATE.values(), 90.0, 85.2):
        assert f"| {value:.1f} |" in text, value
    results = _section(text, "Results")
    assert "Mean PCKh@0.5 (%)" in results and "Mean PCKh@0.1 (%)" in results
    for name in ("hg2", "hg1"):
        variant = summary.variant(name)
        row = _row(results, f"| **{name}** |")
        mean = variant.interval["Mean"]
        assert f"| {variant.final['Elbow']:.1f} |" in row and f"| {variant.final['Mean']:.1f} |" in row
        assert f"| [{mean.low:.1f}, {mean.high:.1f}] |" in row and row.endswith(f"| {variant.source} |")
    assert _row(results, "| mean-pose baseline |").count(f"| {summary.baseline.mean:.1f} |") == 1
    uncertainty = _section(text, "Uncertainty")
    boot = summary.bootstrap
    assert (f"intervals over the {boot.people} validation people with an annotated joint: {boot.resamples} "
            f"resamples of the people drawn with replacement (seed {boot.seed})") in uncertainty
    assert "`hg2`, the first variant of the sweep: `hg_stacked_int`" in uncertainty
    assert "each variant was trained once, on one seed" in uncertainty and "across seeds" not in text
    assert _row(uncertainty, "| `hg2` |").endswith("| – | – | (reference) |")
    diff = summary.variant("hg1").difference["figure4"]
    assert f"{diff.estimate:+.2f} [{diff.low:+.2f}, {diff.high:+.2f}]" in _row(uncertainty, "| `hg1` |")
    assert "Best variant: `hg2`" in text and "ahead of the runner-up `hg1`" in text
    assert "not distinguishable on one seed: none." in _section(text, "Summary")
    ablation = _section(text, "Ablation")
    assert _row(ablation, "| hg2: stack 1 (first hourglass) |") and "hg1: stack 1" not in text
    costs = _section(text, "Model size, training time and throughput")
    assert "Training throughput (img/s)" in costs and "Parameters (M)" in costs
    assert "3.43 (from config)" in _row(costs, "| hg1 | 1 |")
    hg2 = _row(costs, "| hg2 | 2 |")
    assert "| 6.57 |" in hg2 and f"| {15 / 3600:.3g} |" in hg2 and "`run-hg2`" in hg2
    provenance = _section(text, "Provenance")
    assert "<details><summary>params.yaml" in provenance and "| git commit |" in provenance
    assert f"sha256 `{summary.provenance.params_sha256}`" in provenance and summary.provenance.data in provenance
    missing = text.split("### Missing inputs\n")[1].split("\n## ")[0]
    assert summary.missing and all(f"- {line}\n" in missing for line in summary.missing)


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


def test_intervals_are_recomputed_from_the_predictions(report: tuple[Report, dict], raw: Path) -> None:
    """The report's intervals come from the predictions. One interval and one paired difference
    are recomputed here from preds.h5 and valid.h5, scoring every resample with the evaluator itself."""
    rep, finals = report
    summary = rep.summary
    models = rep.out.parent / "models"
    valid = raw / "annot" / "valid.h5"
    hg1 = _resampled_scores(models / "hg1" / "seed-0" / "eval" / "preds.h5", valid)
    hg2 = _resampled_scores(models / "hg2" / "seed-0" / "eval" / "preds.h5", valid)
    mean = summary.variant("hg1").interval["Mean"]
    assert mean.estimate == pytest.approx(finals["hg1"]["Mean"])
    assert [mean.low, mean.high] == pytest.approx(np.percentile(hg1["Mean"], [2.5, 97.5]).tolist())
    assert mean.low < finals["hg1"]["Mean"] < mean.high
    # hg2 is the reference here: the sweep's first variant, since the sweep has no hg_stacked_int
    assert summary.reference == "hg2" and not summary.reference_is_papers and summary.paired
    diff = summary.variant("hg1").difference["figure4"]
    assert diff.estimate == pytest.approx(finals["hg1"]["figure4"] - finals["hg2"]["figure4"])
    assert [diff.low, diff.high] == pytest.approx(np.percentile(hg1["figure4"] - hg2["figure4"], [2.5, 97.5]).tolist())
    assert diff.excludes_zero is bool(diff.high < 0)
    assert summary.variant("hg2").difference is None
    assert json.loads((rep.out / "summary.json").read_text())["bootstrap"] == {
        "people": len(read_ground_truth(valid)), "resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED,
        "confidence": 95.0, "reference": "hg2", "reference_is_first_in_sweep": True}
    best = summary.best
    assert (best.leader, best.runner_up, best.best) == ("hg2", "hg1", "hg2") and best.margin.excludes_zero
    assert best.margin.estimate == pytest.approx(finals["hg2"]["Mean"] - finals["hg1"]["Mean"])


# -- several training seeds: the report's numbers are the seed-averaged ones, with the spread across seeds
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def seeds_report(tmp_path_factory: pytest.TempPathFactory, raw: Path) -> tuple[Report, dict[tuple[str, int], dict]]:
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
    rep, finals = seeds_report
    summary = rep.summary
    scores = json.loads((rep.out / "scores.json").read_text())
    assert summary.seeds == list(SEEDS) and summary.several_seeds
    for name in ("hg2", "hg1"):
        per_seed = [finals[name, seed]["Mean"] for seed in SEEDS]
        assert per_seed[0] != per_seed[1]  # the seeds really differ
        mean, sd = float(np.mean(per_seed)), float(np.std(per_seed, ddof=1))
        variant = summary.variant(name)
        assert variant.seeds == SEEDS
        assert [variant.per_seed[str(seed)]["Mean"] for seed in SEEDS] == pytest.approx(per_seed)
        spread = variant.across_seeds["Mean"]
        assert (spread.mean, spread.sd, spread.n) == (pytest.approx(mean), pytest.approx(sd), 2)
        assert variant.final["Mean"] == pytest.approx(mean)
        assert variant.final["Elbow"] == pytest.approx(np.mean([finals[name, seed]["Elbow"] for seed in SEEDS]))
        assert variant.source == "evaluate stage (flip test), mean of 2 seeds"
        assert scores[name] == round(mean, 2)  # `dvc metrics show`: the seed-averaged Mean
        # the costs: one row per seed
        assert [(r.name, r.seed, r.seed_row) for r in variant.cost_rows] == [(name, s, True) for s in SEEDS]
    entry = json.loads((rep.out / "summary.json").read_text())["variants"]["hg2"]
    assert entry["across_seeds"]["Mean"]["n"] == 2 and sorted(entry["per_seed_costs"]) == ["0", "1"]


def test_several_seeds_curves_are_the_mean_curves(seeds_report) -> None:
    rep, _ = seeds_report
    with open(rep.out / "curves.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    # epochs.csv's val/figure4 is 15 * epoch + stacks + seed: the mean over seeds 0 and 1 adds 0.5
    assert [float(r["step"]) for r in rows] == [10.0, 20.0, 30.0]
    assert [float(r["hg2"]) for r in rows] == pytest.approx([15 * e + 2.5 for e in (1, 2, 3)])
    assert [float(r["hg1"]) for r in rows] == pytest.approx([15 * e + 1.5 for e in (1, 2, 3)])


def test_several_seeds_interval_is_of_the_seed_averaged_score(seeds_report, raw: Path) -> None:
    """People resampled once; on every resample each seed is scored (by the evaluator, from scratch) and the seeds'
    scores averaged: the interval and the paired difference are percentiles of those averages."""
    rep, finals = seeds_report
    models = rep.out.parent / "models"
    valid = raw / "annot" / "valid.h5"
    draws = {name: [_resampled_scores(models / name / f"seed-{seed}" / "eval" / "preds.h5", valid)
                    for seed in SEEDS] for name in ("hg2", "hg1")}
    averaged = {name: {k: np.mean([d[k] for d in runs], axis=0) for k in ("Mean", "figure4")}
                for name, runs in draws.items()}
    hg1 = rep.summary.variant("hg1")
    interval = hg1.interval["Mean"]
    assert interval.estimate == pytest.approx(np.mean([finals["hg1", s]["Mean"] for s in SEEDS]))
    assert [interval.low, interval.high] == pytest.approx(np.percentile(averaged["hg1"]["Mean"], [2.5, 97.5]).tolist())
    diff = hg1.difference["figure4"]
    assert diff.estimate == pytest.approx(np.mean([finals["hg1", s]["figure4"] - finals["hg2", s]["figure4"]
                                                   for s in SEEDS]))
    assert [diff.low, diff.high] == pytest.approx(
        np.percentile(averaged["hg1"]["figure4"] - averaged["hg2"]["figure4"], [2.5, 97.5]).tolist())


def test_several_seeds_decisions(seeds_report) -> None:
    """hg4 predicts exactly as hg2 on every seed: the leader is not crowned, and hg4 is not distinguishable from the
    reference; the examples show the leader's seed with the best Mean."""
    rep, finals = seeds_report
    summary = rep.summary
    zero = Interval(0.0, 0.0, 0.0)
    assert (summary.best.leader, summary.best.runner_up, summary.best.best) == ("hg2", "hg4", None)
    assert summary.best.margin == zero and not summary.best.margin.excludes_zero
    assert summary.variant("hg4").difference == {"Mean": zero, "figure4": zero}
    assert summary.variant("hg1").difference["Mean"].excludes_zero
    assert summary.seed_count("hg2") == summary.seed_count("hg4") == 2
    best_seed = max(SEEDS, key=lambda s: finals["hg2", s]["Mean"])
    assert summary.examples.shown == f"hg2 seed {best_seed}" and summary.examples.problem is None
    assert summary.examples.preds_path == rep.out.parent / "models" / "hg2" / f"seed-{best_seed}" / "eval" / "preds.h5"
    assert [r.label for r in summary.provenance.resolved] == [f"{n} seed {s}" for n in ("hg2", "hg1", "hg4")
                                                              for s in SEEDS]


def test_markdown_renders_several_seeds(seeds_report) -> None:
    """With several seeds the tables show each variant's mean ± sd across seeds, one costs row per seed, and the
    wording names the seed count."""
    rep, _ = seeds_report
    text, summary = rep.text, rep.summary
    for name in ("hg2", "hg1"):
        variant = summary.variant(name)
        spread = variant.across_seeds["Mean"]
        row = _row(text, f"| **{name}** |")
        assert f"| {variant.final['Mean']:.1f} |" in row and f"| {spread.mean:.1f} ± {spread.sd:.1f} (2 seeds) |" in row
        assert "mean of 2 seeds" in row
        for seed in SEEDS:
            assert any(line.startswith(f"| {name} | {seed} | ") for line in text.splitlines())
    assert "- Training seeds: 0, 1; each variant's numbers are the mean over its seeds" in text
    uncertainty = _section(text, "Uncertainty")
    assert "across seeds, ± sd" in uncertainty and "the mean over 2 training seeds" in uncertainty
    assert "each variant was trained once, on one seed" not in text
    assert "one seed" not in text.split("## Provenance")[0]
    assert "Best variant: not distinguishable on 2 seeds. `hg2` (Mean PCKh@0.5 " in text
    assert " sd over 2 seeds [95 % interval" in text
    assert "neither (not distinguishable on 2 seeds)" in _row(uncertainty, "| `hg4` |")
    assert "not distinguishable on 2 seeds: `hg4` +0.00 [+0.00, +0.00]" in text
    examples = _section(text, "Examples")
    assert f"Validation people of variant `{summary.examples.shown}` (of its seeds, the one with the best Mean)" \
        in examples
    assert "| `hg2 seed 1` resolved params |" in text


def test_one_seed_of_several_missing_is_named_and_not_averaged(tmp_path: Path, raw: Path) -> None:
    params = _params(tmp_path, raw, seeds=SEEDS)
    models = tmp_path / "models"
    final = _fake_variant(models, raw, params, "hg2", 2, 0.12, seed=1)
    summary = _run(tmp_path, params, models, tmp_path / "none").summary
    hg2 = summary.variant("hg2")
    assert hg2.seeds == (1,) and hg2.final["Mean"] == pytest.approx(final["Mean"])
    spread = hg2.across_seeds["Mean"]
    assert (spread.mean, spread.sd, spread.n) == (pytest.approx(final["Mean"]), None, 1)
    assert any("variant `hg2` seed 0 has not been trained" in line for line in summary.missing)
    assert not summary.several_seeds  # it reads as one seed
    entry = json.loads((tmp_path / "reports" / "summary.json").read_text())["variants"]["hg2"]
    assert entry["across_seeds"]["Mean"] == {"mean": pytest.approx(final["Mean"]), "sd": None, "n": 1}


def test_best_variant_is_not_crowned_within_the_noise(tmp_path: Path, raw: Path) -> None:
    """Two variants with identical predictions: their paired difference is exactly 0, so neither is "best"."""
    params = _params(tmp_path, raw)
    models = tmp_path / "models"
    _fake_variant(models, raw, params, "hg2", 2, 0.12)
    _fake_variant(models, raw, params, "hg4", 2, 0.12)  # the same noise draw as hg2 (seeded by the stack count)
    rep = _run(tmp_path, params, models, tmp_path / "none")
    best = rep.summary.best
    assert (best.leader, best.runner_up, best.best) == ("hg2", "hg4", None)
    assert best.margin == Interval(0.0, 0.0, 0.0) and best.mean == best.runner_up_mean
    hg4 = rep.summary.variant("hg4").difference
    assert not hg4["Mean"].excludes_zero and not hg4["figure4"].excludes_zero
    summary = json.loads((rep.out / "summary.json").read_text())
    assert summary["best_variant"] is None and summary["leading_variant"] == "hg2"
    assert summary["best_variant_margin"]["distinguishable"] is False
    assert summary["best_variant_margin"]["runner_up"] == "hg4"


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
    rep = _run(tmp_path, params, models, tmp_path / "none")
    ordering = rep.summary.ordering
    assert ordering.scored == ("hg", "hg_stacked") and ordering.reference_best is None
    assert ordering.single_above_stacked and not ordering.agrees
    assert ordering.single_vs_stacked.difference.excludes_zero and ordering.single_vs_stacked.difference.low > 0
    assert (ordering.stacked_supervision, ordering.stacked_first_mean) == ("final", 0.0)
    assert rep.summary.variant("hg_stacked").supervision == "final"
    assert rep.summary.reference == "hg" and not rep.summary.reference_is_papers
    # the wording of that decision, in the summary and under Ablation
    line = _row(rep.text, "- Against the paper's Figure 4:")
    assert "The single hourglass `hg` scores above the two-stack `hg_stacked`" in line
    assert "points, distinguishable)" in line and "first stack gets none" in line
    assert "first-hourglass score in Figure 5 is 0.0 %, not a bug" in line
    assert "`hg_stacked` has one loss, on its last stack (supervision `final`)" in _section(rep.text, "Ablation")
    _assert_pngs(rep.out / "figures")


def test_absent_optional_inputs_are_named(report: tuple[Report, dict]) -> None:
    missing = report[0].summary.missing
    assert any("variant `hg4` seed 0 has not been trained" in line for line in missing)
    assert any(line.startswith("authors' released predictions not scored") for line in missing)


def test_empty_project_degrades_to_a_report(tmp_path: Path) -> None:
    params = _params(tmp_path, tmp_path / "raw" / "synthetic")  # no data, no models
    models = tmp_path / "models"
    (models / "hg2" / "seed-0" / "eval").mkdir(parents=True)
    (models / "hg2" / "seed-0" / "eval" / "metrics.json").write_text("{not json")
    rep = _run(tmp_path, params, models, tmp_path / "none")
    missing = rep.summary.missing
    for start in ("mean-pose baseline not computed", "example figures not drawn", "Figure 4 is empty"):
        assert any(line.startswith(start) for line in missing), start
    assert any("eval/metrics.json` (evaluation metrics) unreadable" in line for line in missing)
    assert rep.summary.best is None and rep.summary.bootstrap is None and rep.summary.baseline is None
    assert "| paper: 8-stack, final | 97.7 |" in rep.text and "- No variant has scores yet." in rep.text
    _assert_pngs(rep.out / "figures")
    assert json.loads((rep.out / "summary.json").read_text())["missing_inputs"] == len(missing) >= 4


def test_flic_family_uses_pck_and_its_paper_rows(tmp_path: Path) -> None:
    raw = tmp_path / "raw" / "synthetic"
    generate_dataset(paper("synthetic", train_images=6, valid_images=4, joint_set="flic", workers=1), raw,
                     progress=False)
    params = _params(tmp_path, raw, joint_set="flic")
    final = _fake_variant(tmp_path / "models", raw, params, "hg2", 2, 0.02)
    rep = _run(tmp_path, params, tmp_path / "models", tmp_path / "none")
    summary = rep.summary
    assert summary.family.name == "flic" and summary.metric == "PCK@0.2"
    assert summary.variant("hg2").final["Wrist"] == pytest.approx(final["Wrist"])
    assert summary.authors is None and not any("authors'" in line for line in summary.missing)  # MPII only
    assert not any(line.startswith(("Figure 4 is empty", "Figure 5 has no variant")) for line in summary.missing)
    text = rep.text
    assert "Wrist PCK@0.2 (%)" in text and "Eye PCK@0.2 (%)" in text and "PCKh" not in text.split("## Provenance")[0]
    assert "| 95.2 |" in text and "| 99.0 |" in text and "authors' released" not in text
    assert f"| {final['Wrist']:.1f} |" in _row(text, "| **hg2** |")
    _assert_pngs(rep.out / "figures")


def test_bad_params_exit_2(tmp_path: Path) -> None:
    write_params(tmp_path / "params.yaml", {"report": {"examples": 0}})
    assert main(["--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


def test_authors_released_predictions_row(anchor_dir: Path, raw: Path, tmp_path: Path) -> None:
    params = _params(tmp_path, raw)
    rep = _run(tmp_path, params, tmp_path / "models", anchor_dir)
    authors = rep.summary.authors.values
    # reference section 5: Head 95.94, Wrist 83.38, Mean 88.04 (joint-count weighted), PCKh@0.1 28.65; the same to
    # the table's one decimal
    assert [round(authors[k], 1) for k in ("Head", "Wrist", "Mean", "Mean@0.1")] == [95.9, 83.4, 88.0, 28.7]
    row = _row(rep.text, "| authors' released model (measured) |")
    assert "| 95.9 |" in row and "| 83.4 |" in row and "| 88.0 |" in row and "| 28.7 |" in row


def test_released_weights_are_reported_beside_the_variants(tmp_path: Path, raw: Path) -> None:
    """params ``imports``: models/<name>/ (no seed level, no training files) is scored as a variant is, named as
    released weights, and its absent training files are not missing inputs."""
    path = _params(tmp_path, raw)
    params = yaml.safe_load(path.read_text())
    params["imports"] = {"port": {"path": "weights/port.pth.tar", "input_res": 64, "commit": None}}
    path.write_text(yaml.safe_dump(params))
    models = tmp_path / "models"
    _fake_variant(models, raw, path, "hg2", 2, 0.12)
    final = _fake_variant(models, raw, path, "port", 4, 0.2)
    for name in ("eval", "config.yaml", "mlflow.json"):  # as the import and evaluate_import stages leave it
        (models / "port" / "seed-0" / name).rename(models / "port" / name)
    shutil.rmtree(models / "port" / "seed-0")  # no training files
    rep = _run(tmp_path, path, models, tmp_path / "none")
    summary = rep.summary
    assert [v.name for v in summary.variants] == ["hg2", "hg1", "hg4", "port"]
    port = summary.variant("port")
    assert port.released == "weights/port.pth.tar" and port.seeds == (None,)
    assert port.final["Mean"] == pytest.approx(final["Mean"]) and port.interval is not None
    assert port.source == ("evaluate stage (flip test); `weights/port.pth.tar`, imported from "
                           "princeton-vl/pytorch_stacked_hourglass")
    assert not any("models/port" in line for line in summary.missing)
    row = _row(rep.text, "| **port** (released weights) |")
    assert row.endswith(f"| {port.source} |") and f"| {final['Mean']:.1f} |" in row


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
    rep = _run(tmp_path, path, models, tmp_path / "no-anchor-data")
    summary = rep.summary
    assert [v.name for v in summary.variants] == ["hg2", "hg4", "hg1"]
    assert [v.name for v in summary.variants if v.final is not None] == ["hg2", "hg1"]
    assert any("variant `hg4` seed 0 has not been trained" in line for line in summary.missing)
    assert not any("hg8" in line for line in summary.missing)
    assert "hg8" not in rep.text.split("<details>")[0]  # (the params dump at the end lists every variant)
