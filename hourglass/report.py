"""The results report: markdown tables beside the paper's numbers, matplotlib figures, provenance.

Reads what training and evaluation leave under ``models/<variant>/`` and writes ``reports/results.md``,
``reports/summary.json`` and ``reports/figures/{figure4,figure5,examples_best,examples_worst}.png``. Every input
except the params is optional: a missing or unreadable file becomes a line under "Missing inputs" and an "n/a" cell,
and every declared output is still written, so a half-finished pipeline still gets a report that says what is absent.

Figures are drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas (no pyplot, no global state): DVC's
HTML plots load Vega from a CDN and stay blank offline, PNGs do not.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from matplotlib.figure import Figure

from hourglass.atomic import write_atomic
from hourglass.annotations import AnnotationError, Annotations, read_annotations
from hourglass.baselines import score_mean_pose
from hourglass.config import ParamsConfig, ReportConfig
from hourglass.draw import PRED_STYLE, TRUE_STYLE, draw_skeleton, save_figure, show_crop
from hourglass.evaluate import evaluate_files
from hourglass.family import FAMILIES, DatasetFamily, family_of
from hourglass.metrics import PCKResult, normalized_errors, within
from hourglass.readers import ReaderError, read_predictions

# -- the paper's numbers ------------------------------------------------------------------------------------------
PAPER = "Newell, Yang, Deng: Stacked Hourglass Networks for Human Pose Estimation, ECCV 2016"
# MPII validation PCKh@0.5 of the 8-stack network, final and first-hourglass (intermediate) predictions, and the
# headline elbow/wrist accuracies, as the project's report issue quotes them from the paper.
PAPER_MPII_FINAL = {"Head": 97.7, "Shoulder": 94.6, "Elbow": 88.5, "Wrist": 83.3, "Hip": 87.5, "Knee": 83.0,
                    "Ankle": 79.0}
PAPER_MPII_INTERMEDIATE = {"Head": 96.7, "Shoulder": 92.9, "Elbow": 85.0, "Wrist": 79.8, "Hip": 83.7, "Knee": 78.6,
                           "Ankle": 74.3}
PAPER_MPII_HEADLINE = {"Elbow": 90.0, "Wrist": 85.2}
# FLIC PCK@0.2: the issue quotes wrist 95.2 % "with shoulders and elbows almost perfect" (no number for those);
# /work/shared/reference/paper-and-peers.md section 5 lists the paper's FLIC table as elbow 99.0, wrist 97.0.
PAPER_FLIC_ISSUE = {"Wrist": 95.2}
PAPER_FLIC_TABLE = {"Elbow": 99.0, "Wrist": 97.0}
AUTHORS_PREDICTIONS = "pose-hg-demo/preds/valid-ours.h5"  # inside shared/anchor-data (reference section 5)
AUTHORS_GROUND_TRUTH = "pose-hg-train/data/mpii/annot/valid.h5"

@dataclass(frozen=True)
class ScoreRow:
    """One row of the results table: group percentages (missing groups are blank), where it comes from."""

    name: str
    source: str
    values: Mapping[str, float]


def paper_rows(family: DatasetFamily) -> list[ScoreRow]:
    """The paper's published numbers for ``family`` ('mpii' or 'flic'), each row naming its source."""
    if family.name == "mpii":
        return [ScoreRow("paper: 8-stack, final", "paper¹, MPII validation", PAPER_MPII_FINAL),
                ScoreRow("paper: 8-stack, first hourglass", "paper¹, MPII validation", PAPER_MPII_INTERMEDIATE),
                ScoreRow("paper: headline", "paper¹, MPII", PAPER_MPII_HEADLINE)]
    return [ScoreRow("paper: 8-stack", "paper¹, FLIC; shoulders and elbows 'almost perfect'", PAPER_FLIC_ISSUE),
            ScoreRow("paper: 8-stack (results table)", "paper², FLIC", PAPER_FLIC_TABLE)]


def paper_footnote(family: DatasetFamily) -> str:
    """Where the paper rows come from, printed under every table that shows them."""
    text = f"¹ {PAPER}, as quoted in the project's report issue."
    if family.name == "flic":
        text += (" ² The same paper's FLIC results as listed in the project's reference notes "
                 "(`shared/reference/paper-and-peers.md` section 5).")
    return text


# -- inputs -------------------------------------------------------------------------------------------------------
@dataclass
class VariantRun:
    """What one ``models/<variant>/`` holds; None for each file that is absent or unreadable (see ``missing``)."""

    name: str
    path: Path
    train_metrics: dict[str, Any] | None = None
    epochs: list[dict[str, float]] | None = None
    config: dict[str, Any] | None = None
    mlflow_run: str | None = None
    eval: dict[str, Any] | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def preds_path(self) -> Path:
        return self.path / "eval" / "preds.h5"


