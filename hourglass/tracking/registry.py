"""The MLflow model-registry alias that names the served model, and the rule that moves it.

A retraining run registers a new model version (the *candidate*). It takes the alias (``champion`` by default) only
when, scored with the champion on the same validation people, it is better beyond doubt: the paired bootstrap
interval of the difference (candidate minus champion) excludes 0 in the right direction at ``flows.confidence``, and
the difference itself is at least ``flows.min_improvement`` points. A tie, a difference the people cannot tell apart
or a gain below the margin keeps the champion (:func:`contest_rule`). No champion yet: the candidate is promoted.

Each decision is written as tags on the candidate's model version and its run only (:func:`settle_contest`); the
version that is serving keeps its tags, so the reason it was promoted stays readable. A version's score on a split
(its predictions, reused by later contests on that split) is recorded by :func:`record_score`.

Versions of different dataset cards are never compared (:func:`check_same_card`): the registered name already has
one model per card (:func:`hourglass.tracking.store.registered_name`), and the card's digest, keypoints and metric
that each version records at registration must also agree.

No Prefect, no evaluation here: :mod:`hourglass.tracking.champion` scores both models and calls these functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

# Decision tags, written on the candidate's model version and on its run.
TAG_DECISION = "champion_decision"  # "promoted" | "kept"
TAG_CANDIDATE_SCORE = "candidate_score"
TAG_CHAMPION_SCORE = "champion_score"  # the incumbent's score on the same split, "none" when there was no champion
TAG_CHAMPION_VERSION = "champion_version"  # the incumbent's version, "none" when there was none
TAG_METRIC = "champion_metric"
TAG_REASON = "champion_reason"
TAG_SPLIT = "champion_split_digest"  # the validation split both were scored on
TAG_DIFFERENCE = "champion_difference"  # "+0.30 [-1.20, 1.80] at 95 %", "none" when there was no champion
# A version's score on one split, written on any version a contest scored (the candidate; a re-scored champion).
TAG_SCORE_SPLIT = "contest.split_digest"
TAG_SCORE = "contest.score"
TAG_SCORE_METRIC = "contest.metric"
TAG_SCORE_PREDS = "contest.preds"  # the run artifact holding its preds.h5 on that split
SCORE_ARTIFACT_DIR = "contest"
# What a version says it was trained on (hourglass.tracking.store.version_tags); all three must agree to compete.
CARD_TAGS = ("dataset_card", "keypoints", "metric")


class RegistryError(RuntimeError):
    """The registry lacks what a decision needs, or two versions must not be compared; the message says which."""


@dataclass(frozen=True)
class Difference:
    """Candidate minus champion on all people, and its paired bootstrap interval at ``confidence`` (a fraction)."""

    estimate: float
    low: float
    high: float
    confidence: float
    people: int

    def describe(self) -> str:
        """``+0.30 [-1.20, 1.80] at 95 %``."""
        return f"{self.estimate:+.2f} [{self.low:.2f}, {self.high:.2f}] at {self.confidence * 100:g} %"


@dataclass(frozen=True)
class Decision:
    """One champion contest, as it is tagged on the candidate and appended to the champion history."""

    model: str
    alias: str
    metric: str
    higher_is_better: bool
    promoted: bool
    candidate_version: str
    candidate_score: float
    champion_version: str | None  # the version that held the alias before the decision
    champion_score: float | None  # scored on ``split_digest``, as the candidate
    reason: str
    decided_at: str  # ISO 8601, UTC
    split_digest: str
    difference: Difference | None  # None when there was no champion
    min_improvement: float

    @property
    def serving_version(self) -> str | None:
        """The version the alias points at after the decision."""
        return self.candidate_version if self.promoted else self.champion_version

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields plus ``decision`` ("promoted"/"kept") and ``serving_version``."""
        out = asdict(self)
        return {**out, "decision": "promoted" if self.promoted else "kept", "serving_version": self.serving_version}


