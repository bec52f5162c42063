"""Which trained run competes for the MLflow ``champion`` alias: every seed's training record
(``models/<variant>/seed-<n>/mlflow.json``) and score, and the best seed of the champion variant
(:func:`choose_candidate`). The contest itself is :mod:`hourglass.tracking.champion`."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from hourglass.layout import model_dir, stage_item
from hourglass.tracking.registry import (
    version_score,
)


class ChampionError(RuntimeError):
    """The trained runs lack what the contest needs (mlflow.json, a metric); the message says which."""


@dataclass(frozen=True)
class TrainingRecord:
    """``models/<variant>/seed-<n>/mlflow.json``, written by the training stage after it registered the model."""

    run_id: str
    model_uri: str
    registered_model: str
    version: str
    tracking_uri: str | None


def read_training_record(path: Path) -> TrainingRecord:
    """Parse and check mlflow.json; a missing or partial file is an error that names the key."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        message = f"{path}: not found; the training stage writes it after registering the model"
        raise ChampionError(message) from None
    except json.JSONDecodeError as err:
        raise ChampionError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(raw, dict):
        raise ChampionError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    missing = [key for key in ("run_id", "model_uri", "registered_model", "version") if not raw.get(key)]
    if missing:
        raise ChampionError(
            f"{path}: missing or empty key(s) {', '.join(missing)}; the champion needs a registered model "
            "(params mlflow.log_model true, mlflow.registered_model set, and MLflow reachable while training)"
        )
    return TrainingRecord(
        run_id=str(raw["run_id"]),
        model_uri=str(raw["model_uri"]),
        registered_model=str(raw["registered_model"]),
        version=str(raw["version"]),
        tracking_uri=str(raw["tracking_uri"]) if raw.get("tracking_uri") else None,
    )


def tracking_uri_for(repo: Path, record: TrainingRecord) -> str:
    """The store the trainer used: mlflow.json's own, else ``MLFLOW_TRACKING_URI``, else ``<repo>/mlflow.db``.

    DVC runs stages with the repo as working directory, where MLflow's default SQLite store lives.
    """
    return record.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo / 'mlflow.db'}"


def file_metric(path: Path, metric: str) -> float | None:
    """``metric`` from a DVC metrics JSON: a top-level key or a dotted path into objects; null is NaN."""
    if not path.is_file():
        return None
    try:
        node: Any = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ChampionError(f"{path}: not valid JSON: {err}") from None
    rest = metric
    while not (isinstance(node, dict) and rest in node):  # a key may itself hold dots: Mean_at_0.1
        head, dot, rest = rest.partition(".")
        if not dot or not isinstance(node, dict) or head not in node:
            return None
        node = node[head]
    node = node[rest]
    if node is None:  # how metrics.json spells a non-finite value; such a candidate never wins
        return math.nan
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        raise ChampionError(f"{path}: {metric!r} is {node!r}, not a number")
    return float(node)


def score_cell(score: float | None) -> str:
    """A score as the records print it: four decimals, "—" when there is none."""
    return "—" if score is None else (f"{score:.4f}" if math.isfinite(score) else str(score))


@dataclass(frozen=True)
class Candidate:
    """The seed of the champion variant that competes, its training record, and every seed's score."""

    variant: str
    seed: int
    record: TrainingRecord
    score: float
    seed_scores: dict[int, float]


def _seed_score(repo: Path, run_dir: Path, record: TrainingRecord, metric: str,
                log: logging.Logger | logging.LoggerAdapter) -> float:
    """``metric`` of one trained seed: its registered version's run, else the files its stages wrote."""
    client = MlflowClient(tracking_uri=tracking_uri_for(repo, record))
    score = version_score(client, record.registered_model, record.version, metric)
    if score is not None:
        return score
    # The files the stages wrote: training's metrics.json (val/...), the evaluate stage's names (eval/...).
    sources = [(run_dir / "metrics.json", metric), (run_dir / "eval" / "metrics.json", f"mlflow_metrics.{metric}")]
    for path, key in sources:
        score = file_metric(path, key)
        if score is not None:
            log.info("run %s has no %r metric; using %s", record.run_id, metric, path)
            return score
    raise ChampionError(
        f"metric {metric!r} (params flows.champion_metric) is neither in MLflow run {record.run_id} "
        f"of {record.registered_model!r} version {record.version} nor in "
        f"{' or '.join(str(path) for path, _ in sources)}"
    )


def choose_candidate(repo: Path, variant: str, seeds: Sequence[int], metric: str, higher_is_better: bool,
                     log: logging.Logger | logging.LoggerAdapter, registered: str | None = None) -> Candidate:
    """The seed of ``variant`` with the best ``metric`` (ties and all-NaN: the first of ``seeds``); every seed
    needs its ``models/<variant>/seed-<n>/mlflow.json``, naming ``registered`` as its registered model when given."""
    if not seeds:
        raise ChampionError(f"variant {variant!r}: no training seeds to choose the champion candidate from")
    records, scores = {}, {}
    for seed in seeds:
        run_dir = model_dir(variant, seed, repo / "models")
        records[seed] = read_training_record(run_dir / "mlflow.json")
        if registered is not None and records[seed].registered_model != registered:
            raise ChampionError(
                f"{run_dir / 'mlflow.json'}: the model was registered as {records[seed].registered_model!r}, but "
                f"runs on this dataset register as {registered!r} (one model per dataset card: "
                f"<mlflow.registered_model>-<dataset>); train it again (dvc repro -f train@{stage_item(variant, seed)})"
            )
        scores[seed] = _seed_score(repo, run_dir, records[seed], metric, log)
    best = seeds[0]
    for seed in seeds[1:]:
        score, leader = scores[seed], scores[best]
        if math.isfinite(score) and (not math.isfinite(leader) or
                                     (score > leader if higher_is_better else score < leader)):
            best = seed
    if len(seeds) > 1:
        log.info("%s: seed %d competes for the alias (%s %s; seeds: %s)", variant, best, metric,
                 score_cell(scores[best]), ", ".join(f"{s}: {score_cell(v)}" for s, v in scores.items()))
    return Candidate(variant, best, records[best], scores[best], scores)