def _read_json(path: Path, missing: list[str], what: str) -> dict[str, Any] | None:
    if not path.is_file():
        missing.append(f"`{path}` ({what}) not found")
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        missing.append(f"`{path}` ({what}) unreadable: {err}")
        return None
    if not isinstance(value, dict):
        missing.append(f"`{path}` ({what}) is not a JSON object")
        return None
    return value


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def read_epochs(path: Path) -> list[dict[str, float]]:
    """``epochs.csv`` as one dict per epoch; empty cells (non-finite values) become NaN."""
    with open(path, newline="") as fh:
        return [{k: _float(v) for k, v in row.items() if k is not None} for row in csv.DictReader(fh)]


def load_variant(name: str, path: Path) -> VariantRun:
    """Read every file of ``path`` that exists; each absent or malformed one is named in ``missing``."""
    run = VariantRun(name, path)
    if not path.is_dir():
        run.missing.append(f"`{path}`: variant `{name}` has not been trained (no directory)")
        return run
    run.train_metrics = _read_json(path / "metrics.json", run.missing, "training metrics")
    epochs = path / "epochs.csv"
    if epochs.is_file():
        try:
            run.epochs = read_epochs(epochs) or None
            if run.epochs is None:
                run.missing.append(f"`{epochs}` (per-epoch validation) has no rows")
        except (OSError, csv.Error) as err:
            run.missing.append(f"`{epochs}` (per-epoch validation) unreadable: {err}")
    else:
        run.missing.append(f"`{epochs}` (per-epoch validation) not found")
    config = path / "config.yaml"
    if config.is_file():
        try:
            loaded = yaml.safe_load(config.read_text())
            run.config = loaded if isinstance(loaded, dict) else None
        except (OSError, yaml.YAMLError) as err:
            run.missing.append(f"`{config}` (resolved params) unreadable: {err}")
    mlflow = path / "mlflow.json"
    if mlflow.is_file():
        record = _read_json(mlflow, run.missing, "MLflow run")
        run.mlflow_run = (record or {}).get("run_id")
    run.eval = _read_json(path / "eval" / "metrics.json", run.missing, "evaluation metrics")
    return run


def discover_variants(models_dir: Path, names: Sequence[str]) -> list[VariantRun]:
    """The variants named in params (in that order, trained or not), then any other directory with metrics."""
    others = sorted(p.name for p in models_dir.iterdir() if p.is_dir() and p.name not in names and (
        (p / "metrics.json").is_file() or (p / "eval" / "metrics.json").is_file())) if models_dir.is_dir() else []
    return [load_variant(name, models_dir / name) for name in [*names, *others]]


def find_anchor_data(start: Path | None = None) -> Path | None:
    """``HOURGLASS_ANCHOR_DATA``, else the nearest ``shared/anchor-data`` above ``start`` or this package."""
    env = os.environ.get("HOURGLASS_ANCHOR_DATA")
    if env:
        return Path(env) if Path(env).is_dir() else None
    for base in (start or Path.cwd(), Path(__file__).resolve()):
        for parent in [base.resolve(), *base.resolve().parents]:
            candidate = parent / "shared" / "anchor-data"
            if candidate.is_dir():
                return candidate
    return None


# -- numbers per variant ------------------------------------------------------------------------------------------
def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def final_scores(run: VariantRun, family: DatasetFamily) -> tuple[dict[str, float], str] | None:
    """The variant's group scores and their source: the evaluate stage when present, else the last training epoch."""
    if run.eval and isinstance(run.eval.get("final"), Mapping):
        return {k: v for k, v in run.eval["final"].items() if _finite(v) is not None}, \
            "evaluate stage" + (" (flip test)" if run.eval.get("flip_test") else "")
    if run.train_metrics:
        prefix = family.prefix + "/"
        values = {k[len(prefix):].replace("_at_", "@"): v for k, v in run.train_metrics.items()
                  if k.startswith(prefix) and "/joint/" not in k and _finite(v) is not None}
        if values:
            return values, "last training epoch (no flip test)"
    return None


def intermediate_scores(run: VariantRun) -> tuple[int, dict[str, float]] | None:
    """(stack number, group scores) of the first hourglass, when the evaluation recorded more than one stack."""
    stacks = (run.eval or {}).get("stacks")
    if not isinstance(stacks, list) or len(stacks) < 2:
        return None
    first = min((s for s in stacks if isinstance(s, Mapping)), key=lambda s: s.get("stack", math.inf), default=None)
    if first is None or not isinstance(first.get("metrics"), Mapping):
        return None
    return int(first.get("stack", 1)), {k: v for k, v in first["metrics"].items() if _finite(v) is not None}