def now() -> str:
    """The time a decision is stamped with: ISO 8601, seconds, UTC."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def model_version(client: MlflowClient, name: str, version: str | int) -> ModelVersion:
    """Version ``version`` of ``name``, or an error naming both."""
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as err:
        message = f"model registry: {name!r} version {version} does not exist ({err.message})"
        raise RegistryError(message) from None


def alias_holder(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version ``alias`` of ``name`` points at; None when no version holds it (or the name has no versions)."""
    try:
        aliases = client.get_registered_model(name).aliases or {}
    except MlflowException as err:
        raise RegistryError(f"model registry: {name!r} is not a registered model ({err.message})") from None
    return str(aliases[alias]) if alias in aliases else None


def run_metric(client: MlflowClient, run_id: str, metric: str) -> float | None:
    """The latest value of ``metric`` logged to run ``run_id``, or None when the run never logged it."""
    value = client.get_run(run_id).data.metrics.get(metric)
    return None if value is None else float(value)


def version_score(client: MlflowClient, name: str, version: str | int, metric: str) -> float | None:
    """``metric`` from the run that produced version ``version`` of ``name`` (None if the run lacks it)."""
    mv = model_version(client, name, version)
    if not mv.run_id:
        raise RegistryError(
            f"model registry: {name!r} version {version} was not registered from a run, so it has no "
            "validation metrics; register models from an MLflow run"
        )
    return run_metric(client, mv.run_id, metric)


def card_of(tags: Mapping[str, str]) -> dict[str, str | None]:
    """The :data:`CARD_TAGS` of a version (None where it records none)."""
    return {key: tags.get(key) for key in CARD_TAGS}


def _describe_card(card: Mapping[str, str | None]) -> str:
    keypoints = card.get("keypoints")
    count = f"{len(keypoints.split(','))} keypoints" if keypoints else "keypoints unknown"
    return f"card {card.get('dataset_card') or 'unknown'}, {count}, {card.get('metric') or 'metric unknown'}"


def check_same_card(name: str, candidate: ModelVersion, champion: ModelVersion) -> None:
    """Refuse a contest between versions trained on different dataset cards (digest, keypoints or metric differ,
    or either version does not record them): their scores measure different things."""
    mine, theirs = card_of(candidate.tags), card_of(champion.tags)
    unknown = [f"version {mv.version}" for mv, card in ((candidate, mine), (champion, theirs))
               if any(v is None for v in card.values())]
    differ = [key for key in CARD_TAGS if mine[key] != theirs[key]]
    if unknown or differ:
        why = (f"{' and '.join(unknown)} records no {'/'.join(CARD_TAGS)} tags" if unknown
               else f"their {', '.join(differ)} differ")
        raise RegistryError(
            f"model registry: {name!r} candidate version {candidate.version} ({_describe_card(mine)}) and champion "
            f"version {champion.version} ({_describe_card(theirs)}) are not compared: {why}. The champion stays; "
            "a model of another card competes under its own registered name, or move the alias by hand"
        )


def contest_rule(candidate: float, champion: float | None, difference: Difference | None, *, metric: str,
                 higher_is_better: bool, min_improvement: float) -> tuple[bool, str]:
    """(promote?, why). ``champion`` None: no model held the alias. Otherwise both scores are of the same people and
    ``difference`` is candidate minus champion with its paired interval; promotion needs the interval to exclude 0
    in the better direction and a gain of at least ``min_improvement``. Ties and non-finite candidates never win."""
    if not math.isfinite(candidate):
        return False, f"candidate {metric} is {candidate}, not a finite number"
    if champion is None:
        return True, "no model held the alias yet"
    if not math.isfinite(champion):
        return True, f"champion {metric} is {champion} on this split, not a finite number"
    if difference is None:
        raise RegistryError("a contest with a champion needs the paired difference of the two scores")
    sign = 1.0 if higher_is_better else -1.0
    gain = sign * (candidate - champion)
    low, high = sorted((sign * difference.low, sign * difference.high))
    said = f"difference {difference.describe()} over {difference.people} people"
    if gain == 0:
        return False, f"ties the champion ({metric} {candidate:.4g}); ties keep the champion"
    if gain < 0 and high < 0:
        return False, f"worse than the champion: {said}"
    if not low > 0:  # a NaN interval (no resample scored) is not distinguishable either
        return False, f"not distinguishable: {said}"
    if gain < min_improvement:
        return False, f"gain {gain:.2f} below flows.min_improvement {min_improvement:g}: {said}"
    return True, f"beats the champion by at least flows.min_improvement {min_improvement:g}: {said}"


