"""The report's data model: every number and decision of the report, computed once from the inputs.

:func:`compute_summary` reads the runs (hourglass.report.inputs), scores their predictions on the resampled
validation people (hourglass.report.bootstrap) and decides the best variant and the ordering against the paper
(hourglass.report.comparisons). The markdown (hourglass.report.markdown) and the figures
(hourglass.report.figures) are rendered from the :class:`Summary`; ``reports/summary.json`` is
:meth:`Summary.to_json`, ``reports/scores.json`` :meth:`Summary.scores` and ``reports/curves.csv``
:meth:`Summary.curves_csv`.

A variant trained from several seeds (params ``seeds``) is reported by the mean over its seeds, with the spread
across them as mean ± sd; with one seed the numbers are that seed's. Missing inputs are lines of
:attr:`Summary.missing`, in the order the report finds them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hourglass.config import PORT_PROJECT, ParamsConfig
from hourglass.evaluation.baselines import score_mean_pose
from hourglass.evaluation.score import evaluate_files
from hourglass.family import DatasetFamily, family_of
from hourglass.io.annotations import AnnotationError
from hourglass.io.eval_files import ReaderError
from hourglass.metrics import PCKResult
from hourglass.report.bootstrap import BOOTSTRAP_STATISTICS, Interval, PeopleBootstrap, bootstrap_variants
from hourglass.report.comparisons import BestVariant, PaperOrdering, best_variant, paper_ordering
from hourglass.report.costs import CostRow, cost_rows, variant_costs
from hourglass.report.examples import Examples, choose_examples
from hourglass.report.inputs import (
    ReportPaths,
    Spread,
    ValidPeople,
    VariantRun,
    across_seeds,
    discover_variants,
    final_scores,
    finite,
    intermediate_scores,
    supervision,
)
from hourglass.report.paper import REFERENCE_VARIANT
from hourglass.report.provenance import Provenance, provenance

FIGURE4_KEY = "val/figure4"  # the per-epoch validation accuracy of Figure 4 and curves.csv


@dataclass(frozen=True)
class Measured:
    """Scores of a model that is not one of the variants: the authors' released predictions, the mean-pose
    baseline."""

    values: Mapping[str, float]  # the table's numbers, with the ablation accuracy as ``figure4``
    per_joint: Mapping[str, float]

    @classmethod
    def of(cls, result: PCKResult, family: DatasetFamily) -> Measured:
        return cls({**result.as_dict(), "figure4": family.figure4(result)},
                   dict(zip(result.joint_names, result.per_joint.tolist(), strict=True)))

    @property
    def mean(self) -> float:
        return self.values["Mean"]

    def to_json(self) -> dict[str, float | None]:
        return {k: finite(v) for k, v in self.values.items()}


@dataclass
class VariantSummary:
    """One variant as the report shows it: its seeds averaged, its intervals and costs."""

    name: str
    released: str | None  # the params ``imports`` file of released weights; None for a variant of ours
    seeds: tuple[int | None, ...]  # the evaluated seeds its scores average (empty: not evaluated)
    per_seed: dict[str, dict[str, float | None]]  # str(seed) -> that seed's evaluation scores
    across_seeds: dict[str, Spread]  # 'Mean' / 'figure4' -> across the evaluated seeds
    final: dict[str, float] | None  # group scores, Mean, ...: the evaluate stage's, else the last epoch's
    source: str | None  # where ``final`` comes from
    evaluation: dict[str, Any] | None  # the evaluate stage's scores (mean over seeds) as recorded
    per_joint: dict[str, float] | None
    intermediate: tuple[int, dict[str, float]] | None  # (stack, group scores) of the first hourglass
    supervision: str | None
    epochs: list[dict[str, float]] | None  # the per-epoch validation curve (mean over seeds)
    evaluated_epoch: float | None  # the epoch of the evaluated checkpoint
    cost_rows: list[CostRow]
    interval: dict[str, Interval] | None = None  # 'Mean' / 'figure4' -> on all people, 95 % bootstrap interval
    difference: dict[str, Interval] | None = None  # minus the reference variant, paired
    margin_over_mean_pose: float | None = None

    @property
    def curve(self) -> bool:
        """Whether the variant has a Figure-4 curve (a finite per-epoch ``val/figure4``)."""
        return bool(self.epochs) and any(math.isfinite(e.get(FIGURE4_KEY, math.nan)) for e in self.epochs)

    def to_json(self) -> dict[str, Any]:
        """The variant's entry of summary.json."""
        out: dict[str, Any] = {}
        if self.seeds:
            out.update(seeds=list(self.seeds), per_seed=self.per_seed,
                       across_seeds={k: v.as_dict() for k, v in self.across_seeds.items()})
        if self.interval is not None:
            out["interval"] = {k: v.as_dict() for k, v in self.interval.items()}
        if self.difference is not None:
            out["difference_from_reference"] = {k: {**d.as_dict(), "distinguishable": d.excludes_zero}
                                                for k, d in self.difference.items()}
        if self.final is not None:
            out.update(final=self.final, source=self.source)
            if self.intermediate is not None:
                out["intermediate"] = {k: finite(v) for k, v in self.intermediate[1].items()}
        if self.margin_over_mean_pose is not None:
            out["margin_over_mean_pose"] = self.margin_over_mean_pose
        out.update(variant_costs(self.cost_rows))
        if self.cost_rows[0].seed_row:
            out["per_seed_costs"] = {str(r.seed): r.costs() for r in self.cost_rows}
        return out


