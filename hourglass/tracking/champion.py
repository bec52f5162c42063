"""Which trained run competes for the MLflow ``champion`` alias, the fair contest it competes in, and its record.

The trainer leaves ``models/<variant>/seed-<n>/mlflow.json`` = ``{"run_id", "model_uri", "registered_model",
"version"}`` (optionally ``"tracking_uri"``) and the evaluate stage ``models/<variant>/seed-<n>/eval/metrics.json``
and ``preds.h5``; that is the whole contract with the pipeline. With several training seeds, the champion variant's
seed with the best champion metric is the candidate (ties: the first in ``seeds``). The best of several seeds is an
optimistic estimate of the variant's score (the report's mean +- sd is the expected one); what the alias serves is
the best model trained, and the contest below is what keeps that optimism from moving the alias on noise.

The contest (:func:`decide_champion`):

1. the candidate's registered name must be the params' (:func:`hourglass.tracking.store.registered_name`: one model
   per dataset card) and its version's card tags the params' card; its evaluation must be of the current validation
   split (``split_digest`` in ``eval/metrics.json`` equal to :func:`hourglass.evaluation.split_digest.split_digest`
   now);
2. nothing new (the candidate already holds the alias, or already competed against this champion on this split):
   no contest, no tag changed, a "nothing new" record in the history;
3. the champion (the version holding the alias) must be of the same card (:func:`hourglass.registry.check_same_card`)
   and is scored on the same split by the same evaluation code: its predictions stored by an earlier contest on this
   digest are reused, otherwise it is evaluated now and that score is recorded on it
   (:mod:`hourglass.rescore`);
4. both are scored from their predictions on the same people with the report's paired bootstrap
   (:class:`hourglass.report.bootstrap.PeopleBootstrap`), and :func:`hourglass.registry.contest_rule` decides
   (``flows.confidence``, ``flows.min_improvement``);
5. the decision is tagged on the candidate only, and appended to ``reports/champion.json``
   (:mod:`hourglass.champion_log`). A contest record holds :meth:`Decision.to_dict` (``decision``,
   ``candidate_version``/``candidate_score``, ``champion_version``/``champion_score``, ``difference``
   {estimate, low, high, confidence, people}, ``split_digest``, ``min_improvement``, ``reason``, ``decided_at``,
   ``serving_version`` ...) plus ``kind: "contest"``, ``statistic``, ``variant``, ``seed``, ``run_id`` (the
   candidate's), ``champion_run_id``, ``champion_rescored`` and ``seed_scores``.

No Prefect here: the retraining flow and ``python -m pipeline.flows promote`` use the same functions.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from hourglass.champion_log import append_record
from hourglass.config import ParamsConfig
from hourglass.evaluation.split_digest import split_digest
from hourglass.evaluation.split_predictions import SPLIT
from hourglass.evaluation.stage import METRICS_NAME, PREDICTIONS_NAME
from hourglass.family import DatasetFamily, champion_metric, family_of
from hourglass.io.checkpoint import CheckpointError
from hourglass.io.eval_files import GroundTruth, read_ground_truth, read_predictions
from hourglass.layout import model_dir, stage_item
from hourglass.lineage import Lineage
from hourglass.registry import (
    Decision,
    Difference,
    alias_holder,
    card_of,
    check_same_card,
    contested_before,
    model_version,
    now,
    record_score,
    settle_contest,
    version_score,
)
from hourglass.report.bootstrap import PeopleBootstrap, correct_joints
from hourglass.rescore import ScoredVersion, score_version
from hourglass.tracking.store import registered_name

ALIAS = "champion"
SCORE_TOLERANCE = 0.01  # points: a preds.h5 must score as its metrics.json says, else the files are not one run's


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


def mlflow_links(model: str, version: str, run_id: str | None, tracking_uri: str | None,
                 experiment_id: str | None = None) -> str:
    """Where version ``version`` of ``model`` lives in MLflow: links into the UI when the store is a server, else
    the ids and the UI's routes for ``mlflow ui`` on that store."""
    uri = f"models:/{model}/{version}"
    run_route = f"#/experiments/{experiment_id or 0}/runs/{run_id}" if run_id else None
    version_route = f"#/models/{model}/versions/{version}"
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        base = tracking_uri.rstrip("/")
        run = f"[run {run_id}]({base}/{run_route})" if run_id else "run unknown"
        return f"**MLflow:** {run}, [model version `{uri}`]({base}/{version_route})"
    return (f"**MLflow:** run `{run_id or 'unknown'}`, model version `{uri}` in `{tracking_uri}` "
            f"(`mlflow ui --backend-store-uri {tracking_uri}`, then `{version_route}`)")


