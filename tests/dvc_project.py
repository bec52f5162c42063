"""A fresh git + DVC repository holding the project's code and a params.yaml, as a user's checkout would.

Shared by the end-to-end tests (``test_pipeline_e2e``, ``test_rehearsal``): each stage runs as DVC runs it, its
``cmd`` in a subprocess of ``dvc repro``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from shipped import REPO, merge  # noqa: F401  (merge: re-exported for the end-to-end tests)


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``cmd``; a failure shows the tail of its output."""
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def dvc(args: list[str], root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], root, env)


def make_project(root: Path, params: dict[str, Any], mlflow_db: Path | None = None,
                 cards: dict[str, dict[str, Any]] | None = None) -> dict[str, str]:
    """Copy the code, the dataset cards and ``dvc.yaml`` into ``root``, write ``params``, commit; returns the
    environment to run in.

    ``mlflow_db``: an already migrated SQLite store to start from (copying it is much faster than migrating).
    ``cards``: keys that replace those of a shipped card in the project (``{"flic": {"download": [...]}}``: a mirror).
    """
    for name in ("hourglass", "pipeline", "recipes", "datasets"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name, changes in (cards or {}).items():
        card = root / "datasets" / f"{name}.yaml"
        card.write_text(yaml.safe_dump({**yaml.safe_load(card.read_text()), **changes}, sort_keys=False,
                                       allow_unicode=True))
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / ".gitignore").write_text("mlflow.db\nmlruns/\n__pycache__/\n")
    if mlflow_db is not None:
        shutil.copy(mlflow_db, root / "mlflow.db")
    env = dict(os.environ)
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}", DVC_NO_ANALYTICS="1",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t",
               OMP_NUM_THREADS="1")
    run(["git", "init", "-q"], root, env)
    dvc(["init", "-q"], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "project"], root, env)
    return env
