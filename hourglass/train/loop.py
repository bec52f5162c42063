"""The training loop as one function of the config: ``train(params, out_dir, train_set=..., val_set=...)``.

The same function runs as a single process or as one process of a ``torchrun`` job (the caller passes a
:class:`DistInfo`; DistributedDataParallel over NCCL/gloo). Per epoch it trains on this rank's share of
:class:`~hourglass.data.sampler.EpochSampler`'s order (``steps_per_epoch`` global batches, as many shuffled passes
over the people as that takes) with the loss of :mod:`hourglass.train.criterion`, validates with the official metric
(:mod:`hourglass.train.validation`), records both DVC files and MLflow through :mod:`hourglass.tracking.runs`, and
writes an atomic checkpoint (:mod:`hourglass.train.resume`) from which a killed run resumes to exactly the weights
of an uninterrupted one. Only rank 0 writes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from hourglass.config import ParamsConfig
from hourglass.data.sampler import EpochSampler
from hourglass.family import family_of
from hourglass.io.checkpoint import CHECKPOINT_NAME, save_checkpoint
from hourglass.lineage import compute_lineage, lineage_of_config
from hourglass.model import StackedHourglass, create_model
from hourglass.precision import runtime_record, select_device, select_precision
from hourglass.tracking.run_tags import training_tags
from hourglass.tracking.runs import RunTracker
from hourglass.tracking.store import default_tracking_uri, registered_name
from hourglass.train.criterion import HeatmapCriterion, build_criterion, forward_loss
from hourglass.train.distributed import SINGLE_PROCESS, DistInfo, barrier, broadcast_buffers, process_group
from hourglass.train.fastpath import backend_flags, compile_model, resolve_fast_path
from hourglass.train.fingerprint import training_fingerprint
from hourglass.train.heap import heap_applies, kept_heap
from hourglass.train.init_from import initialise_from, warm_start
from hourglass.train.loss_readback import LossReadback, NonFinite
from hourglass.train.optim import create_optimizer, create_schedule
from hourglass.train.resume import Progress, Trainables, checkpoint_state, restore, resumable_state
from hourglass.train.run_config import (
    RunContext,
    resolve_variant,
    run_params,
    run_record,
    sweep_position,
    with_lineage,
    write_config,
)
from hourglass.train.seeding import determinism, seed_all, seed_worker
from hourglass.train.validation import validate

log = logging.getLogger(__name__)
RESOLVED_CONFIG = "config.yaml"


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stopped and the last good checkpoint is kept.

    Losses are read back every ``train.log_every`` steps and at each epoch's end (:mod:`hourglass.train.loss_readback`):
    the error comes at the first read-back after the bad step, before that step's update, and names the bad step.
    Updates between the two were made in memory only; the checkpoint is from the last epoch of finite losses."""


class StepObserver(Protocol):
    """Watches the training loop from outside (``python -m hourglass.bench device``); host-side calls only."""

    def on_batch(self, waited: float) -> None:
        """A batch arrived after the loop had waited ``waited`` seconds for it."""

    def on_step(self, step: int) -> None:
        """Optimiser step ``step`` (run-wide count) has been queued."""


@dataclass
class TrainResult:
    """What a finished training leaves: the trained network (unwrapped) and its final metrics."""

    out_dir: Path
    model: StackedHourglass
    epochs: int
    steps: int
    final_metrics: dict[str, float]
    mlflow_run_id: str | None = None
    model_uri: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)


def _observed(batches: Iterable[Any], observer: StepObserver | None) -> Iterator[Any]:
    """``batches``, telling ``observer`` how long each one was waited for."""
    if observer is None:
        yield from batches
        return
    iterator = iter(batches)
    while True:
        started = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            return
        observer.on_batch(time.perf_counter() - started)
        yield batch


