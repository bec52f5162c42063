"""Atomic file writes: a reader (or a later DVC stage) sees the old file or the whole new one, never half of one.

The data go to a unique temporary name in the same directory (so ``os.replace`` is a rename on one file system)
and replace the target only once written; a crash leaves at most a hidden ``.<name>.*.tmp`` that nothing trusts.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` via a temporary file and ``os.replace``; creates the parent."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
