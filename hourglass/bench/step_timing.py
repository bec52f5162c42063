"""Timing the real training loop and its data loader on this device.

The timed window starts after the warm-up steps (cuDNN's algorithm search, compilation, the loader's start-up) with a
device synchronisation and ends with one after the last step; the loop itself reads its losses back every
``train.log_every`` steps, as in training, and on CUDA the host synchronisations inside the window are counted.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from hourglass.config import ParamsConfig
from hourglass.data.sampler import EpochSampler
from hourglass.precision import select_device
from hourglass.train import loop
from hourglass.train.distributed import SINGLE_PROCESS, DistInfo
from hourglass.train.fastpath import resolve_fast_path
from hourglass.train.seeding import seed_worker


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class SyncCounter:
    """Counts the host synchronisations torch's CUDA sync debug mode reports (``torch.cuda.set_sync_debug_mode``:
    a warning at every operation that makes the host wait for the GPU) between :meth:`start` and :meth:`stop`;
    other warnings pass through. ``set_mode`` is injectable: the CPU has no such mode."""

    MESSAGE = "called a synchronizing CUDA operation"

    def __init__(self, set_mode: Any = None) -> None:
        self.set_mode = set_mode or torch.cuda.set_sync_debug_mode
        self.count = 0
        self._saved: tuple[Any, list[Any]] | None = None

    def start(self) -> None:
        self._saved = (warnings.showwarning, list(warnings.filters))
        warnings.simplefilter("always")  # every occurrence, not once per source line
        warnings.showwarning = self._show
        self.set_mode("warn")

    def stop(self) -> None:
        self.set_mode("default")
        if self._saved is not None:
            warnings.showwarning, warnings.filters[:] = self._saved
            self._saved = None

    def _show(self, message: Any, category: Any, filename: str, lineno: int, file: Any = None,
              line: str | None = None) -> None:
        if self.MESSAGE in str(message):
            self.count += 1
        elif self._saved is not None:
            self._saved[0](message, category, filename, lineno, file, line)


class StepTimer:
    """A :class:`hourglass.train.loop.StepObserver`: the window from the end of step ``warmup - 1`` to the end of step
    ``warmup + steps - 1`` (device synchronised at both ends), the time the loop waited for batches inside it, and,
    given a :class:`SyncCounter` (on CUDA), the host synchronisations inside it."""

    def __init__(self, device: torch.device, warmup: int, steps: int, syncs: SyncCounter | None = None) -> None:
        self.device, self.warmup, self.steps = device, warmup, steps
        self.started: float | None = None
        self.ended: float | None = None
        self.waited = 0.0
        self.timed = 0
        self.syncs = syncs

    def on_batch(self, waited: float) -> None:
        if self.started is not None and self.ended is None:
            self.waited += waited

    def on_step(self, step: int) -> None:
        if step == self.warmup - 1:
            _sync(self.device)
            self.started = time.perf_counter()
            if self.syncs is not None:
                self.syncs.start()
        elif self.started is not None and self.ended is None:
            self.timed += 1
            if self.timed == self.steps:
                if self.syncs is not None:
                    self.syncs.stop()
                _sync(self.device)
                self.ended = time.perf_counter()

    def figures(self, global_batch: int) -> dict[str, float]:
        if self.started is None or self.ended is None:
            raise RuntimeError(f"the loop ran {self.timed} of {self.steps} timed steps")
        seconds = self.ended - self.started
        return {"samples_s": self.steps * global_batch / seconds, "step_ms": seconds / self.steps * 1e3,
                "data_wait_share": self.waited / seconds, "timed_s": seconds,
                "host_syncs": None if self.syncs is None else self.syncs.count}


def time_training(params: ParamsConfig, out_dir: Path, train_set: Any, val_set: Any, warmup: int,
                  info: DistInfo = SINGLE_PROCESS) -> dict[str, Any]:
    """One epoch of ``warmup + steps`` steps of :func:`hourglass.train.loop.train` (``params.train.steps_per_epoch``),
    timed by a :class:`StepTimer`; this process's figures, with the run's resolved runtime record."""
    device = select_device(info.local_rank)
    steps = int(params.train.steps_per_epoch) - warmup
    timer = StepTimer(device, warmup, steps, SyncCounter() if device.type == "cuda" else None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    try:
        # loop.train looked up at call time: whatever the training stage runs, the check times
        loop.train(params, out_dir, train_set=train_set, val_set=val_set, seed=0, info=info, observer=timer)
    finally:  # a run that fails inside the window leaves neither the debug mode nor the warning hook behind
        if timer.syncs is not None:
            timer.syncs.stop()
    run_s = time.perf_counter() - started
    # the loop's own read-backs inside the window (steps warmup .. warmup + steps - 1): what host_syncs should be
    readbacks = sum(1 for step in range(warmup, warmup + steps) if step % params.train.log_every == 0)
    out = {"ok": True, **timer.figures(params.train.batch_size), "run_s": run_s, "timed_steps": steps,
           "warmup_steps": warmup, "readbacks": readbacks, "peak_gpu_memory_gib": None}
    if device.type == "cuda":
        out["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    if info.is_main:
        out["runtime"] = json.loads((out_dir / "metrics.json").read_text())["runtime"]
    return out


def time_loader(params: ParamsConfig, train_set: Any, batches: int) -> dict[str, Any]:
    """The training DataLoader as the fast path builds it, alone, batches copied to the device: samples/s."""
    device = select_device()
    fast = resolve_fast_path(params.train, device)
    batch = params.train.batch_size
    sampler = EpochSampler(len(train_set), batch, steps=batches + max(1, fast.workers), seed=0)
    loader = DataLoader(train_set, batch_size=batch, sampler=sampler, drop_last=True, worker_init_fn=seed_worker,
                        **fast.loader_kwargs())
    iterator = iter(loader)
    for _ in range(max(1, fast.workers)):  # until every worker has started and delivered
        next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        sample = next(iterator)
        sample["image"].to(device, non_blocking=True)
        sample["target"].to(device, non_blocking=True)
    _sync(device)
    seconds = time.perf_counter() - started
    del iterator, loader
    return {"workers": fast.workers, "pin_memory": fast.pin_memory, "prefetch_factor": fast.prefetch_factor,
            "samples_s": batches * batch / seconds, "batches": batches}
