"""Undoing a bad promotion: move the registry alias ``champion`` back to an earlier version, and say why.

The default target is the previous holder: the version that held the alias before the one holding it now, read
from the decision log (:mod:`hourglass.tracking.champion_log`), where every contest and rollback left the holder
before and after it. A rollback is itself a decision: one more record in the log and tags on the version that takes the
alias. Those tags have their own keys (``rollback_*``), so the version keeps the tags of the contest it once won. The
target must be a version of the same dataset card (its ``dataset`` tag) with the same keypoints in the same order (its
``keypoints`` tag): the served model's output rows must keep their meaning. No Prefect here.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from hourglass.config import ParamsConfig
from hourglass.tracking.champion_log import append_record, read_records
from hourglass.tracking.store import registered_name

ALIAS = "champion"
DECISION = "rolled back"
TAG_ROLLBACK_DECISION = "rollback_decision"  # "rolled back"
TAG_ROLLBACK_REASON = "rollback_reason"
TAG_ROLLBACK_FROM = "rollback_from_version"  # the version that lost the alias, "none" when none held it
TAG_ROLLBACK_AT = "rollback_at"


class RollbackError(RuntimeError):
    """The alias cannot move back as asked (no earlier holder, an unknown version, another card's version)."""


def registered_model_name(config: ParamsConfig) -> str:
    """The card's registered model (:func:`hourglass.tracking.store.registered_name`); an error when params
    register none."""
    name = registered_name(config)
    if not name:
        raise RollbackError("params mlflow.registered_model is null: no model is registered, so no version holds "
                            f"@{ALIAS} to roll back")
    return name


def holders(records: Sequence[Mapping[str, Any]], model: str, alias: str = ALIAS) -> list[str]:
    """The versions that held ``alias`` of ``model``, in the order they held it (a version holding it over several
    records counts once per stretch): each record's holder before (``champion_version``), then after
    (``serving_version``)."""
    chain: list[str] = []
    for record in records:
        if record.get("model") != model or record.get("alias", alias) != alias:
            continue
        for key in ("champion_version", "serving_version"):
            version = record.get(key)
            if version is not None and (not chain or chain[-1] != str(version)):
                chain.append(str(version))
    return chain


def previous_holder(records: Sequence[Mapping[str, Any]], model: str, current: str | None,
                    alias: str = ALIAS) -> str:
    """The version that held ``alias`` before ``current`` took it the last time. When the log never saw
    ``current`` (the alias was moved by hand), the last version it did see hold the alias."""
    chain = holders(records, model, alias)
    if current in chain:
        last = len(chain) - 1 - chain[::-1].index(current)
        earlier = chain[:last]
    else:
        earlier = [version for version in chain if version != current]
    if not earlier:
        seen = ", ".join(chain) or "none"
        raise RollbackError(
            f"{model}@{alias}: the decision log names no version that held the alias before version {current} "
            f"(holders in the log: {seen}); name the version to serve with --to VERSION")
    return earlier[-1]


def _version(client: MlflowClient, model: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(model, version)
    except MlflowException:
        known = sorted(int(v.version) for v in client.search_model_versions(f"name = '{model}'"))
        raise RollbackError(f"model registry: {model!r} has no version {version} "
                            f"(its versions: {', '.join(map(str, known)) or 'none'})") from None


def check_same_card(mv: ModelVersion, dataset: str, keypoints: Sequence[str]) -> None:
    """Refuse a version trained on another card, or whose keypoint rows differ from the card's (its tags say)."""
    where = f"{mv.name!r} version {mv.version}"
    trained_on = mv.tags.get("dataset")
    if trained_on is None:
        raise RollbackError(f"{where} has no 'dataset' tag, so nothing says it was trained on card {dataset!r}; it "
                            f"cannot take @{ALIAS} (tag it dataset={dataset} if it was)")
    if trained_on != dataset:
        raise RollbackError(f"{where} was trained on card {trained_on!r} (its 'dataset' tag), not {dataset!r} "
                            f"(params dataset): it cannot serve this card's @{ALIAS}")
    tagged = mv.tags.get("keypoints")
    if tagged is not None and tagged.split(",") != list(keypoints):
        raise RollbackError(f"{where} outputs keypoints {tagged} (its 'keypoints' tag), card {dataset!r} has "
                            f"{','.join(keypoints)}: it cannot take @{ALIAS}")


def _who() -> str:
    """The account that moved the alias, for the record."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "unknown"


def roll_back(repo: Path, client: MlflowClient, model: str, dataset: str, keypoints: Sequence[str],
              to: str | None = None, reason: str | None = None, alias: str = ALIAS,
              log: logging.Logger | logging.LoggerAdapter | None = None) -> dict[str, Any]:
    """Point ``alias`` of ``model`` at ``to`` (default: the previous holder); tag that version, append the record
    to the decision log of ``repo`` and return it."""
    log = log or logging.getLogger(__name__)
    try:
        aliases = client.get_registered_model(model).aliases or {}
    except MlflowException:
        raise RollbackError(f"model registry: no registered model {model!r} (params mlflow.registered_model and "
                            "dataset name it); nothing to roll back") from None
    current = str(aliases[alias]) if alias in aliases else None
    if to is None:
        if current is None:
            raise RollbackError(f"{model}@{alias}: no version holds the alias, so there is no previous holder; "
                                "name the version to serve with --to VERSION")
        target = previous_holder(read_records(repo), model, current, alias)
        chosen = "the previous holder"
    else:
        target, chosen = str(to), "named with --to"
    if target == current:
        raise RollbackError(f"{model}@{alias}: version {target} already holds the alias")
    mv = _version(client, model, target)
    check_same_card(mv, dataset, keypoints)

    client.set_registered_model_alias(model, alias, target)
    decided_at = datetime.now(UTC).isoformat(timespec="seconds")
    who = _who()
    why = reason or f"rolled back by {who} from version {current or 'none'} to version {target} ({chosen})"
    for key, value in {TAG_ROLLBACK_DECISION: DECISION, TAG_ROLLBACK_REASON: why,
                       TAG_ROLLBACK_FROM: current or "none", TAG_ROLLBACK_AT: decided_at}.items():
        client.set_model_version_tag(model, target, key, value)
    record = {"kind": "rollback", "decision": DECISION, "model": model, "alias": alias, "dataset": dataset,
              "from_version": current, "to_version": target, "champion_version": current, "serving_version": target,
              "reason": why, "by": who, "decided_at": decided_at}
    append_record(repo, record)
    log.info("%s@%s: version %s -> version %s (%s)", model, alias, current or "none", target, why)
    return record
