"""The DVC side of the retraining flow: which stages run in which order, and one ``dvc repro`` of one stage.

Every step of the flow is one ``dvc repro --single-item <stage>`` subprocess, run one after another because DVC's
repo lock forbids concurrent ``dvc repro`` processes; DVC keeps owning caching (it skips an unchanged stage). When
another process holds the lock (a second run, a person's ``dvc`` at a prompt) a command waits for it, retrying with
backoff, for at most ``flows.lock_wait`` seconds. The optional sync steps around a run (``git pull --ff-only``,
``dvc pull``, ``dvc push``) are here too. No Prefect here: :mod:`pipeline.flows` wraps these in tasks.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hourglass.layout import parse_stage_item, stage_item

STDERR_TAIL_LINES = 30


class StageFailed(RuntimeError):
    """``dvc repro`` of one stage exited non-zero; the message carries the stage and its stderr's tail."""

    def __init__(self, stage: str, returncode: int, stderr_tail: Sequence[str]) -> None:
        self.stage, self.returncode, self.stderr_tail = stage, returncode, list(stderr_tail)
        message = f"DVC stage {stage!r} failed (dvc repro exit code {returncode}); stderr tail:\n{_tail(stderr_tail)}"
        super().__init__(message)


class SyncFailed(RuntimeError):
    """A sync command around the run (git pull, dvc pull, dvc push) exited non-zero; the message carries the
    command and the tail of its output."""

    def __init__(self, command: Sequence[str], returncode: int, tail: Sequence[str]) -> None:
        self.command, self.returncode, self.tail = list(command), returncode, list(tail)
        super().__init__(f"`{shlex.join(command)}` failed (exit code {returncode}); output tail:\n{_tail(tail)}")


class DvcLockTimeout(RuntimeError):
    """Another process held DVC's repository lock for longer than ``flows.lock_wait``; the message names the lock,
    the command and the wait."""


def _tail(lines: Sequence[str]) -> str:
    return "\n".join(f"  | {line}" for line in lines) or "  | (no output)"


class FlowSetupError(RuntimeError):
    """dvc.yaml lacks a stage the flow needs, or DVC cannot list them; the message says which."""


def _dvc(*args: str) -> list[str]:
    """DVC from this interpreter, so the flow never picks up another installation's ``dvc`` from PATH."""
    return [sys.executable, "-m", "dvc", *args]


def _stage_env() -> dict[str, str]:
    """``dvc repro``'s environment: this interpreter's bin first, so the stages' ``python`` is this venv's."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


# How DVC says it did not run a stage: "Stage 'train@hg' didn't change, skipping".
SKIPPED = re.compile(r"Stage '[^']+' didn't change, skipping")


def _last_frame(line: str) -> str:
    """A progress bar redraws with carriage returns; keep what the terminal would finally show."""
    return line.rstrip("\n").rsplit("\r", 1)[-1].rstrip()


def _pump(stream: IO[str], log: logging.Logger | logging.LoggerAdapter, tail: deque[str] | None,
          seen: list[str] | None = None) -> None:
    for raw in stream:
        line = _last_frame(raw)
        if line:
            log.info("%s", line)
            if seen is not None:
                seen.append(line)
            if tail is not None:
                tail.append(line)


def _run_streamed(cmd: Sequence[str], repo: Path, log: logging.Logger | logging.LoggerAdapter
                  ) -> tuple[int, list[str], list[str]]:
    """Run ``cmd`` in ``repo``, streaming stdout and stderr into ``log``; (exit code, stdout lines, stderr tail)."""
    proc = subprocess.Popen(
        list(cmd), cwd=repo, env=_stage_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        errors="replace", bufsize=1,
    )
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    stderr_reader = threading.Thread(target=_pump, args=(proc.stderr, log, tail), daemon=True)
    stderr_reader.start()
    output: list[str] = []
    try:
        _pump(proc.stdout, log, None, output)
        returncode = proc.wait()
    finally:
        if proc.poll() is None:  # interrupted or cancelled: do not leave DVC running and holding its lock
            proc.terminate()
            proc.wait()
        stderr_reader.join()
    return returncode, output, list(tail)


# How DVC says another process holds its repository lock (dvc/lock.py), held while DVC reads and writes its
# state, or the read/write lock on a stage's dependencies and outputs (dvc/rwlock.py), held while a stage's command
# runs (DVC lets go of the repository lock then, so two `dvc repro` collide on whichever they meet).
REPO_LOCK_HELD = re.compile(r"Unable to acquire lock")
PATH_LOCK_HELD = re.compile(r"'(?P<path>[^']+)' is busy, it is being blocked by")
LOCK_FILE = Path(".dvc") / "tmp" / "lock"
RWLOCK_FILE = Path(".dvc") / "tmp" / "rwlock"
LOCK_RETRY_FIRST = 1.0  # seconds before the first retry; doubles up to LOCK_RETRY_MAX
LOCK_RETRY_MAX = 30.0


def _held_lock(stderr: Sequence[str], repo: Path) -> str | None:
    """Which of DVC's locks its output says another process holds, in words naming the file; None if neither."""
    for line in stderr:
        if REPO_LOCK_HELD.search(line):
            return f"DVC's repository lock ({repo / LOCK_FILE})"
        if found := PATH_LOCK_HELD.search(line):
            return f"DVC's lock on {found['path']!r} ({repo / RWLOCK_FILE})"
    return None


