"""The report stage's work: compute the summary, write every output under ``reports/``, give the sweep's MLflow
parent run the summary.

Outputs (``paths.out``): ``results.md``, ``summary.json`` (every number of the report, with intervals),
``scores.json`` (the one DVC metrics file), ``curves.csv`` (the DVC plot) and
``figures/{figure4,figure5,examples_best,examples_worst}.png``. Every one is written even when inputs are missing:
the report then says what is absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hourglass.config import ParamsConfig
from hourglass.io.annotations import read_annotations
from hourglass.io.atomic import write_atomic
from hourglass.io.eval_files import read_predictions
from hourglass.report.figures import write_figures
from hourglass.report.inputs import ReportPaths
from hourglass.report.markdown import render_markdown
from hourglass.report.summary import Summary, compute_summary
from hourglass.tracking.store import log_sweep_summary

SCORES_NAME = "scores.json"  # the one file `dvc metrics show` lists: variant -> evaluated Mean (mean over seeds)
CURVES_NAME = "curves.csv"  # every variant's validation curve in one table: dvc.yaml's top-level plot
RESULTS_NAME, SUMMARY_NAME, FIGURES_DIR = "results.md", "summary.json", "figures"


def write_report(summary: Summary, out: Path, valid: Path) -> None:
    """Every output of ``summary`` under ``out``; the example figures read their predictions and ``valid``."""
    examples = summary.examples
    drawn = examples is not None and examples.problem is None
    pred = read_predictions(examples.preds_path) if drawn else None
    gt = read_annotations(valid) if drawn else None
    write_figures(summary, out / FIGURES_DIR, pred, gt)
    write_atomic(out / SUMMARY_NAME, json.dumps(summary.to_json(), indent=2, sort_keys=True) + "\n")
    write_atomic(out / SCORES_NAME, json.dumps(summary.scores(), indent=2) + "\n")
    write_atomic(out / CURVES_NAME, summary.curves_csv())
    write_atomic(out / RESULTS_NAME, render_markdown(summary))


def build_report(params: ParamsConfig, paths: ReportPaths) -> dict[str, Any]:
    """Write ``results.md``, ``summary.json``, ``scores.json``, ``curves.csv`` and the four figures under
    ``paths.out``.

    Returns the summary written to ``summary.json`` plus ``missing``: the lines of the "Missing inputs" section.
    """
    summary = compute_summary(params, paths)
    write_report(summary, paths.out, paths.valid)
    return {**summary.to_json(), "missing": list(summary.missing)}


def log_to_mlflow(params: ParamsConfig, summary: dict[str, Any], out: Path) -> str | None:
    """Give the sweep's parent run (params ``mlflow.sweep``) the report: each variant's evaluated Mean and sd across
    seeds, the best variant, and results.md, summary.json and the figures as artifacts. Returns the parent's run
    id; None when MLflow is off, there is no sweep, or no child run was logged."""
    mlflow_cfg = params.mlflow
    experiment, sweep = mlflow_cfg.experiment, mlflow_cfg.sweep  # read even when off: the stage declares both
    if not (mlflow_cfg.enabled and sweep):
        return None
    best = summary.get("best_variant")
    tags = {"report.best_variant": best or "none: the leader is not distinguishable from the runner-up",
            "report.metric": f"{summary.get('metric', '')}, evaluate stage, flip test",
            "report.seeds": ", ".join(map(str, params.seeds))}
    # the evaluate stage's Means (each the mean over the variant's seeds), as DVC shows them
    scores = json.loads((out / SCORES_NAME).read_text())
    spreads = {name: ((entry.get("across_seeds") or {}).get("Mean") or {}).get("sd")
               for name, entry in summary["variants"].items()}
    return log_sweep_summary(experiment, sweep, scores, tags,
                             [out / RESULTS_NAME, out / SUMMARY_NAME, out / FIGURES_DIR], spreads=spreads)


def run_report(params: ParamsConfig, paths: ReportPaths) -> tuple[dict[str, Any], str | None]:
    """The report stage: :func:`build_report`, then :func:`log_to_mlflow`; returns the summary (with ``missing``)
    and the MLflow parent run it was logged to (None: not logged)."""
    summary = build_report(params, paths)
    return summary, log_to_mlflow(params, summary, paths.out)