def training_hours(run: VariantRun) -> float | None:
    """Optimiser time summed over epochs (steps x batch / measured img/s), excluding validation."""
    batch = _finite(((run.config or {}).get("train") or {}).get("batch_size"))
    if not run.epochs or batch is None:
        return None
    seconds, last_step = 0.0, 0.0
    for row in run.epochs:
        step, rate = row.get("step", math.nan), row.get("train/img_s", math.nan)
        if not (math.isfinite(step) and math.isfinite(rate) and rate > 0):
            return None
        seconds += (step - last_step) * batch / rate
        last_step = step
    return seconds / 3600.0


def mean_train_throughput(run: VariantRun) -> float | None:
    rates = [r.get("train/img_s", math.nan) for r in run.epochs or []]
    rates = [r for r in rates if math.isfinite(r)]
    return float(np.mean(rates)) if rates else None


def parameter_count(run: VariantRun, joints: int) -> tuple[int | None, str]:
    """From the evaluation when it recorded one, else counted from the resolved config on torch's meta device."""
    if run.eval and _finite(run.eval.get("parameters")) is not None:
        return int(run.eval["parameters"]), "evaluate"
    model = (run.config or {}).get("model")
    if not isinstance(model, Mapping):
        return None, "n/a"
    import torch

    from hourglass.config import ModelConfig
    from hourglass.model import count_parameters, create_model

    try:
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            network = create_model(**ModelConfig.model_validate(model).network_kwargs(), joints=joints)
    except (KeyError, TypeError, ValueError):
        return None, "n/a"
    return count_parameters(network), "config"


# -- markdown -----------------------------------------------------------------------------------------------------
def _cell(value: Any, digits: int = 1) -> str:
    number = _finite(value)
    return "–" if number is None else f"{number:.{digits}f}"


def _duration(hours: float | None) -> str:
    """Hours with two decimals, or three significant digits for runs shorter than a quarter of an hour."""
    if hours is None:
        return "–"
    return f"{hours:.2f}" if hours >= 0.25 else f"{hours:.3g}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` is one character per column, 'l' or 'r' (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---" if a == "l" else "---:" for a in align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def scores_table(rows: Sequence[ScoreRow], family: DatasetFamily) -> str:
    """Groups, Mean and (MPII) Mean@0.1, in %, one row per model, with a source column."""
    metric = family.metric
    columns = [*family.groups, "Mean"] + (["Mean@0.1"] if family.name == "mpii" else [])
    header = ["Model", *(f"{c} {metric} (%)" if c != "Mean@0.1" else "Mean PCKh@0.1 (%)" for c in columns), "Source"]
    body = [[r.name, *(_cell(r.values.get(c)) for c in columns), r.source] for r in rows]
    return markdown_table(header, body, "l" + "r" * len(columns) + "l")


def _result_values(result: PCKResult) -> dict[str, float]:
    """The table's numbers of ``result``, with the ablation figure's accuracy as ``figure4``."""
    return {**result.as_dict(), "figure4": FAMILIES[result.dataset].figure4(result)}


# -- figures ------------------------------------------------------------------------------------------------------
def _message_figure(title: str, message: str) -> Figure:
    """A figure that states why its content is absent, so a declared output always exists and says so."""
    fig = Figure(figsize=(7, 2.5))
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=11)
    return fig


def figure4(runs: Sequence[VariantRun], family: DatasetFamily) -> tuple[Figure, str | None]:
    """Validation accuracy against optimiser steps, one line per variant (the paper's Figure 4)."""
    key = "val/figure4"
    label = f"validation {family.metric} (%), mean of " + ", ".join(
        dict.fromkeys(j[2:] + "s" for j in family.figure4_joints))
    curves = [(r.name, r.epochs) for r in runs if r.epochs and any(math.isfinite(e.get(key, math.nan))
                                                                   for e in r.epochs)]
    if not curves:
        return _message_figure("Figure 4: validation accuracy during training",
                               f"No variant has per-epoch validation ({key} in models/<variant>/epochs.csv)."), \
            f"no variant has `{key}` in its epochs.csv"
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.add_subplot()
    for name, rows in curves:
        steps = [e.get("step", math.nan) for e in rows]
        x = steps if all(math.isfinite(s) for s in steps) else [e["epoch"] for e in rows]
        ax.plot(x, [e.get(key, math.nan) for e in rows], marker="o", markersize=3, label=name)
    by_step = all(all(math.isfinite(e.get("step", math.nan)) for e in rows) for _, rows in curves)
    ax.set_xlabel("training progress (optimiser steps)" if by_step else "training progress (epochs)")
    ax.set_ylabel(label)
    ax.set_title("Figure 4: validation accuracy during training, all variants")
    ax.grid(alpha=0.3)
    ax.legend(title="variant")
    return fig, None