def _dvc_waiting(args: Sequence[str], what: str, repo: Path, log: logging.Logger | logging.LoggerAdapter,
                 lock_wait: float) -> tuple[int, list[str], list[str]]:
    """``dvc <args>``, run again (backing off) while DVC reports its lock held by another process, until
    ``lock_wait`` seconds have passed; then DvcLockTimeout. Any other outcome is returned as it is.

    Retrying is safe: DVC takes the lock before it touches anything, so a locked-out command did nothing."""
    start, delay, attempts = time.monotonic(), LOCK_RETRY_FIRST, 0
    while True:
        attempts += 1
        returncode, output, tail = _run_streamed(_dvc(*args), repo, log)
        lock = _held_lock(tail, repo) if returncode != 0 else None
        if lock is None:
            return returncode, output, tail
        waited = time.monotonic() - start
        if waited >= lock_wait:
            said = next(i for i, line in enumerate(tail) if REPO_LOCK_HELD.search(line) or PATH_LOCK_HELD.search(line))
            raise DvcLockTimeout(
                f"{what}: {lock} stayed held by another process (a second retrain run, or a dvc command at a "
                f"prompt) for {waited:.0f} s over {attempts} attempt(s); flows.lock_wait is {lock_wait:g} s. "
                f"DVC said:\n{_tail(tail[said:said + 4])}")
        pause = min(delay, lock_wait - waited)
        log.warning("%s: %s is held by another process; retrying in %.1f s (waited %.0f s of flows.lock_wait "
                    "%g s)", what, lock, pause, waited, lock_wait)
        time.sleep(pause)
        delay = min(2 * delay, LOCK_RETRY_MAX)


def run_dvc_repro(stage: str, repo: Path, log: logging.Logger | logging.LoggerAdapter, lock_wait: float = 0.0,
                  force: bool = False) -> bool:
    """Run ``dvc repro --single-item stage`` in ``repo``, streaming its output into ``log``; True when the stage
    ran, False when DVC found it up to date and skipped it.

    ``--single-item`` because the flow has already brought every upstream stage up to date, in order; DVC
    still skips the stage when nothing it depends on changed. While another process holds DVC's lock it waits up
    to ``lock_wait`` seconds (0: fail as DVC does, after its own few seconds), then raises DvcLockTimeout. Raises
    StageFailed on any other non-zero exit. ``force`` reruns the stage even when its deps are unchanged (a source
    outside the project changed, which DVC cannot see).
    """
    args = ["repro", "--single-item", *(["--force"] if force else []), stage]
    log.info("$ dvc %s   (in %s)", shlex.join(args), repo)
    returncode, output, tail = _dvc_waiting(args, f"DVC stage {stage!r}", repo, log, lock_wait)
    if returncode != 0:
        raise StageFailed(stage, returncode, tail)
    return not any(SKIPPED.search(line) for line in [*output, *tail])


def run_dvc_repro_all(repo: Path, log: logging.Logger | logging.LoggerAdapter, lock_wait: float = 0.0) -> list[str]:
    """Plain ``dvc repro`` of the whole pipeline (after a parallel sweep: the evaluations and the report, its
    trainings being committed); returns the stages DVC ran. Raises StageFailed as :func:`run_dvc_repro` does."""
    log.info("$ dvc repro   (in %s)", repo)
    returncode, output, tail = _dvc_waiting(["repro"], "dvc repro", repo, log, lock_wait)
    if returncode != 0:
        raise StageFailed("(the pipeline)", returncode, tail)
    return RAN.findall("\n".join([*output, *tail]))