def _fmt(score: float | None) -> str:
    return "none" if score is None else repr(float(score))


def settle_contest(client: MlflowClient, name: str, candidate: ModelVersion, candidate_score: float,
                   champion_version: str | None, champion_score: float | None, difference: Difference | None, *,
                   metric: str, alias: str, higher_is_better: bool, min_improvement: float,
                   split_digest: str) -> Decision:
    """Apply :func:`contest_rule`, point ``alias`` at the candidate when it wins, and tag the decision on the
    candidate's version and run (never on the champion's)."""
    promoted, reason = contest_rule(float(candidate_score), champion_score, difference, metric=metric,
                                    higher_is_better=higher_is_better, min_improvement=min_improvement)
    decision = Decision(
        model=name, alias=alias, metric=metric, higher_is_better=higher_is_better, promoted=promoted,
        candidate_version=str(candidate.version), candidate_score=float(candidate_score),
        champion_version=champion_version, champion_score=champion_score, reason=reason, decided_at=now(),
        split_digest=split_digest, difference=difference, min_improvement=min_improvement,
    )
    if promoted:
        client.set_registered_model_alias(name, alias, decision.candidate_version)
    tags = {
        TAG_DECISION: "promoted" if promoted else "kept",
        TAG_CANDIDATE_SCORE: _fmt(decision.candidate_score),
        TAG_CHAMPION_SCORE: _fmt(champion_score),
        TAG_CHAMPION_VERSION: champion_version or "none",
        TAG_METRIC: metric,
        TAG_REASON: reason,
        TAG_SPLIT: split_digest,
        TAG_DIFFERENCE: difference.describe() if difference is not None else "none",
    }
    _tag(client, name, candidate, tags)
    return decision


def _tag(client: MlflowClient, name: str, mv: ModelVersion, tags: Mapping[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, str(mv.version), key, value)
        if mv.run_id:
            client.set_tag(mv.run_id, key, value)


def contested_before(mv: ModelVersion, champion_version: str | None, split_digest: str) -> str | None:
    """Why ``mv`` needs no contest now: it already competed against ``champion_version`` on this split (its decision
    tags say so); None when it did not."""
    tags = mv.tags
    if tags.get(TAG_SPLIT) == split_digest and tags.get(TAG_CHAMPION_VERSION) == (champion_version or "none"):
        return (f"version {mv.version} already competed against "
                f"{'version ' + champion_version if champion_version else 'no champion'} on this split "
                f"({tags.get(TAG_DECISION, 'undecided')}: {tags.get(TAG_REASON, 'no reason recorded')})")
    return None


def stored_predictions(client: MlflowClient, tracking_uri: str, mv: ModelVersion, split_digest: str,
                       workdir: Path) -> Path | None:
    """The preds.h5 version ``mv`` was scored with on ``split_digest`` (downloaded into ``workdir``), when a contest
    recorded one; None when it was scored on another split, never, or the artifact is gone."""
    tags = mv.tags
    if tags.get(TAG_SCORE_SPLIT) != split_digest or not tags.get(TAG_SCORE_PREDS) or not mv.run_id:
        return None
    import mlflow.artifacts

    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=tags[TAG_SCORE_PREDS],
                                                        dst_path=str(workdir), tracking_uri=tracking_uri))
    except (MlflowException, OSError):
        return None


def record_score(client: MlflowClient, name: str, mv: ModelVersion, split_digest: str, preds: Path, metric: str,
                 score: float) -> None:
    """Keep version ``mv``'s predictions on ``split_digest`` (an artifact of its run) and tag its score there, so a
    later contest on the same split reuses them instead of evaluating the model again."""
    if not mv.run_id:
        raise RegistryError(f"model registry: {name!r} version {mv.version} has no run to keep its predictions in")
    folder = f"{SCORE_ARTIFACT_DIR}/{split_digest[:16]}"
    client.log_artifact(mv.run_id, str(preds), artifact_path=folder)
    tags = {TAG_SCORE_SPLIT: split_digest, TAG_SCORE_PREDS: f"{folder}/{preds.name}", TAG_SCORE_METRIC: metric,
            TAG_SCORE: _fmt(score)}
    for key, value in tags.items():
        client.set_model_version_tag(name, str(mv.version), key, value)