@dataclass(frozen=True)
class BootstrapInfo:
    """How the intervals were drawn (hourglass.report.bootstrap)."""

    people: int  # the validation people with an annotated joint
    resamples: int
    seed: int
    confidence: float


@dataclass
class Summary:
    """Everything the report says."""

    dataset: str
    family: DatasetFamily
    seeds: list[int]  # params ``seeds``
    sweep: list[str]
    variants: list[VariantSummary]  # the sweep's, the imported ones, then any other trained directory
    reference: str  # the variant the others are compared with
    valid_path: Path  # the validation annotation file the intervals score against
    images_dir: Path
    provenance: Provenance
    bootstrap: BootstrapInfo | None = None  # None: no variant's predictions could be scored
    authors: Measured | None = None
    baseline: Measured | None = None
    best: BestVariant | None = None  # None: no variant has a Mean
    ordering: PaperOrdering | None = None
    examples: Examples | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return self.family.metric

    @property
    def reference_is_papers(self) -> bool:
        """Whether the reference is the paper's best Figure-4 variant (in the sweep), not the sweep's first."""
        return REFERENCE_VARIANT in self.sweep

    @property
    def paired(self) -> bool:
        """Whether the reference has intervals: the other variants then have paired differences from it."""
        reference = self.variant(self.reference)
        return reference is not None and reference.interval is not None

    @property
    def several_seeds(self) -> bool:
        """Whether any variant averages more than one seed: the report then shows the spread across seeds."""
        return any(len(v.seeds) > 1 for v in self.variants)

    def variant(self, name: str) -> VariantSummary | None:
        return next((v for v in self.variants if v.name == name), None)

    def seed_count(self, name: str) -> int:
        """How many evaluated seeds variant ``name``'s scores average (0: none)."""
        found = self.variant(name)
        return len(found.seeds) if found is not None else 0

    def scored(self) -> dict[str, float]:
        """Each variant's Mean, where it has one: the evaluated variants first, then those scored by training only
        (a tie for the lead goes to the first)."""
        ordered = sorted(self.variants, key=lambda v: not v.seeds)
        return {v.name: v.final["Mean"] for v in ordered if (v.final or {}).get("Mean") is not None}

    def to_json(self) -> dict[str, Any]:
        """summary.json: the numbers of the report and its decisions (no date: `dvc metrics diff` should show only
        real changes)."""
        ordered = sorted(self.variants, key=lambda v: not v.seeds)
        out: dict[str, Any] = {"dataset": self.dataset, "metric": self.metric, "seeds": list(self.seeds),
                               "variants": {v.name: v.to_json() for v in ordered},
                               "params_sha256": self.provenance.params_sha256, "missing_inputs": len(self.missing)}
        if self.bootstrap is not None:
            out["bootstrap"] = {"people": self.bootstrap.people, "resamples": self.bootstrap.resamples,
                                "seed": self.bootstrap.seed, "confidence": self.bootstrap.confidence,
                                "reference": self.reference,
                                "reference_is_first_in_sweep": self.reference != REFERENCE_VARIANT}
        if self.authors is not None:
            out["authors_released"] = self.authors.to_json()
        if self.baseline is not None:
            out["mean_pose_baseline"] = self.baseline.to_json()
        if self.best is not None:
            out["leading_variant"], out["best_variant"] = self.best.leader, self.best.best
            if self.best.margin is not None:
                out["best_variant_margin"] = {**self.best.margin.as_dict(), "runner_up": self.best.runner_up,
                                              "distinguishable": self.best.margin.excludes_zero}
        return out

    def scores(self) -> dict[str, float | None]:
        """scores.json, the one file `dvc metrics show` lists: each evaluated variant's Mean (evaluate stage, flip
        test; the mean over its seeds), two decimals, small enough for a terminal."""
        out: dict[str, float | None] = {}
        for v in self.variants:
            final = (v.evaluation or {}).get("final")
            if isinstance(final, Mapping):
                mean = finite(final.get("Mean"))
                out[v.name] = None if mean is None else round(mean, 2)
        return out

    def curves_csv(self) -> str:
        """curves.csv: ``step`` and one column per sweep variant of its per-epoch ``val/figure4`` (the mean curve
        over its seeds; blank where a variant has no epoch at that step, or was not trained), so one DVC plot
        overlays the whole sweep."""
        curves: dict[str, dict[float, float]] = {}
        for name in self.sweep:
            found = self.variant(name)
            curves[name] = {e["step"]: e[FIGURE4_KEY] for e in (found.epochs if found else None) or []
                            if math.isfinite(e.get("step", math.nan)) and math.isfinite(e.get(FIGURE4_KEY, math.nan))}
        steps = sorted({step for curve in curves.values() for step in curve})
        lines = [",".join(["step", *self.sweep])]
        for step in steps:
            cells = [f"{curves[name][step]:.4f}" if step in curves[name] else "" for name in self.sweep]
            lines.append(",".join([f"{step:g}", *cells]))
        return "\n".join(lines) + "\n"


