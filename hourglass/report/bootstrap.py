"""Uncertainty: a bootstrap over the validation people, and each variant scored on it from its seeds' predictions.

A variant's Mean and Figure-4 accuracy are statistics of the validation people it was scored on; another draw of
people would give other numbers. :class:`PeopleBootstrap` resamples the people with replacement (a fixed seed, so
the report is reproducible) and recomputes both statistics for every resample, giving a percentile interval.

The resampled people are drawn once and shared by every variant, so the difference between two variants is
computed on the same people in each resample: a *paired* interval, much narrower than the two single intervals
suggest when the variants succeed and fail on the same people.

A variant trained from several seeds is scored by its seed-averaged statistic: on every resample each seed's
statistic is computed on the same resampled people and the seeds' values are averaged (and on all people, the
estimate is the mean of the seeds' scores). Its interval is that average's, paired differences likewise; the
intervals still cover the choice of people only, the spread across seeds is reported beside them.

Each resample is cheap: a person contributes, per joint, one "correct" count (0 or 1) and one "annotated" count
(0 or 1). Resample ``b`` takes person ``i`` ``w[b, i]`` times, so its per-joint totals are ``w @ counts``; the
statistics follow from those totals exactly as :mod:`hourglass.metrics` computes them from the full set:

* ``Mean``: correct over annotated, pooled over the family's mean joints (joint-count weighted; MPII leaves out
  pelvis and thorax);
* ``figure4``: the unweighted mean of the per-joint accuracies over the family's Figure-4 joints.

The contract, relied on by tests that recompute an interval independently: the scored people are the rows with at
least one annotated joint, in file order; resample ``b`` is row ``b`` of
``numpy.random.default_rng(seed).integers(0, people, size=(resamples, people))`` (indices into the scored people);
an interval is ``numpy.percentile`` of the resampled statistic at ``(100 - confidence) / 2`` and
``(100 + confidence) / 2`` (linear interpolation, resamples with an undefined statistic left out).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hourglass.family import DatasetFamily
from hourglass.io.annotations import AnnotationError, Annotations
from hourglass.io.eval_files import ReaderError, read_predictions
from hourglass.metrics import normalized_errors, within
from hourglass.report.inputs import VariantRun, finite

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



def bootstrap_variants(runs: Sequence[VariantRun], family: DatasetFamily, valid_path: Path,
                       load_valid: Callable[[], Annotations], missing: list[str]) -> PeopleBootstrap | None:
    """Score every evaluated seed's ``eval/preds.h5`` on the validation people (``load_valid``: the annotation file
    ``valid_path`` the predictions' rows follow) and resample them: a variant gets an interval when each of its
    evaluated seeds has predictions. What could not be scored is appended to ``missing``; None when nothing was."""
    scorable = []
    for run in runs:
        lacking = [s for s in run.evaluated if not s.preds_path.is_file()]
        for seed in lacking:
            missing.append(f"variant `{seed.label}`: no 95 % interval, `{seed.preds_path}` not found")
        if run.evaluated and not lacking:
            scorable.append(run)
    if not scorable:
        return None
    try:
        gt = load_valid()
        boot = PeopleBootstrap(family, gt.annotated)
    except (AnnotationError, ValueError) as err:
        missing.append(f"no 95 % intervals: `{valid_path}`: {err}")
        return None
    for run in scorable:
        masks = []
        try:
            for seed in run.evaluated:
                pred = read_predictions(seed.preds_path, joints=gt.num_joints, people=len(gt))
                if pred.shape != gt.joints.shape:
                    raise ReaderError(f"`{seed.preds_path}` has shape {pred.shape}, the validation annotations "
                                      f"{gt.joints.shape}")
                masks.append(correct_joints(pred, gt.joints, gt.annotated, gt.normalize, family.threshold))
            boot.add(run.name, masks)
        except (ReaderError, ValueError) as err:
            missing.append(f"variant `{run.name}`: no 95 % interval: {err}")
            continue
        # the intervals are of the predictions: say so when a seed's predictions do not score as its record says
        for seed, estimates in zip(run.evaluated, boot.seed_estimates[run.name], strict=True):
            final = (seed.eval or {}).get("final")
            for statistic, value in (final.items() if isinstance(final, Mapping) else ()):
                value = finite(value)
                if statistic in estimates and value is not None and abs(value - estimates[statistic]) > 0.05:
                    missing.append(f"variant `{seed.label}`: `{seed.preds_path}` scores {statistic} "
                                   f"{estimates[statistic]:.2f} %, its eval/metrics.json {value:.2f} %; the "
                                   "intervals are of the predictions")
    return boot if boot.estimates else None