def figure5(series: Sequence[tuple[str, Mapping[str, float], Mapping[str, float]]], family: DatasetFamily
            ) -> tuple[Figure, str | None]:
    """First-hourglass against final predictions per joint group: paired bars per model (the paper's Figure 5)."""
    groups = family.groups
    if not series:
        return _message_figure("Figure 5: intermediate against final predictions",
                               "No multi-stack variant has per-stack evaluation (models/<variant>/eval/metrics.json "
                               "'stacks')."), "no multi-stack variant has per-stack evaluation scores"
    fig = Figure(figsize=(max(8.0, 1.4 * len(groups) * max(1, len(series)) / 1.5), 5.4), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(groups))
    width = 0.8 / (2 * len(series))
    colours = [f"C{i}" for i in range(len(series))]
    for i, (name, inter, final) in enumerate(series):
        base = x - 0.4 + width * (2 * i + 0.5)
        ax.bar(base, [inter.get(g, np.nan) for g in groups], width, color=colours[i], alpha=0.45,
               label=f"{name}: first hourglass")
        ax.bar(base + width, [final.get(g, np.nan) for g in groups], width, color=colours[i],
               label=f"{name}: final")
    ax.set_xticks(x, groups)
    ax.set_ylabel(f"validation {family.metric} (%)")
    ax.set_xlabel("joint group")
    ax.set_ylim(0, 105)
    ax.set_title("Figure 5: first-hourglass (intermediate) against final predictions per joint")
    ax.grid(axis="y", alpha=0.3)
    # Below the axes: inside, the legend would hide the low bars it is meant to explain.
    fig.legend(fontsize=8, ncol=len(series), loc="outside lower center")
    return fig, None


@dataclass(frozen=True)
class Example:
    """One validation person chosen for the example figures."""

    row: int
    accuracy: float  # % of annotated joints within the threshold
    error: float  # mean normalised error over annotated joints (capped at 10 per joint)


def rank_people(pred: np.ndarray, gt: Annotations, threshold: float, min_joints: int = 4
                ) -> tuple[list[Example], list[Example]]:
    """All people with at least ``min_joints`` annotated joints, best first and worst first."""
    errors = normalized_errors(pred, gt.joints, gt.annotated, gt.normalize)
    people = []
    for row in np.flatnonzero(gt.annotated.sum(axis=1) >= min_joints):
        err = errors[row][gt.annotated[row]]
        people.append(Example(int(row), 100.0 * float(within(err, threshold).mean()),
                              float(np.minimum(err, 10.0).mean())))
    best = sorted(people, key=lambda e: (-e.accuracy, e.error, e.row))
    worst = sorted(people, key=lambda e: (e.accuracy, -e.error, e.row))
    return best, worst


def _read_rgb(path: Path) -> np.ndarray | None:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _view(center: np.ndarray, side: float, *points: np.ndarray) -> tuple[np.ndarray, float]:
    """The square (centre, side) that holds the person box and every finite joint, so a prediction that landed
    on someone else is still in the picture."""
    box = center[None] + np.array([[-side / 2, -side / 2], [side / 2, side / 2]])
    pts = np.concatenate([box, *(p[np.isfinite(p).all(axis=1)] for p in points)])
    low, high = pts.min(axis=0), pts.max(axis=0)
    return (low + high) / 2.0, float(max(high - low) * 1.05)


