"""The report's inputs: where it reads and writes (:class:`ReportPaths`), what each ``models/<variant>/seed-<n>/``
holds (:class:`SeedRun`), and a variant as the report shows it, its seeds averaged (:class:`VariantRun`).

Every input except the params is optional: a missing or unreadable file becomes a line of the run's ``missing``
(the report's "Missing inputs") and a None field, never an error.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hourglass.family import DatasetFamily
from hourglass.io.annotations import Annotations, read_annotations
from hourglass.layout import model_dir, seed_dirs


@dataclass(frozen=True)
class ReportPaths:
    """Where the report reads from and writes to."""

    params: Path
    models: Path
    out: Path
    raw: Path  # data/raw/<dataset>: annot/{train,valid}.h5 and images/
    dvc_lock: Path
    anchor: Path | None

    @property
    def valid(self) -> Path:
        """The validation annotation file the predictions' rows follow."""
        return self.raw / "annot" / "valid.h5"


def finite(value: Any) -> float | None:
    """``value`` as a float, None when it is not a finite number."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@dataclass(kw_only=True)
class RunFiles:
    """What the report reads of a run: each file's contents, None where it is absent or unreadable (the reason is a
    line of ``missing``)."""

    train_metrics: dict[str, Any] | None = None  # metrics.json
    epochs: list[dict[str, float]] | None = None  # epochs.csv, one dict per epoch
    config: dict[str, Any] | None = None  # config.yaml: the resolved params
    mlflow_run: str | None = None  # mlflow.json's run id
    eval: dict[str, Any] | None = None  # eval/metrics.json
    missing: list[str] = field(default_factory=list)


@dataclass
class SeedRun(RunFiles):
    """What one ``models/<variant>/seed-<n>/`` holds (``seed`` None: a directory without the seed level, e.g. an
    imported model evaluated by hand)."""

    name: str
    seed: int | None
    path: Path

    @property
    def preds_path(self) -> Path:
        return self.path / "eval" / "preds.h5"

    @property
    def label(self) -> str:
        """``hg`` or ``hg seed 1``: how the report names this run."""
        return self.name if self.seed is None else f"{self.name} seed {self.seed}"


@dataclass
class VariantRun(RunFiles):
    """One variant of the report: its training seeds' runs (``seeds``, each a :class:`SeedRun`) and their files,
    averaged over the seeds that have them (see :func:`aggregate`; ``mlflow_run`` lists every seed's run, and
    ``missing`` every seed's lines). With one seed every file is that seed's own."""

    name: str
    path: Path
    seeds: list[SeedRun] = field(default_factory=list)

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
# score: the people are resampled once and every seed is scored on the same resample (hourglass.report.bootstrap).
def mean_of(values: Sequence[Any]) -> float | None:
    """The mean of the finite ``values``; None when there are none."""
    finite_values = [v for v in (finite(x) for x in values) if v is not None]
    return float(np.mean(finite_values)) if finite_values else None

def _mean_mapping(maps: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Key by key, the mean of the finite values (keys in the first mapping's order, then any others)."""
    keys = list(dict.fromkeys(k for m in maps for k in m))
    return {k: mean_of([m.get(k) for m in maps]) for k in keys}


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
        out[key] = mean_of([e.get(key) for e in evals])
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
            mean = mean_of([r.get(key, math.nan) for r in rows])
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


@dataclass(frozen=True)
class Spread:
    """A statistic across a variant's seeds: mean, sample standard deviation (n - 1; None for fewer than two
    seeds) and the number of seeds with a finite value."""

    mean: float | None
    sd: float | None
    n: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {"mean": self.mean, "sd": self.sd, "n": self.n}


def across_seeds(values: Sequence[float | None]) -> Spread:
    """The :class:`Spread` of the finite ``values`` (one per seed)."""
    kept = [v for v in (finite(x) for x in values) if v is not None]
    if not kept:
        return Spread(None, None, 0)
    return Spread(float(np.mean(kept)), float(np.std(kept, ddof=1)) if len(kept) > 1 else None, len(kept))


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


class ValidPeople:
    """The validation annotation file the predictions' rows follow, read on first use and kept (a read that fails
    raises, and is tried again at the next use)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._people: Annotations | None = None

    def __call__(self) -> Annotations:
        if self._people is None:
            self._people = read_annotations(self.path)
        return self._people


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
def final_scores(run: SeedRun | VariantRun, family: DatasetFamily) -> tuple[dict[str, float], str] | None:
    """The variant's group scores and their source: the evaluate stage when present, else the last training epoch."""
    if run.eval and isinstance(run.eval.get("final"), Mapping):
        return {k: v for k, v in run.eval["final"].items() if finite(v) is not None}, \
            "evaluate stage" + (" (flip test)" if run.eval.get("flip_test") else "")
    if run.train_metrics:
        prefix = family.prefix + "/"
        values = {k[len(prefix):].replace("_at_", "@"): v for k, v in run.train_metrics.items()
                  if k.startswith(prefix) and "/joint/" not in k and finite(v) is not None}
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
    return int(first.get("stack", 1)), {k: v for k, v in first["metrics"].items() if finite(v) is not None}


def supervision(run: VariantRun) -> str | None:
    """The supervision the variant was trained with, from its resolved config (its first seed's
    ``models/<variant>/seed-<n>/config.yaml``; the params' variant table is not read: the report stage does not
    declare it, and the record is the truth)."""
    model = (run.config or {}).get("model")
    return str(model["supervision"]) if isinstance(model, Mapping) and model.get("supervision") else None


