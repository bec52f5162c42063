"""Which trained run competes for the MLflow ``champion`` alias, and the record of each contest.

The trainer leaves ``models/<variant>/seed-<n>/mlflow.json`` = ``{"run_id", "model_uri", "registered_model",
"version"}`` (optionally ``"tracking_uri"``) and ``models/<variant>/seed-<n>/metrics.json``; that is the whole
contract with the training stage. With several training seeds, the champion variant's seed with the best champion
metric is the candidate (ties: the first in ``seeds``); ``reports/champion.json`` and the markdown record name it
and list every seed's score. The best of several seeds is an optimistic estimate of the variant's score (the
report's mean +- sd is the expected one); what the alias serves is the best model trained. The rule that moves the
alias is :func:`hourglass.registry.promote_if_better`. No Prefect here: the retraining flow and
``python -m pipeline.flows promote`` use the same functions.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from hourglass.io.atomic import write_json_atomic
from hourglass.layout import model_dir
from hourglass.registry import Decision, promote_if_better, version_score

DECISION_FILE = Path("reports") / "champion.json"


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


def _cell(score: float | None) -> str:
    return "—" if score is None else (f"{score:.4f}" if math.isfinite(score) else str(score))


def mlflow_links(decision: Decision, run_id: str | None, tracking_uri: str | None,
                 experiment_id: str | None = None) -> str:
    """Where the candidate lives in MLflow: links into the UI when the store is a server, else the ids and the
    UI's routes for ``mlflow ui`` on that store."""
    model = f"models:/{decision.model}/{decision.candidate_version}"
    run_route = f"#/experiments/{experiment_id or 0}/runs/{run_id}" if run_id else None
    version_route = f"#/models/{decision.model}/versions/{decision.candidate_version}"
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        base = tracking_uri.rstrip("/")
        run = f"[run {run_id}]({base}/{run_route})" if run_id else "run unknown"
        return f"**MLflow:** {run}, [model version `{model}`]({base}/{version_route})"
    return (f"**MLflow:** run `{run_id or 'unknown'}`, model version `{model}` in `{tracking_uri}` "
            f"(`mlflow ui --backend-store-uri {tracking_uri}`, then `{version_route}`)")


def decision_markdown(decision: Decision, variant: str, run_id: str | None = None,
                      tracking_uri: str | None = None, experiment_id: str | None = None,
                      seed_scores: Mapping[int, float] | None = None, seed: int | None = None) -> str:
    """The Prefect artifact: both scores side by side, the verdict, which seed competed (``seed`` of
    ``seed_scores``, every seed's score), and where the candidate is in MLflow."""
    verdict = "promoted" if decision.promoted else "kept the current champion"
    seeds = []
    if seed is not None and seed_scores:
        listed = ", ".join(f"seed {s}: {_cell(v)}" for s, v in seed_scores.items())
        seeds = ["", f"**Seed:** {seed}, the best of the variant's {len(seed_scores)} seed(s) by {decision.metric} "
                     f"({listed}).", ""]
    candidate = f"`{variant}`" if seed is None else f"`{variant}` seed {seed}"
    return "\n".join([
        f"## `{decision.model}@{decision.alias}`: {verdict}",
        "",
        f"| | version | {decision.metric} |",
        "|---|---|---|",
        f"| candidate ({candidate}) | {decision.candidate_version} | {_cell(decision.candidate_score)} |",
        f"| champion before | {decision.champion_version or '—'} | {_cell(decision.champion_score)} |",
        *seeds,
        "",
        f"**Reason:** {decision.reason}. ",
        f"**Serving now:** version {decision.serving_version or '—'} "
        f"({'higher' if decision.higher_is_better else 'lower'} is better; decided {decision.decided_at}).",
        "",
        mlflow_links(decision, run_id, tracking_uri, experiment_id),
    ])


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
                     log: logging.Logger | logging.LoggerAdapter) -> Candidate:
    """The seed of ``variant`` with the best ``metric`` (ties and all-NaN: the first of ``seeds``); every seed
    needs its ``models/<variant>/seed-<n>/mlflow.json``."""
    if not seeds:
        raise ChampionError(f"variant {variant!r}: no training seeds to choose the champion candidate from")
    records, scores = {}, {}
    for seed in seeds:
        run_dir = model_dir(variant, seed, repo / "models")
        records[seed] = read_training_record(run_dir / "mlflow.json")
        scores[seed] = _seed_score(repo, run_dir, records[seed], metric, log)
    best = seeds[0]
    for seed in seeds[1:]:
        score, leader = scores[seed], scores[best]
        if math.isfinite(score) and (not math.isfinite(leader) or
                                     (score > leader if higher_is_better else score < leader)):
            best = seed
    if len(seeds) > 1:
        log.info("%s: seed %d competes for the alias (%s %s; seeds: %s)", variant, best, metric, _cell(scores[best]),
                 ", ".join(f"{s}: {_cell(v)}" for s, v in scores.items()))
    return Candidate(variant, best, records[best], scores[best], scores)


def decide_champion(repo: Path, variant: str, metric: str, higher_is_better: bool,
                    log: logging.Logger | logging.LoggerAdapter, seeds: Sequence[int]) -> tuple[Decision, Candidate]:
    """Let the best of ``variant``'s ``seeds`` (its registered model) compete for ``champion``; writes
    reports/champion.json with the decision, the seed that competed and every seed's score."""
    candidate = choose_candidate(repo, variant, seeds, metric, higher_is_better, log)
    record = candidate.record
    client = MlflowClient(tracking_uri=tracking_uri_for(repo, record))
    decision = promote_if_better(
        client, record.registered_model, record.version, metric, higher_is_better=higher_is_better,
        candidate_score=candidate.score,
    )
    record_json = {**decision.to_dict(), "variant": variant, "seed": candidate.seed, "run_id": record.run_id,
                   "seed_scores": {str(s): v for s, v in candidate.seed_scores.items()}}
    write_json_atomic(repo / DECISION_FILE, record_json, allow_nan=True)
    return decision, candidate
