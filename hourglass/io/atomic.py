"""Atomic file writes: a reader (or a later DVC stage) sees the old file or the whole new one, never half of one.

The data go to a unique temporary name in the same directory (so ``os.replace`` is a rename on one file system)
and replace the target only once written; a crash leaves at most a hidden ``.<name>.*.tmp`` that nothing trusts.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _umask() -> int:
    """The process umask (reading it means setting it: put it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` via a temporary file and ``os.replace``; creates the parent.

    The file gets the mode a plain ``open`` would give it (0666 less the umask), not mkstemp's private 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_json_atomic(path: str | Path, payload: Any, *, sort_keys: bool = False, allow_nan: bool = False) -> None:
    """``payload`` as indented JSON written with :func:`write_atomic` (NaN refused by default: JSON has none)."""
    write_atomic(path, json.dumps(payload, indent=2, sort_keys=sort_keys, allow_nan=allow_nan) + "\n")