def examples_figure(title: str, chosen: Sequence[Example], pred: np.ndarray, gt: Annotations, images_dir: Path,
                    family: DatasetFamily) -> tuple[Figure, int]:
    """A grid of validation people with true and predicted skeletons; returns it and the count of missing images."""
    cols = min(3, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    fig = Figure(figsize=(3.6 * cols, 3.9 * rows + 0.8), layout="constrained")
    skeleton = family.joints
    metric = family.metric
    missing = 0
    for i, ex in enumerate(chosen):
        ax = fig.add_subplot(rows, cols, i + 1)
        image = _read_rgb(images_dir / gt.imgname[ex.row])
        missing += image is None
        show_crop(ax, image, *_view(gt.center[ex.row], 200.0 * gt.scale[ex.row], gt.joints[ex.row], pred[ex.row]))
        draw_skeleton(ax, gt.joints[ex.row], skeleton, **TRUE_STYLE)
        draw_skeleton(ax, pred[ex.row], skeleton, **PRED_STYLE)
        note = "" if image is not None else " (image missing)"
        ax.set_title(f"{gt.imgname[ex.row]} row {ex.row}{note}\n{metric} {ex.accuracy:.0f}% of "
                     f"{int(gt.annotated[ex.row].sum())} joints", fontsize=8)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    sides = ("filled markers: person-left joints, hollow: person-right" if family.name == "mpii" else
             "filled markers: joints labelled left, hollow: right (FLIC labels are observer-centric)")
    fig.legend(handles, labels, loc="outside lower center", ncol=2, title=sides)
    fig.suptitle(title)
    return fig, missing


# -- provenance ---------------------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_state(cwd: Path | None = None) -> str:
    """``<commit>`` (plus "with uncommitted changes" when the tree is dirty), or a sentence saying why not."""
    def run(*args: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None

    head = run("rev-parse", "HEAD")
    if head is None or head.returncode != 0 or not head.stdout.strip():
        return "unknown (not a git checkout, or git is unavailable)"
    status = run("status", "--porcelain", "--untracked-files=no")
    dirty = status is not None and status.returncode == 0 and bool(status.stdout.strip())
    return f"`{head.stdout.strip()}`" + (" with uncommitted changes" if dirty else "")


def data_version(dataset: str, dvc_lock: Path, annot_dir: Path) -> str:
    """The md5 DVC recorded for ``data/processed/<dataset>``, else sha256 digests of the annotation files."""
    target = f"data/processed/{dataset}"
    if dvc_lock.is_file():
        try:
            lock = yaml.safe_load(dvc_lock.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            lock = None
        lock = lock if isinstance(lock, dict) else {}
        for stage, spec in (lock.get("stages") or {}).items():
            for out in (spec or {}).get("outs") or []:
                if isinstance(out, Mapping) and str(out.get("path", "")).rstrip("/") == target and out.get("md5"):
                    return f"`{target}` md5 `{out['md5']}` (dvc.lock, stage `{stage}`)"
    digests = [f"`{p.name}` sha256 `{sha256_file(p)[:16]}`" for p in sorted(annot_dir.glob("*.h5"))]
    if digests:
        return f"no `{target}` entry in dvc.lock; annotation files in `{annot_dir}`: " + ", ".join(digests)
    return f"unknown (no dvc.lock entry for `{target}` and no annotation files in `{annot_dir}`)"


# -- the whole report ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportPaths:
    """Where the report reads from and writes to."""

    params: Path
    models: Path
    out: Path
    raw: Path  # data/raw/<dataset>: annot/{train,valid}.h5 and images/
    dvc_lock: Path
    anchor: Path | None


class _Builder:
    """Collects the report's sections, numbers and missing-input lines while it reads the inputs."""

    def __init__(self, params: ParamsConfig, paths: ReportPaths, cfg: ReportConfig) -> None:
        self.params, self.paths, self.cfg = params, paths, cfg
        self.family = family_of(params)
        self.metric = self.family.metric
        self.missing: list[str] = []
        self.summary: dict[str, Any] = {"dataset": params.dataset, "metric": self.metric, "variants": {}}
        self.figures = paths.out / "figures"

    # sections -----------------------------------------------------------------------------------------------
    def baseline(self) -> PCKResult | None:
        annot = self.paths.raw / "annot"
        try:
            return score_mean_pose(annot / "train.h5", annot / "valid.h5")
        except (AnnotationError, ReaderError, ValueError) as err:
            self.missing.append(f"mean-pose baseline not computed: {err}")
            return None

    def authors(self) -> PCKResult | None:
        if self.family.name != "mpii":
            return None
        if self.paths.anchor is None:
            self.missing.append("authors' released predictions not scored: shared/anchor-data not found "
                                "(set HOURGLASS_ANCHOR_DATA)")
            return None
        try:
            return evaluate_files(self.paths.anchor / AUTHORS_PREDICTIONS, self.paths.anchor / AUTHORS_GROUND_TRUTH)
        except (ReaderError, ValueError) as err:
            self.missing.append(f"authors' released predictions not scored: {err}")
            return None

    def results(self, runs: Sequence[VariantRun], baseline: PCKResult | None, authors: PCKResult | None) -> str:
        rows = paper_rows(self.family)
        if authors is not None:
            rows.append(ScoreRow("authors' released model (measured)", f"`{AUTHORS_PREDICTIONS}` scored here "
                                 "against pose-hg-train's valid.h5", _result_values(authors)))
        for run in runs:
            scores = final_scores(run, self.family)
            if scores is None:
                if run.path.is_dir():
                    self.missing.append(f"variant `{run.name}`: no scores (neither eval/metrics.json nor metrics.json)")
                continue
            values, source = scores
            rows.append(ScoreRow(f"**{run.name}**", source, values))
            entry = self.summary["variants"].setdefault(run.name, {})
            entry["final"] = {k: _finite(v) for k, v in values.items()}
            entry["source"] = source
        if baseline is not None:
            rows.append(ScoreRow("mean-pose baseline", "average training pose placed in each crop",
                                 _result_values(baseline)))
        note = ""
        if self.params.dataset == "synthetic":
            whose = "the paper's and the authors' rows are" if authors is not None else "the paper's rows are"
            note = ("\n\nThe variants were trained and scored on the **synthetic** people (scored as "
                    f"{self.family.name.upper()}); {whose} real {self.family.name.upper()} numbers, shown for scale, not as "
                    "a like-for-like comparison.")
        return (f"## Results\n\nValidation {self.metric} per joint group, in % of annotated joints "
                f"({self.family.mean_note}). "
                f"'–' marks a number the source does not give.{note}\n\n{scores_table(rows, self.family)}\n\n"
                f"{paper_footnote(self.family)}\n")

    def per_joint(self, runs: Sequence[VariantRun], baseline: PCKResult | None, authors: PCKResult | None) -> str:
        columns: list[tuple[str, Mapping[str, float]]] = []
        for run in runs:
            per_joint = (run.eval or {}).get("per_joint")
            if isinstance(per_joint, Mapping):
                columns.append((run.name, per_joint))
        for name, result in (("authors' model", authors), ("mean pose", baseline)):
            if result is not None:
                columns.append((name, dict(zip(result.joint_names, result.per_joint.tolist()))))
        if not columns:
            return "### Per joint\n\nNo per-joint scores: no variant has `eval/metrics.json`.\n"
        names = self.family.joints.names
        header = ["Joint", *(f"{c} {self.metric} (%)" for c, _ in columns)]
        body = [[j, *(_cell(values.get(j)) for _, values in columns)] for j in names]
        return f"### Per joint\n\nValidation {self.metric} of every joint, in %.\n\n{markdown_table(header, body)}\n"

    def margins(self, runs: Sequence[VariantRun], baseline: PCKResult | None) -> str:
        text = ("## Mean-pose baseline\n\nThe average training pose (joint offsets from the person centre in units "
                "of the person box) placed into every validation crop and scored with the same metric: what a "
                "model gets from the person box alone. A variant that learned from the images is far above it.\n\n")
        if baseline is None:
            return text + "Not available (see Missing inputs).\n"
        self.summary["mean_pose_baseline"] = {k: _finite(v) for k, v in _result_values(baseline).items()}
        body = []
        for run in runs:
            values = (self.summary["variants"].get(run.name) or {}).get("final") or {}
            mean = values.get("Mean")
            margin = None if mean is None else mean - baseline.mean
            body.append([run.name, _cell(mean), _cell(baseline.mean), _cell(margin)])
            if margin is not None:
                self.summary["variants"][run.name]["margin_over_mean_pose"] = margin
        header = ["Variant", f"Mean {self.metric} (%)", f"mean pose Mean {self.metric} (%)",
                  "margin (percentage points)"]
        return text + markdown_table(header, body) + "\n"

    def costs(self, runs: Sequence[VariantRun]) -> str:
        body = []
        joints = self.family.joints.count
        for run in runs:
            params, how = parameter_count(run, joints)
            hours = training_hours(run)
            rate = mean_train_throughput(run)
            ev = run.eval or {}
            tm = run.train_metrics or {}
            stacks = ((run.config or {}).get("model") or {}).get("stacks")
            best_key = f"best/{self.family.prefix}/Mean"
            body.append([run.name, str(stacks) if stacks is not None else "–",
                         _cell(None if params is None else params / 1e6, 2) + (" (from config)" if how == "config"
                                                                                 else ""),
                         _cell(len(run.epochs) if run.epochs else None, 0), _cell(tm.get("steps"), 0),
                         _duration(hours), _cell(rate), _cell(ev.get("images_per_s")), _cell(ev.get("seconds")),
                         _cell(tm.get(best_key)),
                         _cell(tm.get("best/epoch"), 0), f"`{run.mlflow_run}`" if run.mlflow_run else "–"])
            entry = self.summary["variants"].setdefault(run.name, {})
            entry.update({"parameters": params, "train_hours": hours, "train_img_per_s": rate,
                          "eval_img_per_s": _finite(ev.get("images_per_s"))})
        header = ["Variant", "Stacks", "Parameters (M)", "Epochs", "Optimiser steps", "Training time (h)",
                  "Training throughput (img/s)", "Evaluation throughput (img/s)", "Evaluation time (s)",
                  f"Best validation Mean {self.metric} (%)", "Best at epoch", "MLflow run"]
        return ("## Model size, training time and throughput\n\nParameters are trainable weights. Training time "
                "is optimiser time summed over epochs (steps x batch / measured images per second), validation "
                "excluded; throughputs are means over epochs (training) and the whole evaluation (evaluation).\n\n"
                + markdown_table(header, body) + "\n")

    def ablation(self, runs: Sequence[VariantRun]) -> str:
        fig, problem = figure4(runs, self.family)
        save_figure(fig, self.figures / "figure4.png")
        if problem:
            self.missing.append(f"Figure 4 is empty: {problem}")
        series, table = [], []
        for run in runs:
            inter = intermediate_scores(run)
            final = final_scores(run, self.family)
            if inter is None or final is None:
                continue
            stack, values = inter
            series.append((run.name, values, final[0]))
            table.append(ScoreRow(f"{run.name}: stack {stack} (first hourglass)", "evaluate stage", values))
            table.append(ScoreRow(f"{run.name}: final", "evaluate stage", final[0]))
            self.summary["variants"].setdefault(run.name, {})["intermediate"] = {
                k: _finite(v) for k, v in values.items()}
        if self.family.name == "mpii":
            series.append(("paper 8-stack", PAPER_MPII_INTERMEDIATE, PAPER_MPII_FINAL))
            table += paper_rows(self.family)[:2]
        fig5, problem = figure5(series, self.family)
        save_figure(fig5, self.figures / "figure5.png")
        if problem:
            self.missing.append(f"Figure 5 has no variant of ours: {problem}")
        return ("## Ablation\n\n![Figure 4: validation accuracy against training progress](figures/figure4.png)\n\n"
                "Figure 4: validation accuracy of every variant at the end of each epoch "
                f"({self.family.figure4_label}; "
                "single pass, no flip test).\n\n"
                "![Figure 5: first-hourglass against final predictions](figures/figure5.png)\n\n"
                f"Figure 5: validation {self.metric} of the first hourglass's predictions against the final ones "
                "(light bars: first hourglass, dark: final).\n\n" + scores_table(table, self.family) + "\n\n"
                + paper_footnote(self.family) + "\n")

    def examples(self, runs: Sequence[VariantRun]) -> str:
        text = "## Examples\n\n"
        candidates = [r for r in runs if r.preds_path.is_file() and final_scores(r, self.family)]
        if self.cfg.example_variant is not None:
            candidates = [r for r in candidates if r.name == self.cfg.example_variant]
        chosen_run = max(candidates, key=lambda r: final_scores(r, self.family)[0].get("Mean", -1.0), default=None)
        problem = None
        pred = gt = None
        if chosen_run is None:
            wanted = f"variant `{self.cfg.example_variant}`" if self.cfg.example_variant else "any variant"
            problem = f"no predictions for {wanted} (`models/<variant>/eval/preds.h5`)"
        else:
            try:
                pred = read_predictions(chosen_run.preds_path)
                gt = read_annotations(self.paths.raw / "annot" / "valid.h5")
                if pred.shape != gt.joints.shape:
                    problem = (f"`{chosen_run.preds_path}` has shape {pred.shape}, the validation annotations "
                               f"{gt.joints.shape}")
            except (ReaderError, AnnotationError) as err:
                problem = str(err)
        threshold = self.family.threshold
        best = worst = []
        if problem is None:
            best, worst = rank_people(pred, gt, threshold)
            if not best:
                problem = "no validation person has 4 or more annotated joints"
        for kind, people in (("best", best), ("worst", worst)):
            path = self.figures / f"examples_{kind}.png"
            if problem is not None:
                save_figure(_message_figure(f"Examples: {kind} cases", "Not drawn: " + problem.replace("`", "")), path)
                continue
            fig, absent = examples_figure(
                f"{chosen_run.name}: the {min(self.cfg.examples, len(people))} {kind} validation people "
                f"by {self.metric}",
                people[:self.cfg.examples], pred, gt, self.paths.raw / "images", self.family)
            save_figure(fig, path)
            if absent:
                self.missing.append(f"{absent} example image(s) of the {kind} cases not found under "
                                    f"`{self.paths.raw / 'images'}` (skeletons drawn on grey)")
        if problem is not None:
            self.missing.append(f"example figures not drawn: {problem}")
            return text + f"Not drawn: {problem}.\n"
        return (text + f"Validation people of variant `{chosen_run.name}` ranked by the share of joints within "
                f"{threshold:g} {self.family.unit} of the truth (ties: lower mean error first). "
                "Green solid: ground truth; red dashed: prediction.\n\n"
                "![best cases](figures/examples_best.png)\n\n![worst cases](figures/examples_worst.png)\n")

    def provenance(self, runs: Sequence[VariantRun]) -> str:
        params_text = self.paths.params.read_text(encoding="utf-8")
        digest = hashlib.sha256(params_text.encode()).hexdigest()
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        commit = git_state(self.paths.params.resolve().parent)
        data = data_version(self.params.dataset, self.paths.dvc_lock, self.paths.raw / "annot")
        self.summary["params_sha256"] = digest  # no date: `dvc metrics diff` should show only real changes
        rows = [["params", f"`{self.paths.params}` sha256 `{digest}`"], ["git commit", commit],
                ["data version", data], ["generated", now]]
        for run in runs:
            config = run.path / "config.yaml"
            if config.is_file():
                rows.append([f"`{run.name}` resolved params", f"`{config}` sha256 `{sha256_file(config)[:16]}`"])
        return ("## Provenance\n\n" + markdown_table(["What", "Value"], rows, "ll")
                + f"\n\n<details><summary>params.yaml used for this report</summary>\n\n```yaml\n"
                f"{params_text.rstrip()}\n```\n\n</details>\n")

    def summary_section(self, runs: Sequence[VariantRun], baseline: PCKResult | None) -> str:
        lines = [f"- Dataset: **{self.params.dataset}**, metric: validation **{self.metric}**.",
                 f"- Variants: {', '.join(f'`{r.name}`' for r in runs) or 'none'}."]
        scored = {n: v["final"]["Mean"] for n, v in self.summary["variants"].items()
                  if (v.get("final") or {}).get("Mean") is not None}
        if scored:
            best = max(scored, key=scored.get)
            line = f"- Best variant: `{best}` with Mean {self.metric} {scored[best]:.1f} %"
            if baseline is not None:
                line += (f", {scored[best] - baseline.mean:+.1f} points over the mean-pose baseline "
                         f"({baseline.mean:.1f} %)")
            lines.append(line + ".")
            self.summary["best_variant"] = best
        else:
            lines.append("- No variant has scores yet.")
        if self.family.name == "mpii":
            lines.append("- The paper's 8-stack network: elbow 88.5 %, wrist 83.3 % (final, MPII validation); "
                         "headline elbow 90 %, wrist 85.2 %.")
        else:
            lines.append("- The paper's 8-stack network on FLIC: wrist 95.2 % PCK@0.2, shoulders and elbows almost "
                         "perfect.")
        missing = "\n".join(f"- {m}" for m in self.missing) or "- none"
        return "## Summary\n\n" + "\n".join(lines) + f"\n\n### Missing inputs\n\n{missing}\n"


def build_report(params: ParamsConfig, paths: ReportPaths) -> dict[str, Any]:
    """Write ``results.md``, ``summary.json`` and the four figures under ``paths.out``.

    Returns the summary written to ``summary.json`` plus ``missing``: the lines of the "Missing inputs" section.
    """
    cfg = params.report
    # The sweep's variants (what dvc.yaml trains, trained or not), then any other trained directory.
    runs = discover_variants(paths.models, list(params.sweep))
    builder = _Builder(params, paths, cfg)
    for run in runs:
        builder.missing.extend(run.missing)
    baseline = builder.baseline()
    authors = builder.authors()
    if authors is not None:
        builder.summary["authors_released"] = {k: _finite(v) for k, v in _result_values(authors).items()}
    body = [builder.results(runs, baseline, authors), builder.per_joint(runs, baseline, authors),
            builder.margins(runs, baseline), builder.costs(runs), builder.ablation(runs), builder.examples(runs),
            builder.provenance(runs)]
    head = f"# Stacked hourglass reproduction: results ({params.dataset})\n\n"
    text = head + builder.summary_section(runs, baseline) + "\n" + "\n".join(body)
    builder.summary["missing_inputs"] = len(builder.missing)  # a count: DVC metrics drop lists
    write_atomic(paths.out / "summary.json", json.dumps(builder.summary, indent=2, sort_keys=True) + "\n")
    write_atomic(paths.out / "results.md", text)
    return {**builder.summary, "missing": list(builder.missing)}
