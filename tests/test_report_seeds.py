"""The report stage over variants trained from several seeds: its numbers are the seed-averaged ones, with the
spread across seeds, on the fabricated tree of ``report_project``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from report_project import (
    Report,
    fake_variant,
    project_params,
    resampled_scores,
    run_stage,
    section,
    synthetic_raw,
    table_row,
)

from hourglass.report.bootstrap import Interval


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_raw(tmp_path_factory)


SEEDS = (0, 1)


@pytest.fixture(scope="module")
def seeds_report(tmp_path_factory: pytest.TempPathFactory, raw: Path) -> tuple[Report, dict[tuple[str, int], dict]]:
    """hg2 and hg1 trained from two seeds each; hg4 predicts exactly as hg2 (same stacks, same draws)."""
    tmp = tmp_path_factory.mktemp("seeds")
    params = project_params(tmp, raw, seeds=SEEDS)
    models = tmp / "models"
    finals = {}
    for name, stacks, sigma in (("hg2", 2, 0.25), ("hg1", 1, 0.35), ("hg4", 2, 0.25)):
        for seed in SEEDS:
            finals[name, seed] = fake_variant(models, raw, params, name, stacks, sigma, seed=seed)
    return run_stage(tmp, params, models, tmp / "no-anchor-data"), finals


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
    draws = {name: [resampled_scores(models / name / f"seed-{seed}" / "eval" / "preds.h5", valid)
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
        row = table_row(text, f"| **{name}** |")
        assert f"| {variant.final['Mean']:.1f} |" in row and f"| {spread.mean:.1f} ± {spread.sd:.1f} (2 seeds) |" in row
        assert "mean of 2 seeds" in row
        for seed in SEEDS:
            assert any(line.startswith(f"| {name} | {seed} | ") for line in text.splitlines())
    assert "- Training seeds: 0, 1; each variant's numbers are the mean over its seeds" in text
    uncertainty = section(text, "Uncertainty")
    assert "across seeds, ± sd" in uncertainty and "the mean over 2 training seeds" in uncertainty
    assert "each variant was trained once, on one seed" not in text
    assert "one seed" not in text.split("## Provenance")[0]
    assert "Best variant: not distinguishable on 2 seeds. `hg2` (Mean PCKh@0.5 " in text
    assert " sd over 2 seeds [95 % interval" in text
    assert "neither (not distinguishable on 2 seeds)" in table_row(uncertainty, "| `hg4` |")
    assert "not distinguishable on 2 seeds: `hg4` +0.00 [+0.00, +0.00]" in text
    examples = section(text, "Examples")
    assert f"Validation people of variant `{summary.examples.shown}` (of its seeds, the one with the best Mean)" \
        in examples
    assert "| `hg2 seed 1` resolved params |" in text


def test_one_seed_of_several_missing_is_named_and_not_averaged(tmp_path: Path, raw: Path) -> None:
    params = project_params(tmp_path, raw, seeds=SEEDS)
    models = tmp_path / "models"
    final = fake_variant(models, raw, params, "hg2", 2, 0.12, seed=1)
    summary = run_stage(tmp_path, params, models, tmp_path / "none").summary
    hg2 = summary.variant("hg2")
    assert hg2.seeds == (1,) and hg2.final["Mean"] == pytest.approx(final["Mean"])
    spread = hg2.across_seeds["Mean"]
    assert (spread.mean, spread.sd, spread.n) == (pytest.approx(final["Mean"]), None, 1)
    assert any("variant `hg2` seed 0 has not been trained" in line for line in summary.missing)
    assert not summary.several_seeds  # it reads as one seed
    entry = json.loads((tmp_path / "reports" / "summary.json").read_text())["variants"]["hg2"]
    assert entry["across_seeds"]["Mean"] == {"mean": pytest.approx(final["Mean"]), "sd": None, "n": 1}