def reference_variant(params: ParamsConfig) -> str:
    """HG-Stacked-Int when the sweep has it, else the sweep's first variant (the report stage reads ``sweep``,
    which it declares, nothing else)."""
    if REFERENCE_VARIANT in params.sweep:
        return REFERENCE_VARIANT
    return params.sweep[0] if params.sweep else REFERENCE_VARIANT


def _variant(run: VariantRun, params: ParamsConfig, family: DatasetFamily, by_seed: bool,
             missing: list[str]) -> VariantSummary:
    """``run``'s summary before the bootstrap; a trained directory without any scores is a missing input."""
    scores = final_scores(run, family)
    values = source = None
    if scores is None:
        if run.path.is_dir():
            missing.append(f"variant `{run.name}`: no scores (neither eval/metrics.json nor metrics.json)")
    else:
        values, source = {k: finite(v) for k, v in scores[0].items()}, scores[1]
        if len(run.evaluated) > 1:
            source += f", mean of {len(run.evaluated)} seeds"
    released = params.imports.get(run.name)
    if released is not None and source is not None:  # the release's own numbers are its README's, by its own metric
        source += f"; `{released.path}`, imported from {PORT_PROJECT}"
    evaluated = run.evaluated
    per_joint = (run.eval or {}).get("per_joint")
    return VariantSummary(
        name=run.name, released=None if released is None else released.path,
        seeds=tuple(s.seed for s in evaluated),
        per_seed={str(s.seed): {k: finite(v) for k, v in (s.eval.get("final") or {}).items()} for s in evaluated},
        across_seeds={k: across_seeds([(s.eval.get("final") or {}).get(k) for s in evaluated])
                      for k in BOOTSTRAP_STATISTICS} if evaluated else {},
        final=values, source=source, evaluation=run.eval,
        per_joint=dict(per_joint) if isinstance(per_joint, Mapping) else None,
        intermediate=intermediate_scores(run), supervision=supervision(run), epochs=run.epochs,
        evaluated_epoch=finite((run.eval or {}).get("epoch")), cost_rows=cost_rows(run, family, by_seed))


def _add_intervals(variants: list[VariantSummary], boot: PeopleBootstrap, reference: str) -> None:
    paired = reference in boot.estimates
    for v in variants:
        if v.name in boot.estimates:
            v.interval = dict(boot.intervals(v.name))
            if paired and v.name != reference:
                v.difference = {k: boot.difference(v.name, reference, k) for k in BOOTSTRAP_STATISTICS}