def train(
    params: ParamsConfig,
    out_dir: str | Path,
    *,
    train_set: Dataset,
    val_set: Dataset,
    variant: str | None = None,
    seed: int | None = None,
    info: DistInfo = SINGLE_PROCESS,
    stage: str | None = None,
    data_fingerprint: str | None = None,
    data_dir: str | Path | None = None,
    observer: StepObserver | None = None,
    criterion: HeatmapCriterion | None = None,
) -> TrainResult:
    """Train ``params.model`` (after ``variant``'s overrides) to ``params.train.epochs`` from training seed ``seed``
    (initial weights, sample order, augmentation; None: the first of ``params.seeds``); resume from
    ``out_dir/checkpoint.pt`` when it belongs to this run (:mod:`hourglass.train.fingerprint`: the same configuration,
    ``data_fingerprint`` and code), else start fresh and say why; a fresh start takes its first weights from
    ``train.init_from``, else from the champion when ``flows.warm_start`` says so and it fits
    (:mod:`hourglass.train.init_from`). Rank 0 writes ``checkpoint.pt``, ``epochs.csv``, ``metrics.json`` and
    ``config.yaml`` to ``out_dir`` and logs the MLflow run, each with the run's lineage (:mod:`hourglass.lineage`;
    ``data_dir``, default ``data/processed/<dataset>``, is the data's place in ``dvc.lock``); other ranks only
    compute. The device's fast path (:mod:`hourglass.train.fastpath`) is resolved from ``params.train`` once;
    ``observer`` watches the step loop; ``criterion`` is the loss (default: :func:`build_criterion` of the variant's
    supervision and ``train.target_scale``)."""
    params = resolve_variant(params, variant)
    seed = params.seeds[0] if seed is None else int(seed)
    if seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed}")
    cfg = params.train
    if cfg.batch_size % info.world_size:
        raise ValueError(f"train.batch_size={cfg.batch_size} must be divisible by the {info.world_size} processes")
    device = select_device(info.local_rank)
    precision = select_precision(cfg.precision, device, cfg.channels_last)
    fast = resolve_fast_path(cfg, device, processes=info.processes_here)
    if cfg.sync_batchnorm and info.enabled and device.type != "cuda":
        raise ValueError("train.sync_batchnorm needs CUDA (torch's SyncBatchNorm has no CPU kernels); "
                         "set it to false for CPU training")
    ctx = RunContext(params, variant, seed, Path(out_dir), info, precision, fast, stage, data_fingerprint, data_dir)
    with process_group(info, device), determinism(cfg.deterministic), backend_flags(fast), kept_heap(device):
        criterion = criterion or build_criterion(params.model.supervision, cfg.target_scale)
        return _train(ctx, train_set, val_set, criterion, observer)


def train_one_epoch(model: nn.Module, criterion: HeatmapCriterion, parts: Trainables, loader: Iterable[Any],
                    ctx: RunContext, progress: Progress, *, readback: LossReadback, tracker: RunTracker | None = None,
                    observer: StepObserver | None = None) -> float:
    """One epoch of optimiser steps over ``loader`` (epoch ``progress.epoch``, 0-based), counting ``progress.step``;
    returns the epoch's mean training loss. Losses stay on the device and are read back every ``train.log_every``
    steps (logged to ``tracker``) and at the epoch's end; a non-finite one stops the run
    (:class:`NonFiniteLossError`)."""
    cfg, epoch = ctx.params.train, progress.epoch
    model.train()
    bar = tqdm(loader, total=len(loader), desc=f"epoch {epoch + 1}/{cfg.epochs}",
               disable=not ctx.info.is_main or None, leave=False)
    for batch in _observed(bar, observer):
        step = progress.step
        lr = parts.schedule.apply(step)
        parts.optimizer.zero_grad(set_to_none=True)
        loss = forward_loss(model, criterion, batch, ctx.precision)
        readback.add(loss, step)
        if step % cfg.log_every == 0:  # a read-back point: every rank reads at the same steps
            value, bad = readback.read()
            if bad is not None:
                raise _non_finite(bad, ctx, progress, updated=step - 1)
            if tracker is not None:
                tracker.log_step(step, value, lr)
        parts.scaler.scale(loss).backward()
        parts.scaler.step(parts.optimizer)
        parts.scaler.update()
        if observer is not None:
            observer.on_step(step)
        progress.step = step + 1
    if readback.pending:  # the epoch's last steps, checked before validation and the checkpoint
        _, bad = readback.read()
        if bad is not None:
            raise _non_finite(bad, ctx, progress, updated=progress.step - 1)
    return readback.epoch_mean()


