"""The champion's history: ``reports/champion.json``, an append-only list of what happened to the alias.

Every champion contest, every run that found nothing new to contest, and every rollback adds one record; earlier
records are never rewritten, so the file answers "why is this version serving?" long after the decision. The file
is ``{"contests": [record, ...]}``, oldest first. A record is a JSON object with at least:

* ``kind``: ``"contest"`` (a candidate competed; ``decision`` is ``"promoted"`` or ``"kept"``), ``"nothing new"``
  (no contest held: the candidate already holds the alias, or already competed against this champion on this
  split) or ``"rollback"`` (the alias was moved back by hand);
* ``decided_at``: ISO 8601 time, UTC;
* ``model``, ``alias``, ``serving_version`` (the version the alias names after the record), ``reason``.

:mod:`hourglass.tracking.champion` documents the fields of a contest. The single-object file that earlier versions
wrote (one decision, overwritten by each run) is read as a one-record history, so nothing it said is lost on the first
append.

Appends are read-modify-write through the project's atomic writer: a reader never sees a half-written file. Two
writers at the same moment could lose one record; the retraining deployment runs one flow at a time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hourglass.io.atomic import write_json_atomic
from hourglass.io.json_values import json_safe

LOG_FILE = Path("reports") / "champion.json"
KINDS = ("contest", "nothing new", "rollback")


class ChampionLogError(RuntimeError):
    """``reports/champion.json`` is not a history this module wrote; the message names the file and the problem."""


def log_path(repo: str | Path) -> Path:
    """``<repo>/reports/champion.json``."""
    return Path(repo) / LOG_FILE


def _legacy(record: dict[str, Any]) -> dict[str, Any]:
    """A decision of the single-object file, as a contest record (its fields kept, ``kind``/``decision`` added)."""
    decision = "promoted" if record.get("promoted") else "kept"
    return {"kind": "contest", "decision": decision, **record}


def read_records(repo: str | Path) -> list[dict[str, Any]]:
    """Every record, oldest first; ``[]`` when the file does not exist yet."""
    path = log_path(repo)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except json.JSONDecodeError as err:
        raise ChampionLogError(f"{path}: not valid JSON ({err}); it is the champion history, restore it from "
                               "version control rather than deleting it") from None
    if isinstance(raw, dict) and isinstance(raw.get("contests"), list):
        records = raw["contests"]
        bad = [i for i, record in enumerate(records) if not isinstance(record, dict) or "kind" not in record]
        if bad:
            raise ChampionLogError(f"{path}: contests[{bad[0]}] is not a record with a 'kind'")
        return [dict(record) for record in records]
    if isinstance(raw, dict) and "candidate_version" in raw:  # the single decision written before the history
        return [_legacy(raw)]
    if raw == {}:  # an empty object: no decision yet
        return []
    raise ChampionLogError(f"{path}: expected {{\"contests\": [...]}} (or the older single decision), got "
                           f"{type(raw).__name__} with keys {sorted(raw) if isinstance(raw, dict) else []}")


def append_record(repo: str | Path, record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Add ``record`` after the existing ones and write the file atomically; returns the whole history.

    ``record`` needs ``kind`` (one of :data:`KINDS`) and ``decided_at``; non-finite numbers are stored as null."""
    kind = record.get("kind")
    if kind not in KINDS:
        raise ChampionLogError(f"record kind {kind!r} is not one of {', '.join(KINDS)}")
    if not record.get("decided_at"):
        raise ChampionLogError(f"a {kind!r} record needs 'decided_at' (ISO 8601, UTC)")
    records = [*read_records(repo), json_safe(record)]
    write_json_atomic(log_path(repo), {"contests": records})
    return records