def record_markdown(record: Mapping[str, Any], tracking_uri: str | None = None,
                    experiment_id: str | None = None) -> str:
    """The Prefect artifact of one history record (a contest, or a run with nothing new): both scores on the same
    split side by side, the paired difference, the verdict, which seed competed, and where the candidate is."""
    model, alias, version = record["model"], record["alias"], record["candidate_version"]
    seed, seed_scores = record.get("seed"), record.get("seed_scores") or {}
    candidate = f"`{record.get('variant')}`" if seed is None else f"`{record.get('variant')}` seed {seed}"
    links = mlflow_links(model, version, record.get("run_id"), tracking_uri, experiment_id)
    split = f"`{str(record.get('split_digest'))[:12]}`"
    if record["kind"] != "contest":
        return "\n".join([
            f"## `{model}@{alias}`: {record['kind']}, no contest",
            "",
            f"**Reason:** {record['reason']}. **Serving:** version {record.get('serving_version') or '—'} "
            f"(candidate {candidate}, version {version}; validation split {split}; {record['decided_at']}).",
            "",
            links,
        ])
    verdict = "promoted" if record["promoted"] else "kept the current champion"
    seeds = []
    if seed is not None and seed_scores:
        listed = ", ".join(f"seed {s}: {_cell(v)}" for s, v in seed_scores.items())
        seeds = ["", f"**Seed:** {seed}, the best of the variant's {len(seed_scores)} seed(s) by "
                     f"{record['metric']} ({listed}).", ""]
    difference = record.get("difference")
    paired = ("no champion to compare with" if not difference else
              f"{difference['estimate']:+.2f} [{difference['low']:.2f}, {difference['high']:.2f}] "
              f"({difference['confidence'] * 100:g} % paired bootstrap over {difference['people']} people)")
    rescored = {True: "re-scored now", False: "its stored score on this split", None: "—"}[
        record.get("champion_rescored")]
    return "\n".join([
        f"## `{model}@{alias}`: {verdict}",
        "",
        f"| | version | {record['metric']} on split {split} |",
        "|---|---|---|",
        f"| candidate ({candidate}) | {version} | {_cell(record['candidate_score'])} |",
        f"| champion before ({rescored}) | {record.get('champion_version') or '—'} | "
        f"{_cell(record.get('champion_score'))} |",
        *seeds,
        "",
        f"**Difference (candidate - champion):** {paired}; promotion needs it to exclude 0 and to be at least "
        f"{record.get('min_improvement')} points. ",
        f"**Reason:** {record['reason']}. ",
        f"**Serving now:** version {record.get('serving_version') or '—'} "
        f"({'higher' if record['higher_is_better'] else 'lower'} is better; decided {record['decided_at']}).",
        "",
        f"**Candidate trained on:** {record.get('candidate_lineage') or 'not recorded'}. ",
        f"**Champion trained on:** {record.get('champion_lineage') or 'not recorded'}.",
        "",
        links,
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
        log.info("%s: seed %d competes for the alias (%s %s; seeds: %s)", variant, best, metric, _cell(scores[best]),
                 ", ".join(f"{s}: {_cell(v)}" for s, v in scores.items()))
    return Candidate(variant, best, records[best], scores[best], scores)


def contest_statistic(params: ParamsConfig) -> tuple[str, str]:
    """(the champion metric, the bootstrap statistic that computes it from predictions). The contest scores both
    models with the evaluate stage on the same people, so the metric must be one of its numbers that the paired
    bootstrap recomputes: the flip-test Mean (``eval/<metric>/Mean``, the default) or ``eval/figure4``."""
    metric = champion_metric(params)
    family = family_of(params)
    statistics = {family.eval_headline: "Mean", "eval/figure4": "figure4"}
    if metric not in statistics:
        raise ChampionError(
            f"flows.champion_metric {metric!r}: the contest scores the candidate and the champion with the evaluate "
            f"stage on the same validation people, which compares {' or '.join(map(repr, statistics))}; set one "
            "of them, or null for the first"
        )
    return metric, statistics[metric]


def split_paths(repo: Path, params: ParamsConfig) -> tuple[Path, Path]:
    """(preprocessed data directory, validation annotation file) of the params' dataset, as the evaluate stage
    reads them."""
    return repo / "data" / "processed" / params.dataset, repo / "data" / "raw" / params.dataset / "annot" / (
        f"{SPLIT}.h5")


def expected_card(family: DatasetFamily) -> dict[str, str]:
    """The card tags a version trained on ``family``'s card carries (:func:`hourglass.tracking.store.version_tags`)."""
    return {"dataset_card": family.card.digest()[:12], "keypoints": ",".join(family.joints.names),
            "metric": family.metric}


def _check_candidate(params: ParamsConfig, family: DatasetFamily, name: str, mv: ModelVersion) -> None:
    """The candidate was trained on the params' card as it is now (its version's card tags say so)."""
    have, want = card_of(mv.tags), expected_card(family)
    differ = [key for key in want if have[key] != want[key]]
    if differ:
        raise ChampionError(
            f"{name!r} version {mv.version} was trained on " +
            ", ".join(f"{key} {have[key]!r}" for key in differ) + f", but the params' card "
            f"datasets/{params.dataset}.yaml has " + ", ".join(f"{key} {want[key]!r}" for key in differ) +
            "; it is not compared with models of the card as it is now: retrain it"
        )


def _candidate_eval(repo: Path, candidate: Candidate, digest: str) -> tuple[dict[str, Any], Path]:
    """(eval/metrics.json, eval/preds.h5) of the candidate's seed, which must be of the split ``digest``."""
    eval_dir = model_dir(candidate.variant, candidate.seed, repo / "models") / "eval"
    path = eval_dir / METRICS_NAME
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        raise ChampionError(f"{path}: not found; the evaluate stage writes it (dvc repro "
                            f"evaluate@{stage_item(candidate.variant, candidate.seed)})") from None
    except json.JSONDecodeError as err:
        raise ChampionError(f"{path}: not valid JSON: {err}") from None
    scored_on = metrics.get("split_digest") if isinstance(metrics, dict) else None
    if scored_on != digest:
        raise ChampionError(
            f"{path}: the candidate was scored on validation split {str(scored_on)[:12]}, but the split is now "
            f"{digest[:12]}; evaluate it again (dvc repro evaluate@{stage_item(candidate.variant, candidate.seed)})"
        )
    preds = eval_dir / PREDICTIONS_NAME
    if not preds.is_file():
        raise ChampionError(f"{preds}: not found beside {path}; evaluate the candidate again (dvc repro -f "
                            f"evaluate@{stage_item(candidate.variant, candidate.seed)})")
    return metrics, preds


def _correct(path: Path, gt: GroundTruth, family: DatasetFamily) -> np.ndarray:
    """(N, J) bool: which annotated joints the predictions in ``path`` get right (the family's threshold)."""
    pred = read_predictions(path, joints=gt.joints.shape[1], people=len(gt))
    if pred.shape != gt.joints.shape:
        raise ChampionError(f"{path}: predictions of shape {pred.shape}, the validation annotations "
                            f"{gt.joints.shape}")
    return correct_joints(pred, gt.joints, gt.annotated, gt.normalize, family.threshold)


def _check_score(label: str, computed: float, metrics: Mapping[str, Any] | None, statistic: str) -> None:
    """The predictions must score as the evaluation that wrote them says (the files are of one evaluation)."""
    final = (metrics or {}).get("final") or {}
    stated = final.get(statistic)
    if stated is not None and math.isfinite(computed) and abs(float(stated) - computed) > SCORE_TOLERANCE:
        raise ChampionError(f"{label}: its predictions score {statistic} {computed:.4f}, its evaluation says "
                            f"{float(stated):.4f}; evaluate it again")


@dataclass(frozen=True)
class Outcome:
    """What one promote run did: the record it appended to the champion history, the candidate, and the decision
    (None when nothing was new and no contest was held)."""

    record: dict[str, Any]
    candidate: Candidate
    decision: Decision | None

    def summary(self) -> str:
        """One line for the command line."""
        return record_summary(self.record)


def record_summary(record: Mapping[str, Any]) -> str:
    """A history record (contest or nothing new) as one line: what happened, why, and what serves now."""
    what = (f"{record['decision']} v{record['candidate_version']}" if record["kind"] == "contest"
            else f"{record['kind']}, no contest")
    return f"{record['model']}@{record['alias']}: {what} ({record['reason']}); serving v{record['serving_version']}"


def _lineage_line(mv: Any) -> str | None:
    """The one-line lineage a model version's ``lineage.*`` tags hold (None: no version, or none recorded)."""
    if mv is None:
        return None
    lineage = Lineage.from_tags(dict(mv.tags or {}))
    return lineage.summary() if lineage is not None else None


def decide_champion(repo: Path, params: ParamsConfig, log: logging.Logger | logging.LoggerAdapter,
                    seeds: Sequence[int] | None = None) -> Outcome:
    """Hold the champion contest for the best of ``flows.champion_variant``'s ``seeds`` (default: params' seeds),
    as the module notes describe, and append its record to ``reports/champion.json``."""
    settings = params.flows
    metric, statistic = contest_statistic(params)
    family = family_of(params)
    name = registered_name(params)
    if name is None:
        raise ChampionError("mlflow.registered_model is null: no model is registered, so none can hold the alias")
    candidate = choose_candidate(repo, settings.champion_variant, list(params.seeds if seeds is None else seeds),
                                 metric, settings.higher_is_better, log, registered=name)
    uri = tracking_uri_for(repo, candidate.record)
    client = MlflowClient(tracking_uri=uri)
    mv = model_version(client, candidate.record.registered_model, candidate.record.version)
    _check_candidate(params, family, name, mv)
    data_dir, gt_path = split_paths(repo, params)
    digest = split_digest(data_dir, gt_path, params)
    metrics, candidate_preds = _candidate_eval(repo, candidate, digest)
    holder = alias_holder(client, name, ALIAS)
    base = {"model": name, "alias": ALIAS, "metric": metric, "statistic": statistic,
            "higher_is_better": settings.higher_is_better, "candidate_version": str(mv.version),
            "variant": candidate.variant, "seed": candidate.seed, "run_id": mv.run_id,
            "seed_scores": {str(s): v for s, v in candidate.seed_scores.items()}, "split_digest": digest}

    quiet = (f"version {mv.version} already holds @{ALIAS}" if holder == str(mv.version)
             else contested_before(mv, holder, digest))
    if quiet is not None:  # no contest: no tag changes, the history says the run happened and why nothing moved
        record = {"kind": "nothing new", **base, "serving_version": holder, "reason": quiet, "decided_at": now()}
        append_record(repo, record)
        log.info("%s: nothing new, no contest (%s)", name, quiet)
        return Outcome(record, candidate, None)

    champion = model_version(client, name, holder) if holder is not None else None
    if champion is not None:
        check_same_card(name, mv, champion)
    gt = read_ground_truth(gt_path)
    boot = PeopleBootstrap(family, gt.annotated, confidence=settings.confidence * 100.0)
    candidate_score = boot.add("candidate", _correct(candidate_preds, gt, family))[statistic]
    _check_score(f"{candidate_preds}", candidate_score, metrics, statistic)
    with tempfile.TemporaryDirectory(prefix="hourglass-contest-") as tmp:
        scored: ScoredVersion | None = None
        champion_score, difference = None, None
        if champion is not None:
            try:
                scored = score_version(client, name, champion, params, uri, data_dir, gt_path, digest, Path(tmp))
            except CheckpointError as err:
                raise ChampionError(f"{name!r} champion version {holder} cannot be scored on the current validation "
                                    f"split, so no candidate can fairly replace it: {err}") from None
            log.info("%s: champion version %s %s on split %s", name, holder,
                     "evaluated now" if scored.rescored else "reuses its stored predictions", digest[:12])
            champion_score = boot.add("champion", _correct(scored.preds, gt, family))[statistic]
            _check_score(f"{name!r} version {holder}", champion_score, scored.metrics, statistic)
            interval = boot.difference("candidate", "champion", statistic)
            difference = Difference(interval.estimate, interval.low, interval.high, settings.confidence, boot.people)
        decision = settle_contest(client, name, mv, candidate_score, holder, champion_score, difference,
                                  metric=metric, alias=ALIAS, higher_is_better=settings.higher_is_better,
                                  min_improvement=settings.min_improvement, split_digest=digest)
        record_score(client, name, mv, digest, candidate_preds, metric, candidate_score)
        if champion is not None and scored is not None and scored.rescored:
            record_score(client, name, champion, digest, scored.preds, metric, champion_score)
    record = {"kind": "contest", **base, **decision.to_dict(),
              "champion_run_id": champion.run_id if champion is not None else None,
              "champion_rescored": scored.rescored if scored is not None else None,
              # what each side was trained on (data, code, params), as its version's lineage.* tags say
              "candidate_lineage": _lineage_line(mv), "champion_lineage": _lineage_line(champion)}
    append_record(repo, record)
    log.info("%s v%s: %s (%s)", name, mv.version, "promoted" if decision.promoted else "kept the champion",
             decision.reason)
    return Outcome(record, candidate, decision)
