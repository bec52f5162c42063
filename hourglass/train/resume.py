"""The checkpoint a training run writes after every epoch, and resuming from it.

A killed run resumes to exactly the weights of an uninterrupted one (CPU, deterministic settings): the checkpoint
holds the model and its constructor arguments (``network``), the optimiser, schedule and scaler states, the epoch
and step counters, every random generator and the per-epoch history. It is resumed only when its fingerprint
(:mod:`hourglass.train.fingerprint`: configuration, data and code) is this run's; the sampler needs no saved
position, since an epoch's batches depend only on (seed, epoch) and every checkpoint is written at an epoch's end.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hourglass.io.checkpoint import load_checkpoint, rng_state, set_rng_state
from hourglass.model import StackedHourglass
from hourglass.train.fastpath import FastPath
from hourglass.train.fingerprint import mismatches
from hourglass.train.optim import LearningRateSchedule, set_implementation

log = logging.getLogger(__name__)


@dataclass
class Trainables:
    """What the optimiser steps change, and what a checkpoint must hold to continue: the network, its optimiser, the
    learning-rate schedule and the loss scaler."""

    network: StackedHourglass
    optimizer: torch.optim.Optimizer
    schedule: LearningRateSchedule
    scaler: torch.amp.GradScaler


@dataclass
class Progress:
    """Where a run is: epochs and optimiser steps done, its MLflow run, the per-epoch history and where its first
    weights came from (``train.init_from`` or the warm start); fresh, or restored from a checkpoint."""

    epoch: int = 0
    step: int = 0
    run_id: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    initialised: dict[str, Any] | None = None


def checkpoint_state(parts: Trainables, progress: Progress, *, seed: int, variant: str | None,
                     steps_per_epoch: int, record: Mapping[str, Any], fingerprint: Mapping[str, Any]
                     ) -> dict[str, Any]:
    """Everything :func:`restore` needs to continue after ``progress.epoch`` epochs (``progress.step`` optimiser
    steps), plus the run's resolved config (``record``) and identity for provenance."""
    network, epoch = parts.network, progress.epoch
    return {
        "model": network.state_dict(), "network": network.config.as_record(),
        "optimizer": parts.optimizer.state_dict(), "schedule": parts.schedule.state_dict(),
        "scaler": parts.scaler.state_dict(), "epoch": epoch, "step": progress.step,
        "sampler": {"epoch": epoch, "seed": seed, "steps": steps_per_epoch},
        "rng": rng_state(), "config": record, "variant": variant, "seed": seed,
        "mlflow_run_id": progress.run_id, "history": progress.history, "fingerprint": fingerprint,
        **({"initialised_from": progress.initialised} if progress.initialised else {}),
    }


def resumable_state(path: Path, fingerprint: Mapping[str, Any], device: torch.device) -> dict[str, Any] | None:
    """The checkpoint at ``path`` when it belongs to this run (same configuration, data and code), else None,
    saying why it is not resumed."""
    if not path.exists():
        return None
    state = load_checkpoint(path, map_location=device)
    differ = mismatches(state.get("fingerprint"), fingerprint)
    if differ:
        log.warning("%s: starting fresh, not resuming: the checkpoint belongs to another run (%s differ%s); it "
                    "is replaced after the first epoch", path, ", ".join(differ), "s" if len(differ) == 1 else "")
        return None
    return state


def restore(state: Mapping[str, Any], parts: Trainables, fast: FastPath) -> Progress:
    """Load a :func:`checkpoint_state` into the run's objects and the global generators. Checkpoints written with
    the sampler's former ``position`` entry load the same: only the entries read here matter."""
    parts.network.load_state_dict(state["model"])
    parts.optimizer.load_state_dict(state["optimizer"])
    set_implementation(parts.optimizer, fast.optimizer_flags())
    parts.schedule.load_state_dict(state["schedule"])
    parts.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    return Progress(epoch=int(state["epoch"]), step=int(state["step"]), run_id=state.get("mlflow_run_id"),
                    history=list(state.get("history", [])), initialised=state.get("initialised_from"))