def _build(ctx: RunContext, joints: int, people: int) -> tuple[Trainables, EpochSampler]:
    """The network (same initial weights on every rank), its optimiser, schedule and scaler, and the sampler."""
    params, cfg, info, precision = ctx.params, ctx.params.train, ctx.info, ctx.precision
    torch.manual_seed(ctx.seed)  # identical initial weights on every rank (DDP also broadcasts rank 0's)
    network = create_model(**params.model.network_kwargs(), joints=joints)
    if cfg.sync_batchnorm and info.enabled:
        network = nn.SyncBatchNorm.convert_sync_batchnorm(network)
    network = network.to(precision.device, memory_format=precision.memory_format)
    sampler = EpochSampler(people, cfg.batch_size, cfg.steps_per_epoch, seed=ctx.seed, rank=info.rank,
                           world_size=info.world_size)
    optimizer = create_optimizer(network, cfg, ctx.fast.optimizer_flags())
    schedule = create_schedule(optimizer, cfg, total_steps=cfg.epochs * sampler.steps)
    return Trainables(network, optimizer, schedule, precision.grad_scaler()), sampler


def _start(ctx: RunContext, parts: Trainables, state: dict[str, Any] | None) -> tuple[Progress, str | None]:
    """Where the run starts: the checkpoint's progress when it resumes, else fresh, with the first weights from
    ``train.init_from`` or the champion (``flows.warm_start``); and what the warm start did or why not (None: off)."""
    params, cfg, is_main = ctx.params, ctx.params.train, ctx.info.is_main
    if state is not None:
        progress = restore(state, parts, ctx.fast)
        earlier = lineage_of_config(state.get("config"))
        log.info("resuming %s from epoch %d (step %d)", ctx.out_dir / CHECKPOINT_NAME, progress.epoch, progress.step)
        return progress, earlier.warm_start if earlier is not None else None
    progress, warm = Progress(), None
    if cfg.init_from is not None:
        # fine-tuning: the weights only; optimiser, schedule and sampler start fresh
        report = initialise_from(parts.network, cfg.init_from, default_tracking_uri())
        progress.initialised = {**report.to_dict(), "via": "train.init_from"}
        if params.flows.warm_start != "none":
            warm = f"not used: train.init_from ({cfg.init_from}) is set, and wins"
        if is_main:
            log.info("%s", report.describe())
    elif params.flows.warm_start == "champion":
        started = warm_start(parts.network, params, default_tracking_uri())
        warm = started.note
        if started.report is not None:
            progress.initialised = {**started.report.to_dict(), "via": "flows.warm_start",
                                    "champion_version": started.version}
        if is_main:
            log.info("flows.warm_start=champion: %s%s", started.note,
                     f"; {started.report.describe()}" if started.report is not None else "")
    return progress, warm


