"""The git checkout a run or a report came from: the commit, and whether tracked files were changed."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _git(cwd: str | Path | None, *args: str) -> str | None:
    """stdout of ``git <args>`` in ``cwd``, or None when git is missing, fails or hangs."""
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def head_commit(cwd: str | Path | None = None) -> str | None:
    """HEAD of the checkout at ``cwd``, or None outside a git checkout (or without git)."""
    out = _git(cwd, "rev-parse", "HEAD")
    return out.strip() or None if out is not None else None


def has_uncommitted_changes(cwd: str | Path | None = None, ignore: tuple[str, ...] = ()) -> bool | None:
    """Whether tracked files differ from HEAD, the paths ``ignore`` (relative to ``cwd``) aside; None when git
    cannot say."""
    pathspec = ["--", ":/", *(f":(exclude){path}" for path in ignore)] if ignore else []
    out = _git(cwd, "status", "--porcelain", "--untracked-files=no", *pathspec)
    return None if out is None else bool(out.strip())
