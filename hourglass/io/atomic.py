"""Atomic file writes: a reader (or a later DVC stage) sees the old file or the whole new one, never half of one.

Every writer in the project goes through this module. The data go to a unique temporary name in the target's
directory (so ``os.replace`` is a rename on one file system, and two writers of the same target never share a
temporary file), are flushed to disk with ``fsync``, and only then replace the target; a crash leaves at most a
hidden ``.<name>.*.tmp`` that nothing trusts.

* :func:`write_atomic` / :func:`write_json_atomic`: bytes, text or JSON already in memory;
* :func:`atomic_path`: a temporary path for writers that open the file themselves (``torch.save``, h5py, pyarrow,
  OpenCV's video writer);
* :func:`open_atomic`: a file handle for streamed text (CSV rows as they are computed);
* :func:`atomic_files`: a temporary directory for writers that name several files themselves (OpenVINO's
  ``.xml`` + ``.bin``), each renamed into place in the order given.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
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
def atomic_files(directory: str | Path, names: Sequence[str]) -> Iterator[Path]:
    """Yield a fresh hidden directory inside ``directory`` for a writer that creates the files ``names`` there; when
    the block exits normally each is fsynced and renamed into ``directory`` in the order of ``names`` (put the file
    readers open last, e.g. ``model.bin`` before ``model.xml``), when it raises nothing in ``directory`` changes.
    The temporary directory is removed either way."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory, prefix=".staging.", suffix=".tmp"))
    try:
        yield staging
        missing = [name for name in names if not (staging / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{directory}: the writer left no {', '.join(missing)} in {staging.name}")
        mode = 0o666 & ~_umask()
        for name in names:
            os.chmod(staging / name, mode)
            _fsync_file(staging / name)
        for name in names:
            os.replace(staging / name, directory / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