def _open_tracking(ctx: RunContext, record: dict[str, Any], runtime: dict[str, Any], progress: Progress,
                   warm: str | None, resumed: bool, people: dict[str, int]) -> tuple[dict[str, Any], RunTracker]:
    """Rank 0: the run's lineage added to its ``record``, ``config.yaml`` written, and the tracker of its DVC files
    and MLflow run (a resumed run continues its MLflow run)."""
    params, seed, name = ctx.params, ctx.seed, ctx.name
    lineage = compute_lineage(params, record, ctx.variant, people=people, data_fingerprint=ctx.data_fingerprint,
                              data_dir=ctx.data_dir, initialised=progress.initialised, warm_start=warm)
    record = with_lineage(record, lineage)
    log.info("lineage: %s", lineage.summary())
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    write_config(record, ctx.variant, runtime, ctx.out_dir / RESOLVED_CONFIG, progress.initialised)
    tags = training_tags(name, seed, ctx.stage, ctx.precision.describe(), ctx.info.world_size, runtime, lineage)
    tracker = RunTracker(ctx.out_dir, params.mlflow, run_name=f"{name}/seed-{seed}",
                         params=run_params(params, name, seed, progress.initialised, lineage), tags=tags,
                         resume_epoch=progress.epoch if resumed else None, run_id=progress.run_id)
    log.info("training %s seed %d on %s, %d process(es)", name, seed, ctx.precision.describe(), ctx.info.world_size)
    return record, tracker


def _train(ctx: RunContext, train_set: Dataset, val_set: Dataset, criterion: HeatmapCriterion,
           observer: StepObserver | None) -> TrainResult:
    params, cfg, info, precision = ctx.params, ctx.params.train, ctx.info, ctx.precision
    family = family_of(params)
    headline = family.headline  # what the plateau schedule and "best" follow
    parts, sampler = _build(ctx, joints=int(train_set[0]["target"].shape[0]), people=len(train_set))
    network = parts.network
    steps_per_epoch = sampler.steps
    if info.is_main:
        log.info("an epoch is %d steps of %d = %d samples, %.2f passes over the %d training people",
                 steps_per_epoch, cfg.batch_size, sampler.samples_per_epoch, sampler.passes_per_epoch,
                 len(train_set))
    fingerprint = training_fingerprint(params, ctx.variant, ctx.data_fingerprint, ctx.seed)
    state = resumable_state(ctx.out_dir / CHECKPOINT_NAME, fingerprint, precision.device)
    progress, warm = _start(ctx, parts, state)

    model: nn.Module = network
    if info.enabled:
        model = DistributedDataParallel(model, **ctx.fast.ddp_kwargs())
    model = compile_model(model, ctx.fast)

    tracker = None
    record = run_record(params, ctx.seed)
    runtime = {**runtime_record(precision, cfg.precision, world_size=info.world_size, fast=ctx.fast.record()),
               "heap_kept": heap_applies(precision.device)}  # hourglass.train.heap
    if info.is_main:
        record, tracker = _open_tracking(ctx, record, runtime, progress, warm, resumed=state is not None,
                                         people={"train": len(train_set), "valid": len(val_set)})

    status = "FAILED"
    where = sweep_position(params, ctx.variant, ctx.seed)
    # One loader for the run (persistent workers live across its epochs); each epoch re-seeds its generator as a
    # loader built per epoch was. The batches themselves depend only on (seed, epoch, position): EpochSampler's Draw.
    generator = torch.Generator()
    loader = DataLoader(train_set, batch_size=cfg.batch_size // info.world_size, sampler=sampler, drop_last=True,
                        worker_init_fn=seed_worker, generator=generator, **ctx.fast.loader_kwargs())
    # Losses stay on the device; they are read back every log_every steps and at each epoch's end, never per step.
    readback = LossReadback(precision.device, info)
    run_started, start_epoch = time.perf_counter(), progress.epoch
    try:
        for epoch in range(start_epoch, cfg.epochs):
            started = time.perf_counter()
            seed_all(ctx.seed, info.rank, epoch)
            sampler.set_epoch(epoch)
            generator.manual_seed(ctx.seed * 100_003 + epoch)
            train_loss = train_one_epoch(model, criterion, parts, loader, ctx, progress, readback=readback,
                                         tracker=tracker, observer=observer)
            seconds = time.perf_counter() - started
            broadcast_buffers(network, info)  # one set of BatchNorm statistics: rank 0's, as checkpointed
            metrics = validate(network, criterion, val_set, params, precision, info, workers=ctx.fast.workers)
            metrics.update({"train/loss": train_loss, "train/lr": parts.schedule.lr_at(progress.step - 1),
                            "train/img_s": steps_per_epoch * cfg.batch_size / seconds, "step": float(progress.step)})
            parts.schedule.end_epoch(metrics.get(headline))
            progress.history.append({"epoch": float(epoch + 1), **metrics})
            progress.epoch = epoch + 1
            if info.is_main:  # one line per epoch, terminal or not (DVC pipes the stage's output)
                elapsed = time.perf_counter() - run_started
                eta = elapsed / (epoch + 1 - start_epoch) * (cfg.epochs - epoch - 1)
                log.info("%sepoch %d/%d  loss %.4g  validation %s Mean %.2f (no flip test)  %s elapsed, ETA %s",
                         where, epoch + 1, cfg.epochs, metrics["train/loss"], family.metric,
                         metrics.get(headline, math.nan), _clock(elapsed), _clock(eta))
            if tracker is not None:
                tracker.log_epoch(epoch + 1, metrics)
                progress.run_id = tracker.run_id
                save_checkpoint(checkpoint_state(parts, progress, seed=ctx.seed, variant=ctx.variant,
                                                 steps_per_epoch=steps_per_epoch, record=record,
                                                 fingerprint=fingerprint), ctx.out_dir / CHECKPOINT_NAME)
            barrier(info)
        final = _final_metrics(progress.history, progress.step, headline)
        model_uri, run_id = None, progress.run_id
        if tracker is not None:
            if params.mlflow.log_model:
                # The config in hand: no need to read back the checkpoint just written.
                model_uri = tracker.log_model(network, params.model.input_res, registered_name(params),
                                              config=record, variant=ctx.variant, epoch=len(progress.history),
                                              log_onnx=params.mlflow.log_onnx)
            run_id = tracker.run_id
            tracker.finish(final, runtime=runtime)
        status = "FINISHED"
        return TrainResult(ctx.out_dir, network, len(progress.history), progress.step, final, run_id, model_uri,
                           progress.history)
    finally:
        if tracker is not None and status != "FINISHED":
            tracker.close("FAILED")