# How DVC says it runs a stage: "Running stage 'evaluate@hg-0':".
RAN = re.compile(r"Running stage '([^']+)'")


def commit_stage(stage: str, repo: Path, log: logging.Logger | logging.LoggerAdapter, lock_wait: float = 0.0) -> None:
    """``dvc commit --force <stage>``: record a stage whose command ran outside ``dvc repro`` (a parallel sweep's
    training) in dvc.lock and the cache, exactly as ``dvc repro`` would have after running it. Waits for DVC's lock
    as :func:`run_dvc_repro` does; raises StageFailed."""
    args = ["commit", "--force", stage]
    log.info("$ dvc %s   (in %s)", shlex.join(args), repo)
    returncode, _, tail = _dvc_waiting(args, f"dvc commit {stage!r}", repo, log, lock_wait)
    if returncode != 0:
        raise StageFailed(stage, returncode, tail)


class _InfoAsDebug(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Passes ``info`` on as ``debug``: a command's machine-readable output (``dvc status --json``, one line naming
    every changed file) is for the program, not the terminal; warnings (a held lock) still show."""

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)


def changed_stages(stages: Sequence[str], repo: Path, log: logging.Logger | logging.LoggerAdapter,
                   lock_wait: float = 0.0) -> list[str]:
    """Which of ``stages`` ``dvc repro`` would run (``dvc status`` names them), in the order given."""
    if not stages:
        return []
    returncode, output, tail = _dvc_waiting(["status", "--json", *stages], "dvc status", repo, _InfoAsDebug(log),
                                            lock_wait)
    if returncode != 0:
        raise StageFailed("status", returncode, tail)
    changed = json.loads("\n".join(output) or "{}")
    return [stage for stage in stages if changed.get(stage)]


def stage_commands(repo: Path, stages: Sequence[str]) -> dict[str, str]:
    """The shell command dvc.yaml renders for each of ``stages`` (matrix and params interpolated), read through
    DVC's own API, which takes no lock for reading."""
    from dvc.repo import Repo

    dvc_yaml = (repo / "dvc.yaml").resolve()
    with Repo(str(repo)) as dvc_repo:  # its index, not collect(): a target is read relative to the cwd
        found = {stage.name: stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd)
                 for stage in dvc_repo.index.stages
                 if getattr(stage, "cmd", None) and Path(stage.dvcfile.path).resolve() == dvc_yaml}
    missing = [name for name in stages if name not in found]
    if missing:
        raise FlowSetupError(f"{repo}: dvc.yaml has no stage {', '.join(missing)}")
    return {name: found[name] for name in stages}


def git_pull(repo: Path, log: logging.Logger | logging.LoggerAdapter) -> None:
    """``git pull --ff-only`` in ``repo``: bring in what the team committed, never a merge the run would invent.
    No prompt for credentials (a scheduled run has nobody to answer it). Raises SyncFailed."""
    cmd = ["git", "pull", "--ff-only"]
    log.info("$ %s   (in %s)", shlex.join(cmd), repo)
    env = {**_stage_env(), "GIT_TERMINAL_PROMPT": "0"}
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, errors="replace")
    lines = [_last_frame(line) for line in (proc.stdout + proc.stderr).splitlines() if _last_frame(line)]
    for line in lines:
        log.info("%s", line)
    if proc.returncode != 0:
        raise SyncFailed(cmd, proc.returncode, lines[-STDERR_TAIL_LINES:])


DVC_SYNC = {
    # --allow-missing: an output the remote lacks (nobody pushed it, or dvc.lock names a stage that never ran) is no
    # error, the stages rebuild it; what the remote has is not recomputed.
    "pull": ["pull", "--allow-missing"],
    "push": ["push"],
}


def dvc_sync(direction: str, repo: Path, log: logging.Logger | logging.LoggerAdapter, lock_wait: float = 0.0) -> None:
    """``dvc pull`` or ``dvc push`` (``direction``) with the repository's default remote, waiting for DVC's lock as
    :func:`run_dvc_repro` does. Raises SyncFailed with the command's output tail (no remote configured, the remote
    unreachable)."""
    if direction not in DVC_SYNC:
        raise ValueError(f"dvc_sync: direction {direction!r} is not one of {', '.join(DVC_SYNC)}")
    args = DVC_SYNC[direction]
    log.info("$ dvc %s   (in %s)", shlex.join(args), repo)
    returncode, output, tail = _dvc_waiting(args, f"dvc {direction}", repo, log, lock_wait)
    if returncode != 0:
        raise SyncFailed(["dvc", *args], returncode, [*output, *tail][-STDERR_TAIL_LINES:])


