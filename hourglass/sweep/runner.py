"""The sweep's scheduling loop: every training stage on a Dask cluster, N at a time, retried, recorded as it ends.

Dask owns the placement (one stage per worker at a time, through the worker resource ``train``); this loop owns
the order and the retries. It hands Dask no more stages than there are workers (``slots``), the next one as one ends:
Dask sends resource-bound tasks to a worker when they are submitted and may queue two on one worker while another
sits idle (seen: five trainings on three workers, the fifth waiting 7 minutes for a busy worker while one was free).
It owns the retries because a retry here is a rerun of the stage's command that resumes from its checkpoint, and because
each outcome must reach the main process, which alone talks to DVC: ``on_done`` (``dvc commit`` of the stage) is
called here, one stage after another, never from a worker. A stage that fails ``retries + 1`` times is reported and
the others go on.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hourglass.sweep.tasks import StageCommand, TaskOutcome, run_stage_command, summary_line

RESOURCE = "train"  # every worker holds one: Dask starts one training per worker at a time

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    """Every attempt of every stage, in the order the stages were given; which ended well and which did not."""

    attempts: dict[str, list[TaskOutcome]] = field(default_factory=dict)
    commit_errors: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [s for s, tries in self.attempts.items() if not tries[-1].ok or s in self.commit_errors]

    @property
    def done(self) -> list[str]:
        return [s for s in self.attempts if s not in self.failed]

    def lines(self) -> list[str]:
        """One line per stage, then the commit failures."""
        out = [summary_line(stage, tries) for stage, tries in self.attempts.items()]
        return out + [f"{stage}: trained, but `dvc commit` failed: {err}" for stage, err in self.commit_errors.items()]


def _lost(stage: str, err: BaseException, log_file: str) -> TaskOutcome:
    """An attempt that never returned: its worker died more often than Dask allows (KilledWorker) or the task
    raised."""
    return TaskOutcome(stage, -1, "lost", 0.0, (f"{type(err).__name__}: {err}",), log_file)


def run_sweep(client: Any, commands: Sequence[StageCommand], cwd: Path, env: Mapping[str, str], log_dir: Path,
              on_done: Callable[[str], None], retries: int = 2, gpus_per_task: int = 0,
              slots: int | None = None) -> SweepResult:
    """Run ``commands`` on ``client``'s workers, at most ``slots`` at a time in the given order (None: all submitted
    at once); after each success call ``on_done(stage)`` (in this process, one at a time). A failed attempt
    (non-zero exit, a killed command, a lost worker) is submitted again, ahead of the stages not yet started, up to
    ``retries`` times. Returns every attempt; raises nothing for a failed stage."""
    from distributed import as_completed

    if retries < 0:
        raise ValueError(f"retries is {retries}; it must be >= 0")
    if slots is not None and slots < 1:
        raise ValueError(f"slots is {slots}; it must be >= 1")
    result = SweepResult({c.stage: [] for c in commands})
    by_stage = {c.stage: c for c in commands}
    logs = {c.stage: str(log_dir / f"{c.stage}.log") for c in commands}

    def submit(stage: str) -> Any:
        attempt = len(result.attempts[stage]) + 1
        return client.submit(run_stage_command, by_stage[stage], str(cwd), dict(env), logs[stage], gpus_per_task,
                             key=f"{stage}-attempt-{attempt}", resources={RESOURCE: 1}, pure=False)

    waiting = deque(c.stage for c in commands)
    futures: dict[Any, str] = {}
    pending = as_completed()

    def fill() -> None:
        while waiting and (slots is None or len(futures) < slots):
            stage = waiting.popleft()
            future = submit(stage)
            futures[future] = stage
            pending.add(future)

    fill()
    for future in pending:
        stage = futures.pop(future)
        try:
            outcome = future.result()
        except Exception as err:  # noqa: BLE001 (a lost worker or a task error is one failed attempt)
            outcome = _lost(stage, err, logs[stage])
        result.attempts[stage].append(outcome)
        if outcome.ok:
            log.info("%s: trained on worker %s in %.0f s; recording it in dvc.lock", stage, outcome.worker,
                     outcome.seconds)
            fill()  # the next training starts before this one's commit
            try:
                on_done(stage)
            except Exception as err:  # noqa: BLE001 (the stage is reported, the others go on)
                result.commit_errors[stage] = str(err)
                log.error("%s: `dvc commit` failed: %s", stage, err)
            continue
        tries = len(result.attempts[stage])
        said = " | ".join(outcome.tail[-3:])
        if tries <= retries:
            log.warning("%s: attempt %d failed (exit code %d: %s); retrying, it resumes from its checkpoint", stage,
                        tries, outcome.returncode, said)
            waiting.appendleft(stage)
        else:
            log.error("%s: failed %d time(s), giving up (exit code %d: %s); log %s", stage, tries, outcome.returncode,
                      said, outcome.log_file)
        fill()
    return result
