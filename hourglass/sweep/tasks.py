"""One training stage's command, run by a sweep worker: the stage's own ``cmd`` as DVC would run it.

DVC's repository lock allows one ``dvc repro`` at a time, so a sweep never runs DVC in its workers: each worker runs
the command ``dvc.yaml`` renders for its ``train@<variant>-<seed>`` stage (``python -m pipeline.train ...``) in the
project directory, and the sweep's main process records the finished stage with ``dvc commit`` afterwards. A killed
or failed command is simply run again: ``pipeline.train`` resumes from its last epoch checkpoint, as under ``dvc
repro``. Nothing here imports Dask at module level: the function is shipped to the workers by pickling.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import signal
import subprocess
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

TAIL_LINES = 20
CUDA_ENV = "CUDA_VISIBLE_DEVICES"


@dataclass(frozen=True)
class StageCommand:
    """A ``train@<variant>-<seed>`` stage and the shell command dvc.yaml renders for it."""

    stage: str
    cmd: str


@dataclass(frozen=True)
class TaskOutcome:
    """How one attempt at a stage ended: its exit code (negative: killed by that signal), where it ran, for how
    long, the tail of its output and the file holding all of it."""

    stage: str
    returncode: int
    worker: str
    seconds: float
    tail: tuple[str, ...]
    log_file: str
    devices: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def cuda_devices(slot: int, gpus_per_task: int) -> str:
    """``CUDA_VISIBLE_DEVICES`` for the worker in ``slot`` (0, 1, ...): its own ``gpus_per_task`` consecutive GPUs,
    so N workers x K GPUs share a machine's N*K GPUs without overlap."""
    if slot < 0 or gpus_per_task < 1:
        raise ValueError(f"cuda_devices: slot {slot} and gpus_per_task {gpus_per_task} must be >= 0 and >= 1")
    first = slot * gpus_per_task
    return ",".join(str(i) for i in range(first, first + gpus_per_task))


def _worker_slot() -> tuple[str, int | None]:
    """The Dask worker's name and, on a local cluster (workers named 0..N-1), its slot; outside a worker
    ("local", None)."""
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return "local", None
    return str(name), name if isinstance(name, int) else None


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGKILL this command when the worker thread that started it dies, so a
    killed worker leaves no training behind to race its retry on the same files."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _shell_line(cmd: str) -> str:
    """The line for ``sh -c``: a simple command (no pipes, lists, redirections or subshells outside quotes) is
    ``exec``'d, so the training itself is the worker's child, carries the die-with-parent signal and reports its own
    exit status; anything else runs as written."""
    lexer = shlex.shlex(cmd, posix=True, punctuation_chars=True)
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: let the shell say so
        return cmd
    operators = any(token and all(c in "();<>|&" for c in token) for token in tokens)
    return cmd if operators or "\n" in cmd or not tokens else f"exec {cmd}"


def run_stage_command(command: StageCommand, cwd: str, env: Mapping[str, str], log_file: str,
                      gpus_per_task: int = 0) -> TaskOutcome:
    """Run ``command.cmd`` through the shell in ``cwd`` (as DVC runs a stage's cmd), with ``env`` added to the
    worker's environment; its output goes to ``log_file`` (appended, so retries follow one another).

    ``gpus_per_task`` > 0 on a local cluster gives the worker its own GPUs through ``CUDA_VISIBLE_DEVICES``; on a
    batch scheduler the job's allocation already set it (the worker has no slot) and it is left as it is."""
    worker, slot = _worker_slot()
    full_env = {**os.environ, **env}
    devices = full_env.get(CUDA_ENV)
    if gpus_per_task > 0 and slot is not None:
        devices = full_env[CUDA_ENV] = cuda_devices(slot, gpus_per_task)
    path = Path(log_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    start = time.monotonic()
    # Line-buffered: the sweep's main process follows these logs while the training runs (hourglass.sweep.progress).
    with open(path, "a", encoding="utf-8", errors="replace", buffering=1) as log:
        log.write(f"--- {command.stage} on worker {worker}" + (f", {CUDA_ENV}={devices}" if devices else "")
                  + f": $ {command.cmd}\n")
        log.flush()
        proc = subprocess.Popen(_shell_line(command.cmd), shell=True, cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1,
                                preexec_fn=_die_with_parent)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            tail.append(line.rstrip("\n"))
        returncode = proc.wait()
        log.write(f"--- {command.stage}: exit code {returncode}\n")
    return TaskOutcome(command.stage, returncode, worker, time.monotonic() - start, tuple(tail), str(path), devices)


def summary_line(stage: str, outcomes: Sequence[TaskOutcome]) -> str:
    """One line per stage for the sweep's report: done or failed, after how many attempts, where, how long."""
    last = outcomes[-1]
    state = "done" if last.ok else f"FAILED (exit code {last.returncode})"
    tries = f"{len(outcomes)} attempt{'s' if len(outcomes) != 1 else ''}"
    total = sum(o.seconds for o in outcomes)
    where = f"worker {last.worker}" + (f", GPUs {last.devices}" if last.devices else "")
    return f"{stage}: {state} after {tries} ({total:.0f} s, {where}); log {last.log_file}"
