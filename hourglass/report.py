"""The results report: markdown tables beside the paper's numbers, matplotlib figures, provenance.

Reads what training and evaluation leave under ``models/<variant>/seed-<n>/`` and writes ``reports/results.md``,
``reports/summary.json`` and ``reports/figures/{figure4,figure5,examples_best,examples_worst}.png``. Every input
except the params is optional: a missing or unreadable file becomes a line under "Missing inputs" and an "n/a" cell,
and every declared output is still written, so a half-finished pipeline still gets a report that says what is absent.

A variant trained from several seeds (params ``seeds``) is reported by the mean over its seeds (see "several seeds"
below), with the spread across them as mean ± sd; with one seed the numbers are that seed's.
Every variant's Mean and Figure-4 accuracy come with a 95 % bootstrap interval over the validation people, and its
difference from the reference variant (HG-Stacked-Int, else the sweep's first) with a paired one, all
recomputed from each seed's ``eval/preds.h5`` against the validation annotation file (see "uncertainty" below);
the summary crowns a best variant only when its interval against the runner-up excludes 0.

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
from hourglass.config import PORT_PROJECT, ParamsConfig, ReportConfig
from hourglass.draw import PRED_STYLE, TRUE_STYLE, draw_skeleton, save_figure, show_crop
from hourglass.evaluate import evaluate_files
from hourglass.family import FAMILIES, DatasetFamily, family_of
from hourglass.layout import model_dir, seed_dirs
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
# The paper's Figure 4 has HG-Stacked-Int best: the variant every other one is compared with (paired intervals),
# when the sweep has it; otherwise the sweep's first variant.
REFERENCE_VARIANT = "hg_stacked_int"
# The paper's Figure-4 variants by their params.yaml names: the report checks its ordering of them.
PAPER_FIGURE4_VARIANTS = ("hg", "hg_int", "hg_stacked", "hg_stacked_int", "hg_stacked_add")

@dataclass(frozen=True)
class ScoreRow:
    """One row of the results table: group percentages (missing groups are blank), where it comes from."""

    name: str
    source: str
    values: Mapping[str, float]
    notes: Mapping[str, str] = field(default_factory=dict)  # text cells of extra columns (scores_table's extra)


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
class SeedRun:
    """What one ``models/<variant>/seed-<n>/`` holds (``seed`` None: a directory without the seed level, e.g. an
    imported model evaluated by hand); None for each file that is absent or unreadable (see ``missing``)."""

    name: str
    seed: int | None
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

    @property
    def label(self) -> str:
        """``hg`` or ``hg seed 1``: how the report names this run."""
        return self.name if self.seed is None else f"{self.name} seed {self.seed}"


@dataclass
class VariantRun:
    """One variant of the report: its training seeds' runs (``seeds``, each a :class:`SeedRun`) and what the report
    reads from them, averaged over the seeds that have it (see :func:`aggregate`). With one seed every field is that
    seed's own."""

    name: str
    path: Path
    seeds: list[SeedRun] = field(default_factory=list)
    train_metrics: dict[str, Any] | None = None
    epochs: list[dict[str, float]] | None = None
    config: dict[str, Any] | None = None
    mlflow_run: str | None = None
    eval: dict[str, Any] | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def evaluated(self) -> list[SeedRun]:
        """The seeds whose evaluation was read: the ones the variant's scores average."""
        return [s for s in self.seeds if s.eval is not None]


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


def load_seed_run(name: str, seed: int | None, path: Path, imported: bool = False) -> SeedRun:
    """Read every file of ``path`` that exists; each absent or malformed one is named in ``missing``. An
    ``imported`` model (params ``imports``) has no training files, so only their presence is read."""
    run = SeedRun(name, seed, path)
    if not path.is_dir():
        which = f"variant `{name}`" + ("" if seed is None else f" seed {seed}")
        run.missing.append(f"`{path}`: {which} has not been " + ("imported (no directory; stage import@"
                                                                  f"{name})" if imported else "trained (no directory)"))
        return run
    ignored: list[str] = []  # an imported model's absent training files are not missing inputs
    run.train_metrics = _read_json(path / "metrics.json", ignored if imported else run.missing, "training metrics")
    epochs = path / "epochs.csv"
    if imported:
        pass
    elif epochs.is_file():
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


# -- several seeds as one variant ---------------------------------------------------------------------------------
# A variant's numbers are the means over its evaluated seeds: each group score, per-joint and per-stack score, and
# the per-epoch validation curve (at the steps every seed has). Its spread across seeds (:func:`across_seeds`) is
# the sample standard deviation (n - 1), undefined for one seed. Its bootstrap interval is of that seed-averaged
# score: the people are resampled once and every seed is scored on the same resample (:class:`PeopleBootstrap`).
def _mean_of(values: Sequence[Any]) -> float | None:
    finite = [v for v in (_finite(x) for x in values) if v is not None]
    return float(np.mean(finite)) if finite else None