def list_stages(repo: Path) -> list[str]:
    """Every stage DVC sees in ``repo``, foreach/matrix items expanded (``train@hg8``), in dvc.yaml order."""
    done = subprocess.run(
        _dvc("stage", "list", "--name-only"), cwd=repo, env=_stage_env(), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise FlowSetupError(f"{repo}: `dvc stage list` failed: {done.stderr.strip() or done.stdout.strip()}")
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


@dataclass(frozen=True)
class StagePlan:
    """Which DVC stages the flow runs, in which order."""

    fetch: str
    preprocess: str
    runs: tuple[tuple[str, int], ...]  # (variant, seed) of every train@<variant>-<seed>, in dvc.yaml's order
    evaluated: frozenset[tuple[str, int]]  # the runs that have an evaluate@<variant>-<seed> stage
    report: str | None
    imports: tuple[str, ...] = ()  # params imports: import@<name>, then evaluate_import@<name> where it exists
    scored_imports: frozenset[str] = frozenset()

    @property
    def variants(self) -> tuple[str, ...]:
        """The trained variants, in dvc.yaml's order."""
        return tuple(dict.fromkeys(variant for variant, _ in self.runs))

    def seeds_of(self, variant: str) -> tuple[int, ...]:
        """The seeds ``variant`` is trained from, in dvc.yaml's (params ``seeds``) order."""
        return tuple(seed for name, seed in self.runs if name == variant)

    def stages(self) -> list[str]:
        """Every stage to run, in order (the fetch stage first): each run's training, then its evaluation."""
        order = [self.fetch, self.preprocess]
        for variant, seed in self.runs:
            order.append(f"train@{stage_item(variant, seed)}")
            if (variant, seed) in self.evaluated:
                order.append(f"evaluate@{stage_item(variant, seed)}")
        for name in self.imports:  # released weights, scored beside the variants before the report
            order.append(f"import@{name}")
            if name in self.scored_imports:
                order.append(f"evaluate_import@{name}")
        return order + ([self.report] if self.report else [])

    def unplanned(self, stages: Sequence[str]) -> list[str]:
        """Stages of dvc.yaml the flow does not run (the other dataset's fetch stage aside), to warn about."""
        known = set(self.stages())
        return [name for name in stages if name not in known]


def plan_stages(stages: Sequence[str], dataset: str, champion_variant: str) -> StagePlan:
    """Map dvc.yaml's stage names onto the flow's steps; a missing required stage is an error listing all."""
    fetch = "download"  # fetches MPII/FLIC, or generates the synthetic set when dataset is synthetic
    available = ", ".join(stages) or "(none)"
    for needed in (fetch, "preprocess"):
        if needed not in stages:
            message = f"dvc.yaml has no {needed!r} stage (dataset: {dataset}); stages: {available}"
            raise FlowSetupError(message)
    items = [name.split("@", 1)[1] for name in stages if name.startswith("train@")]
    if not items:
        raise FlowSetupError(f"dvc.yaml has no train@<variant>-<seed> stages; stages: {available}")
    runs = tuple(parse_stage_item(item) for item in items)
    if None in runs:
        odd = [f"train@{item}" for item, run in zip(items, runs, strict=True) if run is None]
        raise FlowSetupError(f"dvc.yaml's {', '.join(odd)} is not train@<variant>-<seed> (a matrix of the sweep "
                             f"and params seeds); stages: {available}")
    imports = tuple(name.split("@", 1)[1] for name in stages if name.startswith("import@"))
    plan = StagePlan(fetch, "preprocess", runs, frozenset(r for r in runs if f"evaluate@{stage_item(*r)}" in stages),
                     "report" if "report" in stages else None, imports,
                     frozenset(n for n in imports if f"evaluate_import@{n}" in stages))
    if champion_variant not in plan.variants:
        raise FlowSetupError(
            f"params flows.champion_variant is {champion_variant!r}, but dvc.yaml trains only "
            f"{', '.join(plan.variants)}"
        )
    return plan