def _measured(score: Callable[[], PCKResult], what: str, missing: list[str],
              family: DatasetFamily) -> Measured | None:
    """``score()`` as :class:`Measured`; a file it cannot read is a missing input (``what`` not scored: why)."""
    try:
        return Measured.of(score(), family)
    except (AnnotationError, ReaderError, ValueError) as err:
        missing.append(f"{what}: {err}")
        return None


def compute_summary(params: ParamsConfig, paths: ReportPaths) -> Summary:
    """The report's :class:`Summary` of the sweep's variants x seeds (what dvc.yaml trains, trained or not), the
    imported models, then any other trained directory under ``paths.models``. Missing inputs are listed in the order
    the report meets them: the runs' files, predictions, the reference, the baseline, the authors' predictions,
    scores, the figures, the examples."""
    family = family_of(params)
    runs = discover_variants(paths.models, list(params.sweep), list(params.seeds), list(params.imports))
    missing = [line for run in runs for line in run.missing]
    valid = ValidPeople(paths.valid)
    boot = bootstrap_variants(runs, family, paths.valid, valid, missing)
    reference = reference_variant(params)
    if boot is not None and reference not in boot.estimates:
        missing.append(f"no paired intervals: the reference variant `{reference}` has no scored predictions")
    annot = paths.raw / "annot"
    baseline = _measured(lambda: score_mean_pose(annot / "train.h5", annot / "valid.h5", family),
                         "mean-pose baseline not computed", missing, family)
    authors = None
    released = family.card.published.released if family.card.published is not None else None
    if released is not None and paths.anchor is None:
        missing.append("authors' released predictions not scored: shared/anchor-data not found "
                       "(set HOURGLASS_ANCHOR_DATA)")
    elif released is not None:
        authors = _measured(lambda: evaluate_files(paths.anchor / released.predictions,
                                                   paths.anchor / released.ground_truth, dataset=released.card),
                            "authors' released predictions not scored", missing, family)
    by_seed = any(len(r.evaluated) > 1 for r in runs)
    variants = [_variant(run, params, family, by_seed, missing) for run in runs]
    if boot is not None:
        _add_intervals(variants, boot, reference)
    if baseline is not None:
        for v in variants:
            mean = (v.final or {}).get("Mean")
            v.margin_over_mean_pose = None if mean is None else mean - baseline.mean
    summary = Summary(
        dataset=params.dataset, family=family, seeds=list(params.seeds), sweep=list(params.sweep),
        variants=variants, reference=reference, valid_path=paths.valid, images_dir=paths.raw / "images",
        provenance=provenance(paths.params, params.dataset, paths.dvc_lock, annot, runs, by_seed),
        bootstrap=None if boot is None else BootstrapInfo(boot.people, boot.resamples, boot.seed, boot.confidence),
        authors=authors, baseline=baseline, missing=missing)
    summary.best = best_variant(summary.scored(), boot)
    summary.ordering = paper_ordering(boot, {v.name: v.supervision for v in variants},
                                      {v.name: finite(v.intermediate[1].get("Mean")) if v.intermediate else None
                                       for v in variants})
    if not any(v.curve for v in variants):
        missing.append(f"Figure 4 is empty: no variant has `{FIGURE4_KEY}` in its epochs.csv")
    if not figure5_variants(summary):
        missing.append("Figure 5 has no variant of ours: no multi-stack variant has per-stack evaluation scores")
    summary.examples = choose_examples(runs, family, params.report.example_variant, params.report.examples, by_seed,
                                       valid, summary.images_dir)
    for kind, absent in summary.examples.absent_images.items():
        if absent:
            missing.append(f"{absent} example image(s) of the {kind} cases not found under `{summary.images_dir}` "
                           "(skeletons drawn on grey)")
    if summary.examples.problem is not None:
        missing.append(f"example figures not drawn: {summary.examples.problem}")
    return summary


def figure5_variants(summary: Summary) -> list[VariantSummary]:
    """The variants of Figure 5: evaluated per stack (first hourglass) and scored."""
    return [v for v in summary.variants if v.intermediate is not None and v.final is not None]
