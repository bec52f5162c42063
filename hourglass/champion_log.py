"""The append-only log of champion decisions: ``reports/champion.json`` = ``{"contests": [record, ...]}``.

Each contest, and each rollback, adds one record; none is rewritten, so the file says why every version ever held
the alias. Older checkouts wrote one decision object there (overwritten each run); it reads as a log of that one
record, and the first append turns the file into the list form. No Prefect and no MLflow here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hourglass.io.atomic import write_json_atomic

LOG_FILE = Path("reports") / "champion.json"
RECORDS_KEY = "contests"


class ChampionLogError(RuntimeError):
    """``reports/champion.json`` is not a decision log; the message names the file and what it holds."""


def log_path(repo: Path) -> Path:
    """Where the log of the checkout ``repo`` lives."""
    return Path(repo) / LOG_FILE


def read_records(repo: Path) -> list[dict[str, Any]]:
    """Every record, oldest first; no file, or the empty object another stage may leave, is an empty log."""
    path = log_path(repo)
    if not path.is_file():
        return []
    try:
        raw = json.loads(path.read_text())  # Python's json reads the NaN scores the writer allows
    except json.JSONDecodeError as err:
        raise ChampionLogError(f"{path}: not valid JSON: {err}") from None
    if isinstance(raw, dict) and RECORDS_KEY in raw:
        records = raw[RECORDS_KEY]
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ChampionLogError(f"{path}: {RECORDS_KEY!r} must be a list of objects")
        return [dict(r) for r in records]
    if isinstance(raw, dict):  # the single decision of older checkouts
        return [raw] if raw else []
    raise ChampionLogError(f"{path}: expected an object with a {RECORDS_KEY!r} list, got {type(raw).__name__}")


def append_record(repo: Path, record: Mapping[str, Any]) -> None:
    """Add ``record`` at the end of the log (atomically: a reader sees the old log or the whole new one)."""
    records = read_records(repo)
    write_json_atomic(log_path(repo), {RECORDS_KEY: [*records, dict(record)]}, allow_nan=True)
