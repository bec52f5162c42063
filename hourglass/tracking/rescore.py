"""A registered model version scored on the current validation split, by the evaluate stage's own code.

The champion contest needs the champion's predictions on the people the candidate was scored on. A contest keeps each
scored version's ``preds.h5`` with its run (:func:`hourglass.tracking.registry.record_score`); when the split's
digest is the one recorded there, those predictions are reused, otherwise the version's checkpoint is fetched from
MLflow (the pose pyfunc's ``checkpoint`` artifact) and :func:`hourglass.evaluation.stage.evaluate` runs on it into a
temporary folder, exactly as the evaluate stage scored the candidate (same params: flip test, precision, batch size).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from hourglass.config import ParamsConfig
from hourglass.evaluation.stage import PREDICTIONS_NAME, evaluate
from hourglass.io.checkpoint import load_checkpoint
from hourglass.tracking.registry import stored_predictions
from hourglass.weights.source import resolve_checkpoint


class SplitChanged(ValueError):
    """The validation split changed while a model was being scored on it; running the contest again is the fix."""


@dataclass(frozen=True)
class ScoredVersion:
    """A version's predictions on the split ``split_digest``: reused from an earlier contest, or evaluated now."""

    version: str
    run_id: str | None
    preds: Path
    split_digest: str
    rescored: bool
    metrics: dict[str, Any] | None  # the evaluate code's metrics.json when evaluated now


def evaluate_version(name: str, mv: ModelVersion, params: ParamsConfig, tracking_uri: str, data_dir: Path,
                     gt_path: Path, workdir: Path) -> dict[str, Any]:
    """Fetch ``mv``'s checkpoint and run the evaluate stage's code on it into ``workdir/eval`` (no test-set
    submission); returns its metrics (``preds.h5`` is beside them)."""
    model_dir = workdir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = resolve_checkpoint(f"models:/{name}/{mv.version}", model_dir, tracking_uri)
    variant = mv.tags.get("variant") or load_checkpoint(checkpoint).get("variant") or f"{name}-v{mv.version}"
    return evaluate(params, variant, checkpoint, data_dir, gt_path, workdir / "eval", progress=False,
                    submission=False)


def score_version(client: MlflowClient, name: str, mv: ModelVersion, params: ParamsConfig, tracking_uri: str,
                  data_dir: Path, gt_path: Path, split_digest: str, workdir: Path) -> ScoredVersion:
    """``mv``'s predictions on the split ``split_digest``: its stored ones when a contest recorded them for this
    digest, else evaluated now (the caller records them with :func:`hourglass.tracking.registry.record_score`)."""
    stored = stored_predictions(client, tracking_uri, mv, split_digest, workdir / "stored")
    if stored is not None:
        return ScoredVersion(str(mv.version), mv.run_id, stored, split_digest, False, None)
    metrics = evaluate_version(name, mv, params, tracking_uri, data_dir, gt_path, workdir)
    if metrics.get("split_digest") != split_digest:
        raise SplitChanged(f"{data_dir}: the validation split changed while {name!r} version {mv.version} was being "
                           f"scored (digest {split_digest[:12]} before, {str(metrics.get('split_digest'))[:12]} "
                           "after); run the contest again")
    return ScoredVersion(str(mv.version), mv.run_id, workdir / "eval" / PREDICTIONS_NAME, split_digest, True, metrics)
