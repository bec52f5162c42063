"""Atomic file writes: a reader (or a later DVC stage) sees the old file or the whole new one, never half of one.

Every writer in the project goes through this module. The data go to a unique temporary name in the target's
directory (so ``os.replace`` is a rename on one file system, and two writers of the same target never share a
temporary file), are flushed to disk with ``fsync``, and only then replace the target; a crash leaves at most a
hidden ``.<name>.*.tmp`` that nothing trusts.

* :func:`write_atomic` / :func:`write_json_atomic`: bytes, text or JSON already in memory;
* :func:`atomic_path`: a temporary path for writers that open the file themselves (``torch.save``, h5py, pyarrow,
  OpenCV's video writer);
* :func:`open_atomic`: a file handle for streamed text (CSV rows as they are computed).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    """The process umask (reading it means setting it: put it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a unique temporary path beside ``path``; when the block exits normally the file written there is
    fsynced and renamed onto ``path``, when it raises the temporary file is removed and ``path`` is untouched.

    ``suffix`` ends the temporary name, for writers that choose a format by extension (``".mp4"``). The file gets
    the mode a plain ``open`` would give it (0666 less the umask), not mkstemp's private 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"{path}: the writer left no file at its temporary name {tmp.name}")
        _fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def open_atomic(path: str | Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """``open(path, mode)`` on a temporary name, renamed onto ``path`` when the block exits normally."""
    if not mode.startswith("w"):
        raise ValueError(f"open_atomic writes a new file: mode {mode!r} must start with 'w'")
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as fh:
        yield fh
        fh.flush()


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; creates the parent directory."""
    with open_atomic(path, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)


def write_json_atomic(path: str | Path, payload: Any, *, sort_keys: bool = False, allow_nan: bool = False) -> None:
    """``payload`` as indented JSON written with :func:`write_atomic` (NaN refused by default: JSON has none)."""
    write_atomic(path, json.dumps(payload, indent=2, sort_keys=sort_keys, allow_nan=allow_nan) + "\n")
