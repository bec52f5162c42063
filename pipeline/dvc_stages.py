"""The DVC side of the retraining flow: which stages run in which order, and one ``dvc repro`` of one stage.

Every step of the flow is one ``dvc repro --single-item <stage>`` subprocess, run one after another because DVC's
repo lock forbids concurrent ``dvc repro`` processes; DVC keeps owning caching (it skips an unchanged stage). No
Prefect here: :mod:`pipeline.flows` wraps these in tasks.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from hourglass.layout import parse_stage_item, stage_item

STDERR_TAIL_LINES = 30


class StageFailed(RuntimeError):
    """``dvc repro`` of one stage exited non-zero; the message carries the stage and its stderr's tail."""

    def __init__(self, stage: str, returncode: int, stderr_tail: Sequence[str]) -> None:
        self.stage, self.returncode, self.stderr_tail = stage, returncode, list(stderr_tail)
        tail = "\n".join(f"  | {line}" for line in self.stderr_tail) or "  | (no stderr)"
        message = f"DVC stage {stage!r} failed (dvc repro exit code {returncode}); stderr tail:\n{tail}"
        super().__init__(message)


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


def run_dvc_repro(stage: str, repo: Path, log: logging.Logger | logging.LoggerAdapter) -> bool:
    """Run ``dvc repro --single-item stage`` in ``repo``, streaming its output into ``log``; True when the stage
    ran, False when DVC found it up to date and skipped it.

    ``--single-item`` because the flow has already brought every upstream stage up to date, in order; DVC
    still skips the stage when nothing it depends on changed. Raises StageFailed on a non-zero exit.
    """
    args = ["repro", "--single-item", stage]
    log.info("$ dvc %s   (in %s)", shlex.join(args), repo)
    proc = subprocess.Popen(
        _dvc(*args), cwd=repo, env=_stage_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
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
    if returncode != 0:
        raise StageFailed(stage, returncode, tail)
    return not any(SKIPPED.search(line) for line in [*output, *tail])


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


