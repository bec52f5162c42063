"""The report stage on a fabricated models/ tree over a tiny synthetic dataset (``report_project``; budget: under
60 s), one training seed per variant.

Numbers and decisions are checked on the report's data model (:class:`hourglass.report.summary.Summary`, of which
summary.json, scores.json and curves.csv are the serialisation: every run below checks that); a few tests check
that results.md renders the model. A tree with nothing in it checks that absent inputs are named instead of crashing
the stage. Several seeds: ``test_report_seeds.py``; the report's parts on their own: ``test_report_parts.py``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import yaml
from report_project import (
    FIGURES,
    Report,
    assert_pngs,
    fake_variant,
    project_params,
    resampled_scores,
    run_stage,
    section,
    synthetic_raw,
    table_row,
)
from shipped import paper, write_params

from hourglass.data.synthetic import generate_dataset
from hourglass.evaluation.baselines import score_mean_pose
from hourglass.family import family_named
from hourglass.io.eval_files import read_ground_truth
from hourglass.joints import FLIC
from hourglass.report.bootstrap import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, Interval
from hourglass.report.summary import figure5_variants
from pipeline.report import main

# The paper's MPII validation PCKh@0.5 of the 8-stack network (final and first hourglass), as published; the
# report prints them from datasets/mpii.yaml and datasets/synthetic.yaml.
PAPER_MPII_FINAL = {"Head": 97.7, "Shoulder": 94.6, "Elbow": 88.5, "Wrist": 83.3, "Hip": 87.5, "Knee": 83.0,
                    "Ankle": 79.0}
PAPER_MPII_INTERMEDIATE = {"Head": 96.7, "Shoulder": 92.9, "Elbow": 85.0, "Wrist": 79.8, "Hip": 83.7, "Knee": 78.6,
                           "Ankle": 74.3}


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_raw(tmp_path_factory)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, raw: Path) -> tuple[Report, dict[str, dict]]:
    tmp = tmp_path_factory.mktemp("project")
    params = project_params(tmp, raw)
    models = tmp / "models"
    finals = {"hg2": fake_variant(models, raw, params, "hg2", 2, 0.12),
              "hg1": fake_variant(models, raw, params, "hg1", 1, 0.3)}
    (tmp / "reports").mkdir()
    (tmp / "reports" / "champion.json").write_text("{}")  # another stage's file: must survive untouched
    return run_stage(tmp, params, models, tmp / "no-anchor-data"), finals


def test_variants_are_scored_beside_the_baseline(report: tuple[Report, dict], raw: Path) -> None:
    rep, finals = report
    summary = rep.summary
    baseline = score_mean_pose(raw / "annot" / "train.h5", raw / "annot" / "valid.h5")
    assert summary.baseline.mean == pytest.approx(baseline.mean)
    assert summary.baseline.values["figure4"] == pytest.approx(family_named("synthetic").figure4(baseline))
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
    assert_pngs(out / "figures")
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
    results = section(text, "Results")
    assert "Mean PCKh@0.5 (%)" in results and "Mean PCKh@0.1 (%)" in results
    for name in ("hg2", "hg1"):
        variant = summary.variant(name)
        row = table_row(results, f"| **{name}** |")
        mean = variant.interval["Mean"]
        assert f"| {variant.final['Elbow']:.1f} |" in row and f"| {variant.final['Mean']:.1f} |" in row
        assert f"| [{mean.low:.1f}, {mean.high:.1f}] |" in row and row.endswith(f"| {variant.source} |")
    assert table_row(results, "| mean-pose baseline |").count(f"| {summary.baseline.mean:.1f} |") == 1
    uncertainty = section(text, "Uncertainty")
    boot = summary.bootstrap
    assert (f"intervals over the {boot.people} validation people with an annotated joint: {boot.resamples} "
            f"resamples of the people drawn with replacement (seed {boot.seed})") in uncertainty
    assert "`hg2`, the first variant of the sweep: `hg_stacked_int`" in uncertainty
    assert "each variant was trained once, on one seed" in uncertainty and "across seeds" not in text
    assert table_row(uncertainty, "| `hg2` |").endswith("| – | – | (reference) |")
    diff = summary.variant("hg1").difference["figure4"]
    assert f"{diff.estimate:+.2f} [{diff.low:+.2f}, {diff.high:+.2f}]" in table_row(uncertainty, "| `hg1` |")
    assert "Best variant: `hg2`" in text and "ahead of the runner-up `hg1`" in text
    assert "not distinguishable on one seed: none." in section(text, "Summary")
    ablation = section(text, "Ablation")
    assert table_row(ablation, "| hg2: stack 1 (first hourglass) |") and "hg1: stack 1" not in text
    costs = section(text, "Model size, training time and throughput")
    assert "Training throughput (img/s)" in costs and "Parameters (M)" in costs
    assert "3.43 (from config)" in table_row(costs, "| hg1 | 1 |")
    hg2 = table_row(costs, "| hg2 | 2 |")
    assert "| 6.57 |" in hg2 and f"| {15 / 3600:.3g} |" in hg2 and "`run-hg2`" in hg2
    provenance = section(text, "Provenance")
    assert "<details><summary>params.yaml" in provenance and "| git commit |" in provenance
    assert f"sha256 `{summary.provenance.params_sha256}`" in provenance and summary.provenance.data in provenance
    missing = text.split("### Missing inputs\n")[1].split("\n## ")[0]
    assert summary.missing and all(f"- {line}\n" in missing for line in summary.missing)


def test_intervals_are_recomputed_from_the_predictions(report: tuple[Report, dict], raw: Path) -> None:
    """The report's intervals come from the predictions. One interval and one paired difference
    are recomputed here from preds.h5 and valid.h5, scoring every resample with the evaluator itself."""
    rep, finals = report
    summary = rep.summary
    models = rep.out.parent / "models"
    valid = raw / "annot" / "valid.h5"
    hg1 = resampled_scores(models / "hg1" / "seed-0" / "eval" / "preds.h5", valid)
    hg2 = resampled_scores(models / "hg2" / "seed-0" / "eval" / "preds.h5", valid)
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


def test_best_variant_is_not_crowned_within_the_noise(tmp_path: Path, raw: Path) -> None:
    """Two variants with identical predictions: their paired difference is exactly 0, so neither is "best"."""
    params = project_params(tmp_path, raw)
    models = tmp_path / "models"
    fake_variant(models, raw, params, "hg2", 2, 0.12)
    fake_variant(models, raw, params, "hg4", 2, 0.12)  # the same noise draw as hg2 (seeded by the stack count)
    rep = run_stage(tmp_path, params, models, tmp_path / "none")
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
        "train": {"batch_size": 4, "variants": {"hg": {"model": {"stacks": 1, "supervision": "final"}},
                                                 "hg_stacked": {"model": {"stacks": 2, "supervision": "final"}}}}})
    models = tmp_path / "models"
    fake_variant(models, raw, params, "hg", 1, 0.12)
    fake_variant(models, raw, params, "hg_stacked", 2, 0.3)
    evaluation = json.loads((models / "hg_stacked" / "seed-0" / "eval" / "metrics.json").read_text())
    evaluation["stacks"][0]["metrics"] = {k: 0.0 for k in evaluation["stacks"][0]["metrics"]}
    (models / "hg_stacked" / "seed-0" / "eval" / "metrics.json").write_text(json.dumps(evaluation))
    config = yaml.safe_load((models / "hg_stacked" / "seed-0" / "config.yaml").read_text())
    config["model"]["supervision"] = "final"
    (models / "hg_stacked" / "seed-0" / "config.yaml").write_text(yaml.safe_dump(config))
    rep = run_stage(tmp_path, params, models, tmp_path / "none")
    ordering = rep.summary.ordering
    assert ordering.scored == ("hg", "hg_stacked") and ordering.reference_best is None
    assert ordering.single_above_stacked and not ordering.agrees
    assert ordering.single_vs_stacked.difference.excludes_zero and ordering.single_vs_stacked.difference.low > 0
    assert (ordering.stacked_supervision, ordering.stacked_first_mean) == ("final", 0.0)
    assert rep.summary.variant("hg_stacked").supervision == "final"
    assert rep.summary.reference == "hg" and not rep.summary.reference_is_papers
    # the wording of that decision, in the summary and under Ablation
    line = table_row(rep.text, "- Against the paper's Figure 4:")
    assert "The single hourglass `hg` scores above the two-stack `hg_stacked`" in line
    assert "points, distinguishable)" in line and "first stack gets none" in line
    assert "first-hourglass score in Figure 5 is 0.0 %, not a bug" in line
    assert "`hg_stacked` has one loss, on its last stack (supervision `final`)" in section(rep.text, "Ablation")
    assert_pngs(rep.out / "figures")


def test_absent_optional_inputs_are_named(report: tuple[Report, dict]) -> None:
    missing = report[0].summary.missing
    assert any("variant `hg4` seed 0 has not been trained" in line for line in missing)
    assert any(line.startswith("authors' released predictions not scored") for line in missing)


def test_empty_project_degrades_to_a_report(tmp_path: Path) -> None:
    params = project_params(tmp_path, tmp_path / "raw" / "synthetic")  # no data, no models
    models = tmp_path / "models"
    (models / "hg2" / "seed-0" / "eval").mkdir(parents=True)
    (models / "hg2" / "seed-0" / "eval" / "metrics.json").write_text("{not json")
    rep = run_stage(tmp_path, params, models, tmp_path / "none")
    missing = rep.summary.missing
    for start in ("mean-pose baseline not computed", "example figures not drawn", "Figure 4 is empty"):
        assert any(line.startswith(start) for line in missing), start
    assert any("eval/metrics.json` (evaluation metrics) unreadable" in line for line in missing)
    assert rep.summary.best is None and rep.summary.bootstrap is None and rep.summary.baseline is None
    assert "| paper: 8-stack, final | 97.7 |" in rep.text and "- No variant has scores yet." in rep.text
    assert_pngs(rep.out / "figures")
    assert json.loads((rep.out / "summary.json").read_text())["missing_inputs"] == len(missing) >= 4


def test_flic_family_uses_pck_and_its_paper_rows(tmp_path: Path) -> None:
    raw = tmp_path / "raw" / "synthetic_flic"
    generate_dataset(paper("synthetic", train_images=6, valid_images=4, workers=1), raw, progress=False,
                     joint_set=FLIC)
    params = project_params(tmp_path, raw, dataset="synthetic_flic")
    final = fake_variant(tmp_path / "models", raw, params, "hg2", 2, 0.02)
    rep = run_stage(tmp_path, params, tmp_path / "models", tmp_path / "none")
    summary = rep.summary
    assert summary.family.name == "synthetic_flic" and summary.metric == "PCK@0.2"
    assert summary.variant("hg2").final["Wrist"] == pytest.approx(final["Wrist"])
    assert summary.authors is None and not any("authors'" in line for line in summary.missing)  # MPII only
    assert not any(line.startswith(("Figure 4 is empty", "Figure 5 has no variant")) for line in summary.missing)
    text = rep.text
    assert "Wrist PCK@0.2 (%)" in text and "Eye PCK@0.2 (%)" in text and "PCKh" not in text.split("## Provenance")[0]
    assert "| 95.2 |" in text and "| 99.0 |" in text and "authors' released" not in text
    assert f"| {final['Wrist']:.1f} |" in table_row(text, "| **hg2** |")
    assert_pngs(rep.out / "figures")


def test_bad_params_exit_2(tmp_path: Path) -> None:
    write_params(tmp_path / "params.yaml", {"report": {"examples": 0}})
    assert main(["--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


def test_authors_released_predictions_row(anchor_dir: Path, raw: Path, tmp_path: Path) -> None:
    params = project_params(tmp_path, raw)
    rep = run_stage(tmp_path, params, tmp_path / "models", anchor_dir)
    authors = rep.summary.authors.values
    # the released predictions' official scores (test_metrics.GOLDEN): Head 95.94, Wrist 83.38, Mean 88.04
    # (joint-count weighted), PCKh@0.1 28.65; the same to the table's one decimal
    assert [round(authors[k], 1) for k in ("Head", "Wrist", "Mean", "Mean@0.1")] == [95.9, 83.4, 88.0, 28.7]
    row = table_row(rep.text, "| authors' released model (measured) |")
    assert "| 95.9 |" in row and "| 83.4 |" in row and "| 88.0 |" in row and "| 28.7 |" in row


def test_released_weights_are_reported_beside_the_variants(tmp_path: Path, raw: Path) -> None:
    """params ``imports``: models/<name>/ (no seed level, no training files) is scored as a variant is, named as
    released weights, and its absent training files are not missing inputs."""
    path = project_params(tmp_path, raw)
    params = yaml.safe_load(path.read_text())
    params["imports"] = {"port": {"path": "weights/port.pth.tar", "input_res": 64, "commit": None}}
    path.write_text(yaml.safe_dump(params))
    models = tmp_path / "models"
    fake_variant(models, raw, path, "hg2", 2, 0.12)
    final = fake_variant(models, raw, path, "port", 4, 0.2)
    for name in ("eval", "config.yaml", "mlflow.json"):  # as the import and evaluate_import stages leave it
        (models / "port" / "seed-0" / name).rename(models / "port" / name)
    shutil.rmtree(models / "port" / "seed-0")  # no training files
    rep = run_stage(tmp_path, path, models, tmp_path / "none")
    summary = rep.summary
    assert [v.name for v in summary.variants] == ["hg2", "hg1", "hg4", "port"]
    port = summary.variant("port")
    assert port.released == "weights/port.pth.tar" and port.seeds == (None,)
    assert port.final["Mean"] == pytest.approx(final["Mean"]) and port.interval is not None
    assert port.source == ("evaluate stage (flip test); `weights/port.pth.tar`, imported from "
                           "princeton-vl/pytorch_stacked_hourglass")
    assert not any("models/port" in line for line in summary.missing)
    row = table_row(rep.text, "| **port** (released weights) |")
    assert row.endswith(f"| {port.source} |") and f"| {final['Mean']:.1f} |" in row


def test_report_covers_the_sweep_and_other_trained_variants_only(tmp_path: Path, raw: Path) -> None:
    """Variants defined in params but neither in the sweep nor trained are not "missing": nobody asked for them."""
    path = project_params(tmp_path, raw)
    params = yaml.safe_load(path.read_text())
    params["train"]["variants"]["hg8"] = {"model": {"stacks": 8}}
    params["sweep"] = ["hg2", "hg4"]
    params["flows"]["champion_variant"] = "hg2"
    path.write_text(yaml.safe_dump(params))
    models = tmp_path / "models"
    fake_variant(models, raw, path, "hg2", 2, 0.12)
    fake_variant(models, raw, path, "hg1", 1, 0.3)  # trained by hand, outside the sweep: still reported
    rep = run_stage(tmp_path, path, models, tmp_path / "no-anchor-data")
    summary = rep.summary
    assert [v.name for v in summary.variants] == ["hg2", "hg4", "hg1"]
    assert [v.name for v in summary.variants if v.final is not None] == ["hg2", "hg1"]
    assert any("variant `hg4` seed 0 has not been trained" in line for line in summary.missing)
    assert not any("hg8" in line for line in summary.missing)
    assert "hg8" not in rep.text.split("<details>")[0]  # (the params dump at the end lists every variant)
