"""The fair contest for the MLflow ``champion`` alias (which run competes: :mod:`hourglass.tracking.candidate`; its
record as markdown: :mod:`hourglass.tracking.champion_record`).

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
3. the champion (the version holding the alias) must be of the same card
   (:func:`hourglass.tracking.registry.check_same_card`) and is scored on the same split by the same evaluation code:
   its predictions stored by an earlier contest on this digest are reused, otherwise it is evaluated now and that score
   is recorded on it (:mod:`hourglass.tracking.rescore`);
4. both are scored from their predictions on the same people with the report's paired bootstrap
   (:class:`hourglass.report.bootstrap.PeopleBootstrap`), and :func:`hourglass.tracking.registry.contest_rule` decides
   (``flows.confidence``, ``flows.min_improvement``);
5. the decision is tagged on the candidate only, and appended to ``reports/champion.json``
   (:mod:`hourglass.tracking.champion_log`). A contest record holds :meth:`Decision.to_dict` (``decision``,
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
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from hourglass.config import ParamsConfig
from hourglass.evaluation.split_digest import split_digest
from hourglass.evaluation.split_predictions import SPLIT
from hourglass.evaluation.stage import METRICS_NAME, PREDICTIONS_NAME
from hourglass.family import DatasetFamily, champion_metric, family_of
from hourglass.io.checkpoint import CheckpointError
from hourglass.io.eval_files import GroundTruth, read_ground_truth, read_predictions
from hourglass.layout import model_dir, stage_item
from hourglass.lineage import Lineage
from hourglass.report.bootstrap import PeopleBootstrap, correct_joints
from hourglass.tracking.candidate import (
    Candidate,
    ChampionError,
    choose_candidate,
    tracking_uri_for,
)
from hourglass.tracking.champion_log import append_record
from hourglass.tracking.registry import (
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
)
from hourglass.tracking.rescore import ScoredVersion, score_version
from hourglass.tracking.store import registered_name

ALIAS = "champion"
SCORE_TOLERANCE = 0.01  # points: a preds.h5 must score as its metrics.json says, else the files are not one run's

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
