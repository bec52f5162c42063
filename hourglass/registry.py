"""The MLflow model-registry alias that names the served model, and the rule that moves it.

A retraining run registers a new model version (the *candidate*). It takes the alias (``champion`` by default)
only when its validation score strictly beats the current champion's, so a rerun that ties or regresses never
replaces a model that is already serving. Every decision is written back to the registry as tags on the
candidate's model version and on its run, so the MLflow UI shows why a version was or was not promoted.

No Prefect here: :mod:`hourglass.champion` chooses the candidate for the retraining flow (``pipeline.flows``)
and for a person at a prompt, and both call :func:`promote_if_better`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

# Tag keys written on the candidate's model version and on its run.
TAG_DECISION = "champion_decision"  # "promoted" | "kept"
TAG_CANDIDATE_SCORE = "candidate_score"
TAG_CHAMPION_SCORE = "champion_score"  # the incumbent's score, "none" when there was no champion
TAG_CHAMPION_VERSION = "champion_version"  # the incumbent's version, "none" when there was none
TAG_METRIC = "champion_metric"
TAG_REASON = "champion_reason"


class RegistryError(RuntimeError):
    """The registry lacks what a decision needs (a version, a metric); the message names it and the fix."""


@dataclass(frozen=True)
class Decision:
    """One champion contest, in the form that is tagged, logged and written to reports/champion.json."""

    model: str
    alias: str
    metric: str
    higher_is_better: bool
    promoted: bool
    candidate_version: str
    candidate_score: float
    champion_version: str | None  # the version that held the alias before the decision
    champion_score: float | None
    reason: str
    decided_at: str  # ISO 8601, UTC

    @property
    def serving_version(self) -> str | None:
        """The version the alias points at after the decision."""
        return self.candidate_version if self.promoted else self.champion_version

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields plus ``serving_version``."""
        return {**asdict(self), "serving_version": self.serving_version}


def _fmt(score: float | None) -> str:
    return "none" if score is None else repr(float(score))


def run_metric(client: MlflowClient, run_id: str, metric: str) -> float | None:
    """The latest value of ``metric`` logged to run ``run_id``, or None when the run never logged it."""
    value = client.get_run(run_id).data.metrics.get(metric)
    return None if value is None else float(value)


def _model_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, version)
    except MlflowException as err:
        message = f"model registry: {name!r} version {version} does not exist ({err.message})"
        raise RegistryError(message) from None


def version_score(client: MlflowClient, name: str, version: str | int, metric: str) -> float | None:
    """``metric`` from the run that produced version ``version`` of ``name`` (None if the run lacks it)."""
    mv = _model_version(client, name, str(version))
    if not mv.run_id:
        raise RegistryError(
            f"model registry: {name!r} version {version} was not registered from a run, so it has no "
            "validation metrics to compare; register models from an MLflow run"
        )
    return run_metric(client, mv.run_id, metric)


def _champion_score(client: MlflowClient, name: str, version: str, metric: str) -> float:
    """The incumbent's score: its run's metric, else the score recorded when it won on ``metric``."""
    score = version_score(client, name, version, metric)
    if score is not None:
        return score
    tags = _model_version(client, name, version).tags
    if tags.get(TAG_METRIC) == metric and TAG_CANDIDATE_SCORE in tags:
        return float(tags[TAG_CANDIDATE_SCORE])
    raise RegistryError(
        f"model registry: the current champion, {name!r} version {version}, has no {metric!r} in its "
        f"run's metrics nor a {TAG_CANDIDATE_SCORE!r} tag recorded for that metric, so it cannot be "
        "compared; log the metric to its run, or move the alias by hand (set_registered_model_alias)"
    )


def _contest(
    candidate: float,
    champion: float | None,
    champion_version: str | None,
    candidate_version: str,
    metric: str,
    higher_is_better: bool,
) -> tuple[bool, str]:
    """(promote?, why). Ties and non-finite candidates never win: a swap must be justified by the metric."""
    direction = "higher" if higher_is_better else "lower"
    scores = f"candidate {metric} {candidate:.6g}"
    if champion_version == candidate_version:
        return False, f"version {candidate_version} already holds the alias"
    if not math.isfinite(candidate):
        return False, f"candidate {metric} is {candidate}, not a finite number"
    if champion_version is None:
        return True, "no model held the alias yet"
    if champion is None or not math.isfinite(champion):
        return True, f"champion {metric} is {champion}, not a finite number"
    if (candidate > champion) if higher_is_better else (candidate < champion):
        return True, f"{scores} beats champion {champion:.6g} ({direction} is better)"
    if candidate == champion:
        return False, f"{scores} ties champion {champion:.6g}; ties keep the champion"
    return False, f"{scores} does not beat champion {champion:.6g} ({direction} is better)"


def promote_if_better(
    client: MlflowClient,
    name: str,
    candidate_version: str | int,
    metric: str,
    alias: str = "champion",
    higher_is_better: bool = True,
    candidate_score: float | None = None,
) -> Decision:
    """Point ``alias`` of model ``name`` at ``candidate_version`` if its ``metric`` beats the champion's.

    Scores come from the runs that produced the versions; ``candidate_score`` stands in for the candidate's
    run metric (for a trainer that wrote it only to a file). No champion yet: promote. Tie: keep. The decision
    is tagged on the candidate's model version and run before it is returned.
    """
    version = str(candidate_version)
    mv = _model_version(client, name, version)
    if candidate_score is None:
        candidate_score = version_score(client, name, version, metric)
        if candidate_score is None:
            raise RegistryError(
                f"model registry: {name!r} version {version}: its run {mv.run_id} logged no {metric!r} "
                "metric; log it during training/evaluation or pass candidate_score"
            )
    aliases = client.get_registered_model(name).aliases or {}
    champion_version = str(aliases[alias]) if alias in aliases else None
    champion_score: float | None = None
    if champion_version == version:
        champion_score = float(candidate_score)
    elif champion_version is not None:
        champion_score = _champion_score(client, name, champion_version, metric)

    promoted, reason = _contest(
        float(candidate_score), champion_score, champion_version, version, metric, higher_is_better
    )
    if promoted:
        client.set_registered_model_alias(name, alias, version)
    decision = Decision(
        model=name,
        alias=alias,
        metric=metric,
        higher_is_better=higher_is_better,
        promoted=promoted,
        candidate_version=version,
        candidate_score=float(candidate_score),
        champion_version=champion_version,
        champion_score=champion_score,
        reason=reason,
        decided_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    _record(client, decision, mv.run_id)
    return decision


def _record(client: MlflowClient, decision: Decision, run_id: str | None) -> None:
    """Tag the candidate's model version and run, so the registry itself explains each alias decision."""
    tags = {
        TAG_DECISION: "promoted" if decision.promoted else "kept",
        TAG_CANDIDATE_SCORE: _fmt(decision.candidate_score),
        TAG_CHAMPION_SCORE: _fmt(decision.champion_score),
        TAG_CHAMPION_VERSION: decision.champion_version or "none",
        TAG_METRIC: decision.metric,
        TAG_REASON: decision.reason,
    }
    for key, value in tags.items():
        client.set_model_version_tag(decision.model, decision.candidate_version, key, value)
        if run_id:
            client.set_tag(run_id, key, value)
