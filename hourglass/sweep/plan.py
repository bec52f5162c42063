"""How many trainings a CPU machine runs at once, and with how many threads each.

On a CPU, one-thread trainings side by side beat the same trainings one after another with every core each: a
training's step has a per-operation cost that more threads do not shrink (the demo's batch-8 step: about a third of
it), and its data loading runs in the main process while the other cores wait. Measured on a 2-core AMD EPYC
(NOTES.md, session 21), one epoch of the demo's hg and hg_stacked: two 1-thread trainings at once took 0.67x
(native bf16) and 0.75x (fp32 under AVX2 caps) the time of the two run one after another with 2 threads each; three
1-thread trainings at once took 1.64x (bf16) and 1.39x (fp32) the pair's time for 1.5x its work. So a CPU runs
``ceil(1.5 x cores)`` trainings at a time, one thread each when there are more trainings than cores. Every training
of a plan gets the same thread count, so its numbers do not depend on which one finished first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Resident memory one demo-sized CPU training may need: 0.8-1.1 GB measured (max RSS, 192 px, batches of 8).
TRAINING_MEMORY_BYTES = int(1.5 * 2**30)


@dataclass(frozen=True)
class TrainingPlan:
    """Trainings at a time (``workers``) and each one's intra-op threads."""

    workers: int
    threads: int

    @property
    def parallel(self) -> bool:
        return self.workers > 1

    def describe(self) -> str:
        """The plan in words, for the demo's first line."""
        each = f"{self.threads} thread{'s' if self.threads != 1 else ''}"
        if not self.parallel:
            return f"one training at a time, {each}"
        return f"{self.workers} trainings at a time, {each} each"


def available_memory() -> int | None:
    """Bytes the kernel says new work can use without swapping (``MemAvailable``); None where it does not say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def plan_trainings(jobs: int, on_cpu: bool, cores: int, memory: int | None) -> TrainingPlan:
    """The plan for ``jobs`` trainings: on a CPU with more than one to run, ``ceil(1.5 x cores)`` at a time at most
    (and no more than ``memory`` holds at :data:`TRAINING_MEMORY_BYTES` each), the cores split evenly between them;
    otherwise (a GPU, a single training, too little memory) one at a time with every core."""
    if jobs < 0 or cores < 1:
        raise ValueError(f"plan_trainings: jobs {jobs} must be >= 0 and cores {cores} >= 1")
    workers = min(jobs, (3 * cores + 1) // 2) if on_cpu else 1
    if memory is not None:
        workers = min(workers, memory // TRAINING_MEMORY_BYTES)
    return split_cores(workers, cores)


def split_cores(workers: int, cores: int) -> TrainingPlan:
    """``workers`` trainings at a time (at least 1), the ``cores`` split evenly between them, at least one thread
    each; a single training gets every core."""
    workers = max(1, workers)
    return TrainingPlan(workers, cores if workers == 1 else max(1, cores // workers))


def makespan(durations: list[float], plan: TrainingPlan, cores: int) -> float:
    """Seconds until the last training ends when each takes ``durations[i]`` seconds at full speed, ``plan.workers``
    run at once in the given order, and running trainings that ask for more threads than ``cores`` share them evenly
    (three 1-thread trainings on 2 cores each run at 2/3 speed)."""
    waiting, running, clock = list(durations), [], 0.0
    while waiting or running:
        while waiting and len(running) < plan.workers:
            running.append(waiting.pop(0))
        speed = min(1.0, cores / (len(running) * plan.threads))
        first = min(running)
        clock += first / speed
        running = [left - first for left in running]
        running.remove(0.0)  # the one that ended (first - first is exactly 0.0); equal ones end next round
    return clock