def _mean_mapping(maps: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Key by key, the mean of the finite values (keys in the first mapping's order, then any others)."""
    keys = list(dict.fromkeys(k for m in maps for k in m))
    return {k: _mean_of([m.get(k) for m in maps]) for k in keys}


def _mean_eval(evals: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One evaluation record averaged over seeds: group, per-joint and per-stack scores and speed are means; the
    rest (flip test, parameters, epoch) is the first seed's, the same for every seed of a variant."""
    if len(evals) == 1:
        return dict(evals[0])
    out = dict(evals[0])
    for key in ("final", "per_joint"):
        maps = [e[key] for e in evals if isinstance(e.get(key), Mapping)]
        out[key] = _mean_mapping(maps) if maps else None
    by_stack: dict[Any, list[Mapping[str, Any]]] = {}
    for e in evals:
        for stack in e.get("stacks") or []:
            if isinstance(stack, Mapping) and isinstance(stack.get("metrics"), Mapping):
                by_stack.setdefault(stack.get("stack"), []).append(stack)
    out["stacks"] = [{"stack": number, "metrics": _mean_mapping([s["metrics"] for s in stacks]),
                      "per_joint": _mean_mapping([s["per_joint"] for s in stacks
                                                  if isinstance(s.get("per_joint"), Mapping)])}
                     for number, stacks in by_stack.items() if len(stacks) == len(evals)]
    for key in ("seconds", "images_per_s"):
        out[key] = _mean_of([e.get(key) for e in evals])
    out["seeds"] = [e.get("seed") for e in evals]
    return out


def _mean_epochs(curves: Sequence[list[dict[str, float]]]) -> list[dict[str, float]] | None:
    """The mean curve: at every step all the seeds' curves have (in step order), each column's mean over them."""
    if len(curves) == 1:
        return curves[0]
    by_step = [{row.get("step", math.nan): row for row in curve if math.isfinite(row.get("step", math.nan))}
               for curve in curves]
    steps = sorted(set.intersection(*(set(rows) for rows in by_step)))
    out = []
    for step in steps:
        rows = [rows[step] for rows in by_step]
        row = {}
        for key in dict.fromkeys(k for r in rows for k in r):
            mean = _mean_of([r.get(key, math.nan) for r in rows])
            row[key] = math.nan if mean is None else mean
        out.append(row)
    return out or None


def aggregate(name: str, path: Path, seeds: list[SeedRun]) -> VariantRun:
    """The variant as the report shows it: ``seeds``' files averaged over the seeds that have them."""
    run = VariantRun(name, path, seeds)
    for seed in seeds:
        run.missing.extend(seed.missing)
    evals = [s.eval for s in seeds if s.eval is not None]
    run.eval = _mean_eval(evals) if evals else None
    curves = [s.epochs for s in seeds if s.epochs]
    run.epochs = _mean_epochs(curves) if curves else None
    trained = [s.train_metrics for s in seeds if s.train_metrics is not None]
    run.train_metrics = (trained[0] if len(trained) == 1 else _mean_mapping(trained)) if trained else None
    run.config = next((s.config for s in seeds if s.config is not None), None)
    runs = [s.mlflow_run for s in seeds if s.mlflow_run]
    run.mlflow_run = ", ".join(runs) if runs else None
    return run


def across_seeds(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """``{"mean", "sd", "n"}`` of the finite ``values`` (one per seed); ``sd`` is the sample standard deviation
    (n - 1), None with fewer than two seeds."""
    finite = [v for v in (_finite(x) for x in values) if v is not None]
    if not finite:
        return {"mean": None, "sd": None, "n": 0}
    sd = float(np.std(finite, ddof=1)) if len(finite) > 1 else None
    return {"mean": float(np.mean(finite)), "sd": sd, "n": len(finite)}


def _has_metrics(path: Path) -> bool:
    return (path / "metrics.json").is_file() or (path / "eval" / "metrics.json").is_file()


def discover_variants(models_dir: Path, names: Sequence[str], seeds: Sequence[int],
                      imports: Sequence[str] = ()) -> list[VariantRun]:
    """The variants named in params (in that order, trained or not), each with the params' ``seeds`` (trained or
    not), then the released weights of params ``imports`` (``models/<name>/``, no seed level), then any other
    variant directory with metrics: its ``seed-<n>`` directories with metrics, or, without any, the directory itself
    (a model trained or imported by hand without the seed level). A sweep variant's seed directory whose seed is not
    in ``seeds`` is left out of its mean, and the report says so."""
    out = []
    for name in names:
        variant_dir = models_dir / name
        runs = [load_seed_run(name, seed, model_dir(name, seed, models_dir)) for seed in seeds]
        run = aggregate(name, variant_dir, runs)
        extra = [seed for seed, path in seed_dirs(variant_dir).items() if seed not in seeds and _has_metrics(path)]
        if extra:
            run.missing.append(f"variant `{name}`: seed(s) {', '.join(map(str, extra))} under `{variant_dir}` left "
                               f"out: not in params `seeds` {list(seeds)}")
        out.append(run)
    for name in imports:
        out.append(aggregate(name, models_dir / name, [load_seed_run(name, None, models_dir / name, imported=True)]))
    listed = {*names, *imports}
    others = sorted(p.name for p in models_dir.iterdir() if p.is_dir() and p.name not in listed) \
        if models_dir.is_dir() else []
    for name in others:
        variant_dir = models_dir / name
        found = {seed: path for seed, path in seed_dirs(variant_dir).items() if _has_metrics(path)}
        if found:
            out.append(aggregate(name, variant_dir, [load_seed_run(name, seed, path) for seed, path in found.items()]))
        elif _has_metrics(variant_dir):
            out.append(aggregate(name, variant_dir, [load_seed_run(name, None, variant_dir)]))
    return out


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


# -- uncertainty: a bootstrap over validation people --------------------------------------------------------------
# A variant's Mean and Figure-4 accuracy are statistics of the validation people it was scored on; another draw of
# people would give other numbers. :class:`PeopleBootstrap` resamples the people with replacement (a fixed seed, so
# the report is reproducible) and recomputes both statistics for every resample, giving a percentile interval.
#
# The resampled people are drawn once and shared by every variant, so the difference between two variants is
# computed on the same people in each resample: a *paired* interval, much narrower than the two single intervals
# suggest when the variants succeed and fail on the same people.
#
# A variant trained from several seeds is scored by its seed-averaged statistic: on every resample each seed's
# statistic is computed on the same resampled people and the seeds' values are averaged (and on all people, the
# estimate is the mean of the seeds' scores). Its interval is that average's, paired differences likewise; the
# intervals still cover the choice of people only, the spread across seeds is reported beside them.
#
# Each resample is cheap: a person contributes, per joint, one "correct" count (0 or 1) and one "annotated" count
# (0 or 1). Resample ``b`` takes person ``i`` ``w[b, i]`` times, so its per-joint totals are ``w @ counts``; the
# statistics follow from those totals exactly as :mod:`hourglass.metrics` computes them from the full set:
#
# * ``Mean``: correct over annotated, pooled over the family's mean joints (joint-count weighted; MPII leaves out
#   pelvis and thorax);
# * ``figure4``: the unweighted mean of the per-joint accuracies over the family's Figure-4 joints.
#
# The contract, relied on by tests that recompute an interval independently: the scored people are the rows with at
# least one annotated joint, in file order; resample ``b`` is row ``b`` of
# ``numpy.random.default_rng(seed).integers(0, people, size=(resamples, people))`` (indices into the scored people);
# an interval is ``numpy.percentile`` of the resampled statistic at ``(100 - confidence) / 2`` and
# ``(100 + confidence) / 2`` (linear interpolation, resamples with an undefined statistic left out).
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
BOOTSTRAP_CONFIDENCE = 95.0
BOOTSTRAP_STATISTICS = ("Mean", "figure4")  # the names the report's tables and summary.json use


@dataclass(frozen=True)
class Interval:
    """A point estimate (on all people) and its bootstrap interval, in the statistic's unit (%, or points)."""

    estimate: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0 (for a difference: the two are distinguishable)."""
        return bool(self.low > 0 or self.high < 0)

    def as_dict(self) -> dict[str, float | None]:
        return {k: (v if math.isfinite(v) else None) for k, v in
                (("estimate", self.estimate), ("low", self.low), ("high", self.high))}


def mean_joints(family: DatasetFamily) -> tuple[int, ...]:
    """The joints the family's Mean pools, as its scorer reports them (asked once of a one-person score)."""
    count = family.joints.count
    probe = family.score(np.zeros((1, count, 2)), np.zeros((1, count, 2)), np.ones((1, count), bool), np.ones(1))
    return tuple(int(j) for j in probe.mean_joints)


def correct_joints(pred: np.ndarray, gt: np.ndarray, annotated: np.ndarray, normalize: np.ndarray,
                   threshold: float) -> np.ndarray:
    """(N, J) bool: annotated and within ``threshold`` (a NaN prediction, a missed person, is wrong)."""
    return within(normalized_errors(pred, gt, annotated, normalize), threshold)


def resample_weights(people: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, people) float64: how often each person is drawn in each resample (rows sum to ``people``)."""
    if people < 1 or resamples < 1:
        raise ValueError(f"need at least one person and one resample, got {people} and {resamples}")
    draws = np.random.default_rng(seed).integers(0, people, size=(resamples, people))
    offsets = (np.arange(resamples) * people)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=resamples * people)
    return counts.reshape(resamples, people).astype(np.float64)


class PeopleBootstrap:
    """Resampled statistics of several variants scored on the same validation people (see the module notes).

    ``annotated`` is the ground truth's (N, J) mask; each variant's :meth:`add` gives its (N, J) ``correct`` mask.
    """

    def __init__(self, family: DatasetFamily, annotated: np.ndarray, *, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED, confidence: float = BOOTSTRAP_CONFIDENCE) -> None:
        annotated = np.asarray(annotated, dtype=bool)
        if annotated.ndim != 2 or annotated.shape[1] != family.joints.count:
            raise ValueError(f"annotated mask must be (N, {family.joints.count}), got {annotated.shape}")
        if not 0.0 < confidence < 100.0:
            raise ValueError(f"confidence must be a percentage in (0, 100), got {confidence!r}")
        self.family, self.resamples, self.seed, self.confidence = family, resamples, seed, confidence
        self.shape = annotated.shape
        self.rows = np.flatnonzero(annotated.any(axis=1))  # the scored people
        if not self.rows.size:
            raise ValueError("no validation person has an annotated joint")
        self.mean_joints = list(mean_joints(family))
        self.figure4_joints = [family.joints.index(j) for j in family.figure4_joints]
        self._annotated = annotated[self.rows].astype(np.float64)
        self._weights = resample_weights(len(self.rows), resamples, seed)
        self._annotated_draws = self._weights @ self._annotated  # (B, J)
        self._annotated_all = self._annotated.sum(axis=0)  # (J,)
        self.estimates: dict[str, dict[str, float]] = {}
        self.draws: dict[str, dict[str, np.ndarray]] = {}
        self.seed_estimates: dict[str, list[dict[str, float]]] = {}  # each seed's own, in the order given

    @property
    def people(self) -> int:
        return len(self.rows)

    def _statistics(self, correct: np.ndarray, annotated: np.ndarray) -> dict[str, np.ndarray]:
        """Both statistics from per-joint totals (..., J); NaN where nothing was annotated."""
        with np.errstate(invalid="ignore", divide="ignore"):
            pooled = annotated[..., self.mean_joints].sum(axis=-1)
            mean = np.where(pooled > 0, 100.0 * correct[..., self.mean_joints].sum(axis=-1) / pooled, np.nan)
            sub = annotated[..., self.figure4_joints]
            per_joint = np.where(sub > 0, 100.0 * correct[..., self.figure4_joints] / np.where(sub > 0, sub, 1.0),
                                 np.nan)
            scored = (sub > 0).sum(axis=-1)
            figure4 = np.where(scored > 0, np.nansum(per_joint, axis=-1) / np.maximum(scored, 1), np.nan)
        return {"Mean": mean, "figure4": figure4}

    def add(self, name: str, correct: np.ndarray | Sequence[np.ndarray]) -> dict[str, float]:
        """Score variant ``name`` from its (N, J) ``correct`` mask, or from one mask per training seed (a list:
        the seed-averaged statistics, see the module notes); returns its point estimates."""
        masks = [correct] if isinstance(correct, np.ndarray) else list(correct)
        if not masks:
            raise ValueError(f"{name}: no correct mask given")
        estimates, draws = [], []
        for mask in masks:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != self.shape:
                raise ValueError(f"{name}: correct mask is {mask.shape}, the ground truth's people {self.shape}")
            sub = (mask[self.rows] & (self._annotated > 0)).astype(np.float64)
            estimates.append({k: float(v) for k, v in self._statistics(sub.sum(axis=0),
                                                                       self._annotated_all).items()})
            draws.append(self._statistics(self._weights @ sub, self._annotated_draws))
        self.seed_estimates[name] = estimates
        self.estimates[name] = {k: float(np.mean([e[k] for e in estimates])) for k in estimates[0]}
        self.draws[name] = {k: np.mean([d[k] for d in draws], axis=0) for k in draws[0]}
        return self.estimates[name]

    def _interval(self, estimate: float, draws: np.ndarray) -> Interval:
        finite = draws[np.isfinite(draws)]
        if not finite.size or not math.isfinite(estimate):
            return Interval(estimate, math.nan, math.nan)
        tail = (100.0 - self.confidence) / 2.0
        low, high = np.percentile(finite, [tail, 100.0 - tail])
        return Interval(estimate, float(low), float(high))

    def interval(self, name: str, statistic: str) -> Interval:
        """The variant's ``statistic`` ('Mean' or 'figure4') on all people and its bootstrap interval."""
        return self._interval(self.estimates[name][statistic], self.draws[name][statistic])

    def difference(self, name: str, reference: str, statistic: str) -> Interval:
        """``name`` minus ``reference``, paired: both scored on the same resampled people."""
        return self._interval(self.estimates[name][statistic] - self.estimates[reference][statistic],
                              self.draws[name][statistic] - self.draws[reference][statistic])

    def intervals(self, name: str) -> Mapping[str, Interval]:
        return {s: self.interval(name, s) for s in BOOTSTRAP_STATISTICS}


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


def scores_table(rows: Sequence[ScoreRow], family: DatasetFamily,
                 extra: Sequence[tuple[str, str]] = ()) -> str:
    """Groups, Mean and (MPII) Mean@0.1, in %, one row per model, then ``extra`` columns (header, key of the rows'
    ``notes``; '–' where a row has none), then a source column."""
    metric = family.metric
    columns = [*family.groups, "Mean"] + (["Mean@0.1"] if family.name == "mpii" else [])
    header = ["Model", *(f"{c} {metric} (%)" if c != "Mean@0.1" else "Mean PCKh@0.1 (%)" for c in columns),
              *(h for h, _ in extra), "Source"]
    body = [[r.name, *(_cell(r.values.get(c)) for c in columns), *(r.notes.get(k, "–") for _, k in extra), r.source]
            for r in rows]
    return markdown_table(header, body, "l" + "r" * (len(columns) + len(extra)) + "l")


def _bounds(interval: Interval | None, signed: bool = False) -> str:
    """'[58.3, 64.0]' for a score, '[-1.23, +0.08]' for a difference (``signed``: two decimals, so that an interval
    that just excludes 0 does not print as ending at 0.0); '–' without an interval."""
    if interval is None or not (math.isfinite(interval.low) and math.isfinite(interval.high)):
        return "–"
    form = "+.2f" if signed else ".1f"
    return f"[{interval.low:{form}}, {interval.high:{form}}]"


def _with_bounds(interval: Interval | None, signed: bool = False) -> str:
    """'61.2 [58.3, 64.0]' (a difference: '+1.25 [+0.31, +2.20]'): the estimate and its interval."""
    if interval is None or not math.isfinite(interval.estimate):
        return "–"
    form = "+.2f" if signed else ".1f"
    return f"{interval.estimate:{form}} {_bounds(interval, signed)}".rstrip(" –")


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


def _evaluated_step(run: VariantRun, x: Sequence[float]) -> float:
    """Where on ``run``'s curve the evaluated checkpoint lies: the row of its epoch, else the last point."""
    epoch = _finite((run.eval or {}).get("epoch"))
    for row, value in zip(run.epochs or [], x):
        if epoch is not None and row.get("epoch") == epoch:
            return value
    return x[-1]


def figure4(runs: Sequence[VariantRun], family: DatasetFamily,
            finals: Mapping[str, Interval] | None = None) -> tuple[Figure, str | None]:
    """Validation accuracy against optimiser steps, one line per variant (the paper's Figure 4).

    ``finals``: the evaluated model's Figure-4 accuracy (flip test) with its 95 % bootstrap interval per variant,
    drawn as a diamond with an error bar at the evaluated checkpoint's step and quoted in the legend.
    """
    key = "val/figure4"
    finals = finals or {}
    label = f"validation {family.metric} (%), mean of " + ", ".join(
        dict.fromkeys(j[2:] + "s" for j in family.figure4_joints))
    curves = [r for r in runs if r.epochs and any(math.isfinite(e.get(key, math.nan)) for e in r.epochs)]
    if not curves:
        return _message_figure("Figure 4: validation accuracy during training",
                               f"No variant has per-epoch validation ({key} in "
                               "models/<variant>/seed-<n>/epochs.csv)."), \
            f"no variant has `{key}` in its epochs.csv"
    by_step = all(all(math.isfinite(e.get("step", math.nan)) for e in r.epochs) for r in curves)
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    xs = {r.name: [e["step"] if by_step else e["epoch"] for e in r.epochs] for r in curves}
    span = max(max(x) for x in xs.values()) - min(min(x) for x in xs.values()) or 1.0
    with_bar = [r.name for r in curves if r.name in finals and math.isfinite(finals[r.name].low)]
    for i, run in enumerate(curves):
        colour = f"C{i % 10}"
        x = xs[run.name]
        name = run.name
        interval = finals.get(run.name)
        if run.name in with_bar:
            name += f" (final {_with_bounds(interval)})"
        ax.plot(x, [e.get(key, math.nan) for e in run.epochs], marker="o", markersize=3, color=colour, label=name)
        if run.name in with_bar:
            # Side by side at the evaluated step, so that the bars of variants trained equally long do not overlap.
            offset = (with_bar.index(run.name) - (len(with_bar) - 1) / 2) * 0.012 * span
            ax.errorbar([_evaluated_step(run, x) + offset], [interval.estimate],
                        yerr=[[interval.estimate - interval.low], [interval.high - interval.estimate]],
                        fmt="D", markersize=5, color=colour, capsize=3, elinewidth=1.2)
    ax.set_xlabel("training progress (optimiser steps)" if by_step else "training progress (epochs)")
    ax.set_ylabel(label)
    ax.set_title("Figure 4: validation accuracy during training, all variants")
    ax.grid(alpha=0.3)
    title = "variant" + (" (final: evaluated, flip test, 95 % interval)" if with_bar else "")
    ax.legend(title=title, fontsize=8, title_fontsize=8)
    return fig, None


FIRST_COLOUR, FINAL_COLOUR = "#9ecae1", "#08519c"


def _panel_grid(panels: int, width: float = 8.6, max_aspect: float = 2.0) -> tuple[int, int, float, float]:
    """(rows, columns, panel width, panel height) in inches: about square panels, at most ``width`` wide in all
    (so the PNG is read at page width without shrinking its text), and never wider than ``max_aspect`` : 1."""
    cols = max(1, math.ceil(math.sqrt(panels)))
    while True:
        rows = math.ceil(panels / cols)
        panel_w = min(4.3, width / cols)
        panel_h = 0.75 * panel_w + 0.4
        if cols == 1 or cols * panel_w <= max_aspect * (rows * panel_h + 0.8):
            return rows, cols, panel_w, panel_h
        cols -= 1


def figure5(series: Sequence[tuple[str, Mapping[str, float], Mapping[str, float]]], family: DatasetFamily,
            paper: tuple[str, Mapping[str, float], Mapping[str, float]] | None = None) -> tuple[Figure, str | None]:
    """First-hourglass against final predictions per joint group (the paper's Figure 5), as small multiples: one
    panel per variant, and the paper's published numbers (``paper``) in a panel of their own. Bars too short to
    see are labelled with their value ("0")."""
    groups = list(family.groups)
    if not series:
        return _message_figure("Figure 5: intermediate against final predictions",
                               "No multi-stack variant has per-stack evaluation "
                               "(models/<variant>/seed-<n>/eval/metrics.json 'stacks')."), \
            "no multi-stack variant has per-stack evaluation scores"
    panels = [*series, *([paper] if paper is not None else [])]
    rows, cols, panel_w, panel_h = _panel_grid(len(panels))
    fig = Figure(figsize=(cols * panel_w, rows * panel_h + 0.8), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    x = np.arange(len(groups))
    width = 0.4
    small = 8 if cols < 3 else 7
    for i, (ax, (name, inter, final)) in enumerate(zip(axes.flat, panels)):
        is_paper = paper is not None and i == len(panels) - 1
        for shift, values, colour, what in ((-width / 2, inter, FIRST_COLOUR, "first hourglass"),
                                            (width / 2, final, FINAL_COLOUR, "final")):
            heights = [_finite(values.get(g)) for g in groups]
            ax.bar(x + shift, [np.nan if h is None else h for h in heights], width, color=colour, label=what,
                   hatch="//" if is_paper else None, edgecolor="white" if is_paper else None, linewidth=0)
            for xi, h in zip(x + shift, heights):
                if h is not None and h < 3.0:  # invisible at this scale: say what it is
                    ax.text(xi, h + 1.0, "0" if round(h, 1) == 0 else f"{h:.1f}", ha="center", va="bottom",
                            fontsize=small - 1, color="#333333")
        title = f"{name} (published)" if is_paper else name
        means = (_finite(inter.get("Mean")), _finite(final.get("Mean")))
        if None not in means:
            title += f"\nMean {means[0]:.1f} → {means[1]:.1f}"
        ax.set_title(title, fontsize=small + 1)
        ax.set_xticks(x, groups, rotation=40 if cols > 1 else 0, ha="right" if cols > 1 else "center",
                      fontsize=small, rotation_mode="anchor")
        ax.tick_params(axis="y", labelsize=small)
        ax.set_ylim(0, 105)
        ax.grid(axis="y", alpha=0.3)
        if is_paper:
            ax.set_facecolor("#f4f4f4")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_axis_off()
    fig.supylabel(f"validation {family.metric} (%)", fontsize=small + 1)
    fig.suptitle("Figure 5: first hourglass against final predictions, per joint group", fontsize=small + 3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=small + 1, frameon=False)
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


def reference_variant(params: ParamsConfig) -> tuple[str, str]:
    """The variant the others are compared with, and how the report names it: HG-Stacked-Int when the sweep has
    it, else the sweep's first variant (the report stage reads ``sweep``, which it declares, nothing else)."""
    if REFERENCE_VARIANT in params.sweep:
        return REFERENCE_VARIANT, f"`{REFERENCE_VARIANT}` (HG-Stacked-Int, the paper's best Figure-4 variant)"
    first = params.sweep[0] if params.sweep else REFERENCE_VARIANT
    return first, (f"`{first}`, the first variant of the sweep: `{REFERENCE_VARIANT}` (HG-Stacked-Int, the "
                   "paper's best Figure-4 variant) is not in the sweep")


class _Builder:
    """Collects the report's sections, numbers and missing-input lines while it reads the inputs."""

    def __init__(self, params: ParamsConfig, paths: ReportPaths, cfg: ReportConfig) -> None:
        self.params, self.paths, self.cfg = params, paths, cfg
        self.family = family_of(params)
        self.metric = self.family.metric
        self.missing: list[str] = []
        self.summary: dict[str, Any] = {"dataset": params.dataset, "metric": self.metric, "variants": {}}
        self.figures = paths.out / "figures"
        self.boot: PeopleBootstrap | None = None
        self.reference, self.reference_note = reference_variant(params)
        self._valid: Annotations | None = None
        self.runs: dict[str, VariantRun] = {}

    def valid_people(self) -> Annotations:
        """The validation annotation file the predictions' rows follow (read once)."""
        if self._valid is None:
            self._valid = read_annotations(self.paths.raw / "annot" / "valid.h5")
        return self._valid

    def interval(self, name: str, statistic: str) -> Interval | None:
        boot = self.boot
        return boot.interval(name, statistic) if boot is not None and name in boot.estimates else None

    def difference(self, name: str, other: str, statistic: str) -> Interval | None:
        boot = self.boot
        if boot is None or name not in boot.estimates or other not in boot.estimates:
            return None
        return boot.difference(name, other, statistic)

    # uncertainty --------------------------------------------------------------------------------------------
    def bootstrap(self, runs: Sequence[VariantRun]) -> None:
        """Score every evaluated seed's ``preds.h5`` on the validation people and resample them (see "uncertainty"
        below): a variant gets an interval when each of its evaluated seeds has predictions."""
        self.runs = {r.name: r for r in runs}
        scorable = []
        for run in runs:
            lacking = [s for s in run.evaluated if not s.preds_path.is_file()]
            for seed in lacking:
                self.missing.append(f"variant `{seed.label}`: no 95 % interval, `{seed.preds_path}` not found")
            if run.evaluated and not lacking:
                scorable.append(run)
        if not scorable:
            return
        valid = self.paths.raw / "annot" / "valid.h5"
        try:
            gt = self.valid_people()
            boot = PeopleBootstrap(self.family, gt.annotated)
        except (AnnotationError, ValueError) as err:
            self.missing.append(f"no 95 % intervals: `{valid}`: {err}")
            return
        for run in scorable:
            masks = []
            try:
                for seed in run.evaluated:
                    pred = read_predictions(seed.preds_path, joints=gt.num_joints, people=len(gt))
                    if pred.shape != gt.joints.shape:
                        raise ReaderError(f"`{seed.preds_path}` has shape {pred.shape}, the validation annotations "
                                          f"{gt.joints.shape}")
                    masks.append(correct_joints(pred, gt.joints, gt.annotated, gt.normalize, self.family.threshold))
                boot.add(run.name, masks)
            except (ReaderError, ValueError) as err:
                self.missing.append(f"variant `{run.name}`: no 95 % interval: {err}")
                continue
            for seed, estimates in zip(run.evaluated, boot.seed_estimates[run.name]):
                final = (seed.eval or {}).get("final")
                for statistic, value in (final.items() if isinstance(final, Mapping) else ()):
                    value = _finite(value)
                    if statistic in estimates and value is not None and abs(value - estimates[statistic]) > 0.05:
                        self.missing.append(
                            f"variant `{seed.label}`: `{seed.preds_path}` scores {statistic} "
                            f"{estimates[statistic]:.2f} %, its eval/metrics.json {value:.2f} %; the intervals are "
                            "of the predictions")
        self.boot = boot if boot.estimates else None

    # seeds --------------------------------------------------------------------------------------------------
    def seed_count(self, name: str) -> int:
        """How many evaluated seeds variant ``name``'s scores average (0: none)."""
        run = self.runs.get(name)
        return len(run.evaluated) if run is not None else 0

    @property
    def several_seeds(self) -> bool:
        """Whether any variant averages more than one seed: the report then shows the spread across seeds."""
        return any(len(r.evaluated) > 1 for r in self.runs.values())

    def on_seeds(self, *names: str) -> str:
        """'one seed', '3 seeds' or '2-3 seeds': what the variants ``names`` were scored on."""
        counts = sorted({max(self.seed_count(n), 1) for n in names} or {1})
        if counts == [1]:
            return "one seed"
        return f"{counts[0]} seeds" if len(counts) == 1 else f"{counts[0]}-{counts[-1]} seeds"

    def spread(self, name: str, statistic: str = "Mean") -> dict[str, float | int | None] | None:
        """Mean, sd and count across the variant's evaluated seeds of its eval/metrics.json ``statistic``."""
        run = self.runs.get(name)
        if run is None or not run.evaluated:
            return None
        return across_seeds([(s.eval.get("final") or {}).get(statistic) for s in run.evaluated])

    def spread_cell(self, name: str, statistic: str = "Mean") -> str:
        """'48.1 ± 0.6 (2 seeds)', '48.1 (1 seed)', or '–'."""
        spread = self.spread(name, statistic)
        if spread is None or spread["mean"] is None:
            return "–"
        sd = "" if spread["sd"] is None else f" ± {spread['sd']:.1f}"
        return f"{spread['mean']:.1f}{sd} ({spread['n']} seed{'s' if spread['n'] != 1 else ''})"

    def record_seeds(self, runs: Sequence[VariantRun]) -> None:
        """summary.json: each variant's seeds, their own scores, and mean/sd/count across them."""
        for run in runs:
            if not run.evaluated:
                continue
            entry = self.summary["variants"].setdefault(run.name, {})
            entry["seeds"] = [s.seed for s in run.evaluated]
            entry["per_seed"] = {str(s.seed): {k: _finite(v) for k, v in (s.eval.get("final") or {}).items()}
                                 for s in run.evaluated}
            entry["across_seeds"] = {k: self.spread(run.name, k) for k in BOOTSTRAP_STATISTICS}

    def uncertainty(self) -> str:
        head = "## Uncertainty\n\n"
        boot = self.boot
        if boot is None:
            return head + "No 95 % intervals: no variant's predictions could be scored (see Missing inputs).\n"
        ref = self.reference if self.reference in boot.estimates else None
        if ref is None:
            self.missing.append(f"no paired intervals: the reference variant `{self.reference}` has no scored "
                                "predictions")
        self.summary["bootstrap"] = {
            "people": boot.people, "resamples": boot.resamples, "seed": boot.seed, "confidence": boot.confidence,
            "reference": self.reference, "reference_is_first_in_sweep": self.reference != REFERENCE_VARIANT}
        rows = []
        for name in boot.estimates:
            intervals = boot.intervals(name)
            entry = self.summary["variants"].setdefault(name, {})
            entry["interval"] = {k: v.as_dict() for k, v in intervals.items()}
            cells = [f"`{name}`", _with_bounds(intervals["Mean"]), _with_bounds(intervals["figure4"])]
            if self.several_seeds:
                cells.insert(1, self.spread_cell(name))
            if ref is not None and name == ref:
                cells += ["–", "–", "(reference)"]
            elif ref is not None:
                diffs = {k: boot.difference(name, ref, k) for k in intervals}
                entry["difference_from_reference"] = {
                    k: {**d.as_dict(), "distinguishable": d.excludes_zero} for k, d in diffs.items()}
                which = [label for k, label in (("Mean", "Mean"), ("figure4", "Figure-4")) if diffs[k].excludes_zero]
                cells += [_with_bounds(diffs["Mean"], True), _with_bounds(diffs["figure4"], True),
                          ", ".join(which) or f"neither (not distinguishable on {self.on_seeds(name, ref)})"]
            rows.append(cells)
        header = ["Variant", f"Mean {self.metric} (%) [95 % interval]", "Figure-4 accuracy (%) [95 % interval]"]
        if self.several_seeds:
            header.insert(1, f"Mean {self.metric} (%) across seeds, ± sd")
        if ref is not None:
            header += [f"Mean − `{ref}` (points)", f"Figure-4 − `{ref}` (points)", f"distinguishable from `{ref}`"]
        preds = "seeds' `eval/preds.h5` files" if self.several_seeds else "`eval/preds.h5`"
        text = (head + f"95 % percentile-bootstrap intervals over the {boot.people} validation people with an "
                f"annotated joint: {boot.resamples} resamples of the people drawn with replacement (seed "
                f"{boot.seed}), each scored from the variant's {preds} against "
                f"`{self.paths.raw / 'annot' / 'valid.h5'}` (a missed person counts as wrong). Figure-4 accuracy: "
                f"{self.family.figure4_label}. Differences from the reference are paired: in every resample both "
                "variants are scored on the same people. A difference is distinguishable when its interval "
                f"excludes 0. {self.seeds_note()}\n\nReference: {self.reference_note}.\n\n"
                + markdown_table(header, rows))
        ordering = self.paper_ordering()
        if ordering:
            text += "\n\nAgainst the paper's Figure 4:\n\n" + "\n".join(f"- {line}" for line in ordering)
        return text + "\n"

    def seeds_note(self) -> str:
        """What the intervals cover, given how many seeds each variant was trained from."""
        if not self.several_seeds:
            return ("The intervals cover the choice of validation people only, not training noise: each variant was "
                    "trained once, on one seed.")
        counts = sorted({len(r.evaluated) for r in self.runs.values() if r.evaluated})
        trained = (f"{counts[0]} training seeds" if len(counts) == 1
                   else "its training seeds (counted in the second column)")
        return (f"Each variant's score is the mean over {trained}: every resample scores each seed on the same "
                "resampled people and averages the seeds' scores, so a paired difference compares seed-averaged "
                "scores on the same people. The intervals cover the choice of validation people, not training "
                "noise; the spread across seeds (sample standard deviation) is in the second column.")

    def paper_ordering(self) -> list[str]:
        """Where the Figure-4 ordering of the paper's variants differs from the paper's (HG-Stacked-Int best; the
        stacked network above the single hourglass); empty when the sweep holds fewer than two of them."""
        boot = self.boot
        have = [v for v in PAPER_FIGURE4_VARIANTS if boot is not None and v in boot.estimates]
        if len(have) < 2:
            return []

        def versus(a: str, b: str) -> str:
            diff = boot.difference(a, b, "figure4")
            verdict = "distinguishable" if diff.excludes_zero else f"not distinguishable on {self.on_seeds(a, b)}"
            return f"{_with_bounds(diff, True)} points, {verdict}"

        score = {v: boot.estimates[v]["figure4"] for v in have}
        lines, agree = [], []
        if "hg_stacked_int" in have:
            above = [v for v in have if v != "hg_stacked_int" and score[v] > score["hg_stacked_int"]]
            for v in above:
                lines.append(f"`{v}` scores above `hg_stacked_int` ({versus(v, 'hg_stacked_int')}), where the "
                             "paper has HG-Stacked-Int best.")
            if not above:
                agree.append("`hg_stacked_int` is best, as in the paper")
        if "hg" in have and "hg_stacked" in have:
            if score["hg"] > score["hg_stacked"]:
                line = (f"The single hourglass `hg` scores above the two-stack `hg_stacked` "
                        f"({versus('hg', 'hg_stacked')}), where the paper's stacked network beats the single one.")
                if self.supervision("hg_stacked") == "final":
                    first = intermediate_scores(self.runs["hg_stacked"]) if "hg_stacked" in self.runs else None
                    first_mean = _finite(first[1].get("Mean")) if first is not None else None
                    line += " `hg_stacked` has one loss, on its last stack: its first stack gets none, " + (
                        f"which is why its first-hourglass score in Figure 5 is {first_mean:.1f} %, not a bug."
                        if first_mean is not None and first_mean < 5.0 else
                        "so its first-hourglass score in Figure 5 says nothing about the network.")
                lines.append(line)
            else:
                agree.append("`hg_stacked` scores above `hg`, as the paper's stacked network beats the single one")
        if agree and not lines:
            lines.append("Our ordering agrees with the paper's: " + "; ".join(agree) + ".")
        return lines

    def supervision(self, name: str) -> str | None:
        """The supervision the variant was trained with, from its resolved config (its first seed's
        ``models/<variant>/seed-<n>/config.yaml``; the params' variant table is not read: the report stage does not
        declare it, and the record is the truth)."""
        run = self.runs.get(name)
        model = ((run.config if run is not None else None) or {}).get("model")
        return str(model["supervision"]) if isinstance(model, Mapping) and model.get("supervision") else None

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
            if len(run.evaluated) > 1:
                source += f", mean of {len(run.evaluated)} seeds"
            label = f"**{run.name}**"
            released = self.params.imports.get(run.name)
            if released is not None:  # the release's own numbers are its README's, by its own metric
                label += " (released weights)"
                source += f"; `{released.path}`, imported from {PORT_PROJECT}"
            rows.append(ScoreRow(label, source, values,
                                 {"ci": _bounds(self.interval(run.name, "Mean")), "seeds": self.spread_cell(run.name)}))
            entry = self.summary["variants"].setdefault(run.name, {})
            entry["final"] = {k: _finite(v) for k, v in values.items()}
            entry["source"] = source
        if baseline is not None:
            rows.append(ScoreRow("mean-pose baseline", "average training pose placed in each crop",
                                 _result_values(baseline)))
        extra = [("Mean 95 % interval", "ci")]
        seeds = ""
        if self.several_seeds:
            extra.append(("Mean across seeds, ± sd", "seeds"))
            seeds = (" A variant trained from several seeds shows the mean of its seeds' scores, and their mean ± "
                     "sample standard deviation beside it.")
        note = ""
        if self.params.dataset == "synthetic":
            whose = "the paper's and the authors' rows are" if authors is not None else "the paper's rows are"
            note = ("\n\nThe variants were trained and scored on the **synthetic** people (scored as "
                    f"{self.family.name.upper()}); {whose} real {self.family.name.upper()} numbers, shown for scale, not as "
                    "a like-for-like comparison.")
        return (f"## Results\n\nValidation {self.metric} per joint group, in % of annotated joints "
                f"({self.family.mean_note}). "
                f"'–' marks a number the source does not give; the 95 % intervals of our variants' Means are "
                f"explained under Uncertainty.{seeds}{note}\n\n"
                f"{scores_table(rows, self.family, extra)}\n\n"
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
        seeds = " A variant's column is the mean over its seeds." if self.several_seeds else ""
        return (f"### Per joint\n\nValidation {self.metric} of every joint, in %.{seeds}\n\n"
                f"{markdown_table(header, body)}\n")

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
            body.append([run.name, _cell(mean), _bounds(self.interval(run.name, "Mean")), _cell(baseline.mean),
                         _cell(margin)])
            if margin is not None:
                self.summary["variants"][run.name]["margin_over_mean_pose"] = margin
        header = ["Variant", f"Mean {self.metric} (%)", "95 % interval", f"mean pose Mean {self.metric} (%)",
                  "margin (percentage points)"]
        return text + markdown_table(header, body) + "\n"

    def costs(self, runs: Sequence[VariantRun]) -> str:
        body = []
        joints = self.family.joints.count
        several = self.several_seeds
        # One row per variant (its one seed's run), or with several seeds one row per variant and seed.
        items: list[tuple[VariantRun, SeedRun | VariantRun]] = []
        for variant in runs:
            items += [(variant, s) for s in variant.seeds] if several and variant.seeds else [(variant, variant)]
        for variant, run in items:
            params, how = parameter_count(run, joints)
            hours = training_hours(run)
            rate = mean_train_throughput(run)
            ev = run.eval or {}
            tm = run.train_metrics or {}
            stacks = ((run.config or {}).get("model") or {}).get("stacks")
            best_key = f"best/{self.family.prefix}/Mean"
            seed = [] if not several else ["–" if getattr(run, "seed", None) is None else str(run.seed)]
            body.append([run.name, *seed, str(stacks) if stacks is not None else "–",
                         _cell(None if params is None else params / 1e6, 2) + (" (from config)" if how == "config"
                                                                                 else ""),
                         _cell(len(run.epochs) if run.epochs else None, 0), _cell(tm.get("steps"), 0),
                         _duration(hours), _cell(rate), _cell(ev.get("images_per_s")), _cell(ev.get("seconds")),
                         _cell(tm.get(best_key)),
                         _cell(tm.get("best/epoch"), 0), f"`{run.mlflow_run}`" if run.mlflow_run else "–"])
            costs = {"parameters": params, "train_hours": hours, "train_img_per_s": rate,
                     "eval_img_per_s": _finite(ev.get("images_per_s"))}
            entry = self.summary["variants"].setdefault(run.name, {})
            if run is variant:
                entry.update(costs)
            else:  # per seed, and the variant's parameter count and mean training time / throughputs
                entry.setdefault("per_seed_costs", {})[str(run.seed)] = costs
                per_seed = list(entry["per_seed_costs"].values())
                entry.update({"parameters": params, **{k: _mean_of([c[k] for c in per_seed])
                                                       for k in ("train_hours", "train_img_per_s",
                                                                 "eval_img_per_s")}})
        header = ["Variant", *(["Seed"] if several else []), "Stacks", "Parameters (M)", "Epochs", "Optimiser steps",
                  "Training time (h)",
                  "Training throughput (img/s)", "Evaluation throughput (img/s)", "Evaluation time (s)",
                  f"Best validation Mean {self.metric} (%)", "Best at epoch", "MLflow run"]
        return ("## Model size, training time and throughput\n\nParameters are trainable weights. Training time "
                "is optimiser time summed over epochs (steps x batch / measured images per second), validation "
                "excluded; throughputs are means over epochs (training) and the whole evaluation (evaluation)."
                + (" One row per training seed." if several else "") + "\n\n"
                + markdown_table(header, body) + "\n")

    def ablation(self, runs: Sequence[VariantRun]) -> str:
        finals = {r.name: iv for r in runs if (iv := self.interval(r.name, "figure4")) is not None}
        fig, problem = figure4(runs, self.family, finals)
        save_figure(fig, self.figures / "figure4.png")
        if problem:
            self.missing.append(f"Figure 4 is empty: {problem}")
        series, table, unsupervised = [], [], []
        for run in runs:
            inter = intermediate_scores(run)
            final = final_scores(run, self.family)
            if inter is None or final is None:
                continue
            stack, values = inter
            loss_free = self.supervision(run.name) == "final"
            series.append((run.name + (" (no loss on stack 1)" if loss_free else ""), values, final[0]))
            table.append(ScoreRow(f"{run.name}: stack {stack} (first hourglass)", "evaluate stage", values,
                                  {"fig4": _cell(values.get("figure4"))}))
            bounds = f"{_bounds(self.interval(run.name, 'Mean'))}; {_bounds(self.interval(run.name, 'figure4'))}"
            table.append(ScoreRow(f"{run.name}: final", "evaluate stage", final[0],
                                  {"fig4": _cell(final[0].get("figure4")),
                                   "ci": "–" if bounds == "–; –" else bounds}))
            self.summary["variants"].setdefault(run.name, {})["intermediate"] = {
                k: _finite(v) for k, v in values.items()}
            if loss_free:
                unsupervised.append(run.name)
        paper = None
        if self.family.name == "mpii":
            paper = ("paper: 8-stack", PAPER_MPII_INTERMEDIATE, PAPER_MPII_FINAL)
            table += paper_rows(self.family)[:2]
        fig5, problem = figure5(series, self.family, paper)
        save_figure(fig5, self.figures / "figure5.png")
        if problem:
            self.missing.append(f"Figure 5 has no variant of ours: {problem}")
        return ("## Ablation\n\n![Figure 4: validation accuracy against training progress](figures/figure4.png)\n\n"
                "Figure 4: validation accuracy of every variant at the end of each epoch "
                f"({self.family.figure4_label}; "
                "single pass, no flip test). Diamonds with error bars: the evaluated model's accuracy (evaluate "
                "stage, flip test) with its 95 % bootstrap interval over validation people, also quoted in the "
                "legend.\n\n"
                "![Figure 5: first-hourglass against final predictions](figures/figure5.png)\n\n"
                f"Figure 5: validation {self.metric} of the first hourglass's predictions against the final ones, "
                "one panel per multi-stack variant" + (" and one for the paper's published 8-stack numbers"
                                                       if paper is not None else "")
                + " (light bars: first hourglass, dark: final; a bar too short to see is labelled with its value)."
                + "".join(f" `{n}` has one loss, on its last stack (supervision `final`): its first stack gets none, "
                          "so a near-0 first-hourglass score is expected, not a bug." for n in unsupervised)
                + "\n\n" + scores_table(table, self.family, [("Figure-4 accuracy (%)", "fig4"),
                                                            ("95 % intervals (Mean; Figure-4)", "ci")])
                + "\n\n" + paper_footnote(self.family) + "\n")

    def examples(self, runs: Sequence[VariantRun]) -> str:
        text = "## Examples\n\n"
        def mean(run: SeedRun | VariantRun) -> float:
            return final_scores(run, self.family)[0].get("Mean", -1.0)

        # The variant with the best (seed-averaged) Mean, then its seed with the best Mean.
        seeds_with_preds = {r.name: [s for s in r.evaluated if s.preds_path.is_file() and final_scores(s, self.family)]
                            for r in runs}
        candidates = [r for r in runs if seeds_with_preds[r.name] and final_scores(r, self.family)]
        if self.cfg.example_variant is not None:
            candidates = [r for r in candidates if r.name == self.cfg.example_variant]
        chosen_variant = max(candidates, key=mean, default=None)
        chosen_run = None if chosen_variant is None else max(seeds_with_preds[chosen_variant.name], key=mean)
        shown = "" if chosen_run is None else (chosen_run.label if self.several_seeds else chosen_run.name)
        problem = None
        pred = gt = None
        if chosen_run is None:
            wanted = f"variant `{self.cfg.example_variant}`" if self.cfg.example_variant else "any variant"
            problem = f"no predictions for {wanted} (`models/<variant>/seed-<n>/eval/preds.h5`)"
        else:
            try:
                pred = read_predictions(chosen_run.preds_path)
                gt = self.valid_people()
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
                f"{shown}: the {min(self.cfg.examples, len(people))} {kind} validation people "
                f"by {self.metric}",
                people[:self.cfg.examples], pred, gt, self.paths.raw / "images", self.family)
            save_figure(fig, path)
            if absent:
                self.missing.append(f"{absent} example image(s) of the {kind} cases not found under "
                                    f"`{self.paths.raw / 'images'}` (skeletons drawn on grey)")
        if problem is not None:
            self.missing.append(f"example figures not drawn: {problem}")
            return text + f"Not drawn: {problem}.\n"
        which = "" if not self.several_seeds else " (of its seeds, the one with the best Mean)"
        return (text + f"Validation people of variant `{shown}`{which} ranked by the share of joints within "
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
        for run in (seed for variant in runs for seed in variant.seeds):
            config = run.path / "config.yaml"
            if config.is_file():
                label = run.label if self.several_seeds else run.name
                rows.append([f"`{label}` resolved params", f"`{config}` sha256 `{sha256_file(config)[:16]}`"])
        return ("## Provenance\n\n" + markdown_table(["What", "Value"], rows, "ll")
                + f"\n\n<details><summary>params.yaml used for this report</summary>\n\n```yaml\n"
                f"{params_text.rstrip()}\n```\n\n</details>\n")

    def best_line(self, scored: Mapping[str, float], baseline: PCKResult | None) -> str:
        """The best variant, crowned only when its paired interval against the runner-up excludes 0."""
        order = sorted(scored, key=lambda n: -scored[n])
        leader = order[0]
        interval = self.interval(leader, "Mean")
        spread = self.spread(leader) if self.several_seeds else None
        sd = "" if spread is None or spread["sd"] is None else f" ± {spread['sd']:.1f} sd over {spread['n']} seeds"
        mean = f"Mean {self.metric} {scored[leader]:.1f} %{sd}" + ("" if interval is None else
                                                                  f" [95 % interval {_bounds(interval)[1:]}")
        over = "" if baseline is None else (f", {scored[leader] - baseline.mean:+.1f} points over the mean-pose "
                                            f"baseline ({baseline.mean:.1f} %)")
        self.summary["leading_variant"] = leader
        if len(order) == 1:
            self.summary["best_variant"] = leader
            return f"- Best variant: `{leader}` (the only one scored) with {mean}{over}."
        runner = order[1]
        diff = self.difference(leader, runner, "Mean")
        if diff is not None:
            self.summary["best_variant_margin"] = {**diff.as_dict(), "runner_up": runner,
                                                   "distinguishable": diff.excludes_zero}
        gap = (f"{scored[leader] - scored[runner]:+.2f} points (no interval: predictions missing)" if diff is None
               else f"{_with_bounds(diff, True)} points (paired 95 % interval)")
        if diff is not None and diff.excludes_zero:
            self.summary["best_variant"] = leader
            return f"- Best variant: `{leader}` with {mean}{over}; ahead of the runner-up `{runner}` by {gap}."
        self.summary["best_variant"] = None
        return (f"- Best variant: not distinguishable on {self.on_seeds(leader, runner)}. `{leader}` ({mean}) leads "
                f"the runner-up `{runner}` by {gap}" + (", an interval that includes 0." if diff is not None else "."))

    def reference_lines(self) -> list[str]:
        """Which paired differences from the reference exclude 0, per statistic."""
        ref = self.reference
        variants = self.summary["variants"]
        diffs = {n: v["difference_from_reference"] for n, v in variants.items() if "difference_from_reference" in v}
        if not diffs:
            return []
        lines = []
        for statistic, label in (("Mean", f"Mean {self.metric}"), ("figure4", "Figure-4 accuracy")):
            groups: dict[bool, list[str]] = {True: [], False: []}
            seeds = self.on_seeds(ref, *diffs)
            for name, entry in diffs.items():
                d = entry[statistic]
                if d["estimate"] is None or d["low"] is None:
                    continue
                groups[d["distinguishable"]].append(
                    f"`{name}` {d['estimate']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]")
            lines.append(f"- {label} minus the reference `{ref}` (points, paired 95 % intervals): distinguishable: "
                         f"{', '.join(groups[True]) or 'none'}; not distinguishable on {seeds}: "
                         f"{', '.join(groups[False]) or 'none'}.")
        return lines

    def summary_section(self, runs: Sequence[VariantRun], baseline: PCKResult | None) -> str:
        lines = [f"- Dataset: **{self.params.dataset}**, metric: validation **{self.metric}**.",
                 f"- Variants: {', '.join(f'`{r.name}`' for r in runs) or 'none'}."]
        if self.several_seeds:
            lines.append(f"- Training seeds: {', '.join(map(str, self.params.seeds))}; each variant's numbers are "
                         "the mean over its seeds, with the sample standard deviation across them (± sd).")
        scored = {n: v["final"]["Mean"] for n, v in self.summary["variants"].items()
                  if (v.get("final") or {}).get("Mean") is not None}
        if scored:
            lines.append(self.best_line(scored, baseline))
            lines += self.reference_lines()
            ordering = self.paper_ordering()
            if ordering:
                lines.append("- Against the paper's Figure 4: " + " ".join(ordering))
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


SCORES_NAME = "scores.json"  # the one file `dvc metrics show` lists: variant -> evaluated Mean (mean over seeds)
CURVES_NAME = "curves.csv"  # every variant's validation curve in one table: dvc.yaml's top-level plot


def compact_scores(runs: Sequence[VariantRun]) -> dict[str, float | None]:
    """Each evaluated variant's Mean (evaluate stage, flip test; the mean over its seeds), two decimals: small
    enough for a terminal."""
    out: dict[str, float | None] = {}
    for run in runs:
        final = (run.eval or {}).get("final")
        if isinstance(final, Mapping):
            mean = _finite(final.get("Mean"))
            out[run.name] = None if mean is None else round(mean, 2)
    return out


def curves_table(runs: Sequence[VariantRun], sweep: Sequence[str]) -> str:
    """CSV: ``step`` and one column per sweep variant of its per-epoch ``val/figure4`` (the mean curve over its
    seeds; blank where a variant has no epoch at that step, or was not trained), so one DVC plot overlays the whole
    sweep."""
    by_name = {run.name: run for run in runs}
    curves: dict[str, dict[float, float]] = {}
    for name in sweep:
        epochs = (by_name[name].epochs if name in by_name else None) or []
        curves[name] = {e["step"]: e["val/figure4"] for e in epochs
                        if math.isfinite(e.get("step", math.nan)) and math.isfinite(e.get("val/figure4", math.nan))}
    steps = sorted({step for curve in curves.values() for step in curve})
    lines = [",".join(["step", *sweep])]
    for step in steps:
        cells = [f"{curves[name][step]:.4f}" if step in curves[name] else "" for name in sweep]
        lines.append(",".join([f"{step:g}", *cells]))
    return "\n".join(lines) + "\n"


def build_report(params: ParamsConfig, paths: ReportPaths) -> dict[str, Any]:
    """Write ``results.md``, ``summary.json``, ``scores.json``, ``curves.csv`` and the four figures under
    ``paths.out``.

    Returns the summary written to ``summary.json`` plus ``missing``: the lines of the "Missing inputs" section.
    """
    cfg = params.report
    # The sweep's variants x seeds (what dvc.yaml trains, trained or not), then any other trained directory.
    runs = discover_variants(paths.models, list(params.sweep), list(params.seeds), list(params.imports))
    builder = _Builder(params, paths, cfg)
    builder.summary["seeds"] = list(params.seeds)
    for run in runs:
        builder.missing.extend(run.missing)
    builder.bootstrap(runs)
    builder.record_seeds(runs)
    uncertainty = builder.uncertainty()
    baseline = builder.baseline()
    authors = builder.authors()
    if authors is not None:
        builder.summary["authors_released"] = {k: _finite(v) for k, v in _result_values(authors).items()}
    body = [builder.results(runs, baseline, authors), builder.per_joint(runs, baseline, authors), uncertainty,
            builder.margins(runs, baseline), builder.costs(runs), builder.ablation(runs), builder.examples(runs),
            builder.provenance(runs)]
    head = f"# Stacked hourglass reproduction: results ({params.dataset})\n\n"
    text = head + builder.summary_section(runs, baseline) + "\n" + "\n".join(body)
    builder.summary["missing_inputs"] = len(builder.missing)  # a count: DVC metrics drop lists
    write_atomic(paths.out / "summary.json", json.dumps(builder.summary, indent=2, sort_keys=True) + "\n")
    write_atomic(paths.out / SCORES_NAME, json.dumps(compact_scores(runs), indent=2) + "\n")
    write_atomic(paths.out / CURVES_NAME, curves_table(runs, params.sweep))
    write_atomic(paths.out / "results.md", text)
    return {**builder.summary, "missing": list(builder.missing)}