def _non_finite(bad: NonFinite, ctx: RunContext, progress: Progress, updated: int) -> NonFiniteLossError:
    """The error for a non-finite loss found at a read-back point (see :class:`NonFiniteLossError`) in epoch
    ``progress.epoch``, ``updated`` the last step whose update has been made."""
    log_every = ctx.params.train.log_every
    value = "not finite (on another process)" if bad.value is None else str(bad.value)
    if updated < bad.step:
        when = "training stopped before the update"
    else:
        steps = f"step {bad.step}" if updated == bad.step else f"steps {bad.step}-{updated}"
        when = (f"it was read back at step {bad.read_at} (losses are read every train.log_every={log_every} steps "
                f"and at each epoch's end), so the update of {steps} was made in memory only and is discarded; "
                f"training stopped")
    return NonFiniteLossError(
        f"loss is {value} at epoch {progress.epoch + 1}, step {bad.step}; {when}, the last good checkpoint "
        f"{ctx.out_dir / CHECKPOINT_NAME} (epoch {len(progress.history)}) is kept. Try a lower train.lr, "
        "train.warmup_steps or train.precision=fp32.")


def _clock(seconds: float) -> str:
    """1:02:03 / 4:05 for a log line."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _final_metrics(history: list[dict[str, float]], steps: int, headline: str) -> dict[str, float]:
    """The last epoch's metrics plus the best validation accuracy and when it was reached."""
    if not history:
        raise ValueError("no epoch was trained (train.epochs is not above the checkpoint's epoch)")
    final = {k: v for k, v in history[-1].items() if k != "step"}
    scored = [h for h in history if headline in h and math.isfinite(h[headline])]
    if scored:
        best = max(scored, key=lambda h: h[headline])
        final[f"best/{headline}"] = best[headline]
        final["best/epoch"] = best["epoch"]
    final["steps"] = float(steps)
    return final
