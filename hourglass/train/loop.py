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
from hourglass.precision import Precision, runtime_record, select_device, select_precision
from hourglass.tracking.runs import RunTracker
from hourglass.tracking.store import default_tracking_uri, registered_name
from hourglass.train.criterion import HeatmapCriterion, build_criterion, forward_loss
from hourglass.train.distributed import SINGLE_PROCESS, DistInfo, barrier, broadcast_buffers, process_group
from hourglass.train.fastpath import FastPath, backend_flags, compile_model, resolve_fast_path
from hourglass.train.fingerprint import training_fingerprint
from hourglass.train.heap import heap_applies, kept_heap
from hourglass.train.init_from import initialise_from, warm_start
from hourglass.train.loss_readback import LossReadback, NonFinite
from hourglass.train.optim import create_optimizer, create_schedule
from hourglass.train.resume import Resumed, checkpoint_state, restore, resumable_state
from hourglass.train.run_config import (
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
    out_dir = Path(out_dir)
    device = select_device(info.local_rank)
    precision = select_precision(cfg.precision, device, cfg.channels_last)
    fast = resolve_fast_path(cfg, device, processes=info.processes_here)
    if cfg.sync_batchnorm and info.enabled and device.type != "cuda":
        raise ValueError("train.sync_batchnorm needs CUDA (torch's SyncBatchNorm has no CPU kernels); "
                         "set it to false for CPU training")
    with process_group(info, device), determinism(cfg.deterministic), backend_flags(fast), kept_heap(device):
        criterion = criterion or build_criterion(params.model.supervision, cfg.target_scale)
        return _train(params, variant, seed, out_dir, train_set, val_set, info, precision, fast, stage,
                      data_fingerprint, data_dir, observer, criterion)


def _train(params: ParamsConfig, variant: str | None, seed: int, out_dir: Path, train_set: Dataset,
           val_set: Dataset, info: DistInfo, precision: Precision, fast: FastPath, stage: str | None,
           data_fingerprint: str | None, data_dir: str | Path | None, observer: StepObserver | None,
           criterion: HeatmapCriterion) -> TrainResult:
    cfg = params.train
    headline = family_of(params).headline  # what the plateau schedule and "best" follow
    ckpt_path = out_dir / CHECKPOINT_NAME
    torch.manual_seed(seed)  # identical initial weights on every rank (DDP also broadcasts rank 0's)
    network = create_model(**params.model.network_kwargs(), joints=int(train_set[0]["target"].shape[0]))
    if cfg.sync_batchnorm and info.enabled:
        network = nn.SyncBatchNorm.convert_sync_batchnorm(network)
    network = network.to(precision.device, memory_format=precision.memory_format)
    per_rank = cfg.batch_size // info.world_size
    sampler = EpochSampler(len(train_set), cfg.batch_size, cfg.steps_per_epoch, seed=seed, rank=info.rank,
                           world_size=info.world_size)
    steps_per_epoch = sampler.steps
    if info.is_main:
        log.info("an epoch is %d steps of %d = %d samples, %.2f passes over the %d training people",
                 steps_per_epoch, cfg.batch_size, sampler.samples_per_epoch, sampler.passes_per_epoch,
                 len(train_set))
    optimizer = create_optimizer(network, cfg, fast.optimizer_flags())
    schedule = create_schedule(optimizer, cfg, total_steps=cfg.epochs * steps_per_epoch)
    scaler = precision.grad_scaler()

    fingerprint = training_fingerprint(params, variant, data_fingerprint, seed)
    state = resumable_state(ckpt_path, fingerprint, precision.device)
    resumed = Resumed(epoch=0, step=0, run_id=None)
    warm = None  # what flows.warm_start did, or why not (None: it is off)
    if state is not None:
        resumed = restore(state, network, optimizer, schedule, scaler, fast)
        earlier = lineage_of_config(state.get("config"))
        warm = earlier.warm_start if earlier is not None else None
        log.info("resuming %s from epoch %d (step %d)", ckpt_path, resumed.epoch, resumed.step)
    elif cfg.init_from is not None:
        # fine-tuning: the weights only; optimiser, schedule and sampler above start fresh
        report = initialise_from(network, cfg.init_from, default_tracking_uri())
        resumed.initialised = {**report.to_dict(), "via": "train.init_from"}
        if params.flows.warm_start != "none":
            warm = f"not used: train.init_from ({cfg.init_from}) is set, and wins"
        if info.is_main:
            log.info("%s", report.describe())
    elif params.flows.warm_start == "champion":
        started = warm_start(network, params, default_tracking_uri())
        warm = started.note
        if started.report is not None:
            resumed.initialised = {**started.report.to_dict(), "via": "flows.warm_start",
                                   "champion_version": started.version}
        if info.is_main:
            log.info("flows.warm_start=champion: %s%s", started.note,
                     f"; {started.report.describe()}" if started.report is not None else "")
    start_epoch, step, run_id, history = resumed.epoch, resumed.step, resumed.run_id, resumed.history
    initialised = resumed.initialised  # where the first weights came from (train.init_from)

    model: nn.Module = network
    if info.enabled:
        model = DistributedDataParallel(model, **fast.ddp_kwargs())
    model = compile_model(model, fast)

    tracker = None
    record = run_record(params, seed)
    runtime = {**runtime_record(precision, cfg.precision, world_size=info.world_size, fast=fast.record()),
               "heap_kept": heap_applies(precision.device)}  # hourglass.train.heap
    if info.is_main:
        lineage = compute_lineage(params, record, variant, people={"train": len(train_set), "valid": len(val_set)},
                                  data_fingerprint=data_fingerprint, data_dir=data_dir, initialised=initialised,
                                  warm_start=warm)
        record = with_lineage(record, lineage)
        log.info("lineage: %s", lineage.summary())
        out_dir.mkdir(parents=True, exist_ok=True)
        write_config(record, variant, runtime, out_dir / RESOLVED_CONFIG, initialised)
        name = variant or "model"
        tags = {"variant": name, "seed": str(seed), "dvc.stage": stage or f"train@{name}-{seed}",
                "precision": precision.describe(),
                "world_size": str(info.world_size), **{f"runtime.{k}": str(v) for k, v in runtime.items()}}
        if lineage.git_commit:
            tags.update({"git.commit": lineage.git_commit, "mlflow.source.git.commit": lineage.git_commit})
        tags.update(lineage.to_tags())
        tracker = RunTracker(out_dir, params.mlflow, run_name=f"{name}/seed-{seed}",
                             params=run_params(params, name, seed, initialised, lineage), tags=tags,
                             resume_epoch=start_epoch if state is not None else None, run_id=run_id)
        log.info("training %s seed %d on %s, %d process(es)", name, seed, precision.describe(), info.world_size)

    status = "FAILED"
    family = family_of(params)
    where = sweep_position(params, variant, seed)
    # One loader for the run (persistent workers live across its epochs); each epoch re-seeds its generator as a
    # loader built per epoch was. The batches themselves depend only on (seed, epoch, position): EpochSampler's Draw.
    generator = torch.Generator()
    loader = DataLoader(train_set, batch_size=per_rank, sampler=sampler, drop_last=True, worker_init_fn=seed_worker,
                        generator=generator, **fast.loader_kwargs())
    # Losses stay on the device; they are read back every log_every steps and at each epoch's end, never per step.
    readback = LossReadback(precision.device, info)
    run_started = time.perf_counter()
    try:
        for epoch in range(start_epoch, cfg.epochs):
            started = time.perf_counter()
            seed_all(seed, info.rank, epoch)
            sampler.set_epoch(epoch)
            generator.manual_seed(seed * 100_003 + epoch)
            model.train()
            bar = tqdm(loader, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       disable=not info.is_main or None, leave=False)
            for batch in _observed(bar, observer):
                lr = schedule.apply(step)
                optimizer.zero_grad(set_to_none=True)
                loss = forward_loss(model, criterion, batch, precision)
                readback.add(loss, step)
                if step % cfg.log_every == 0:  # a read-back point: every rank reads at the same steps
                    value, bad = readback.read()
                    if bad is not None:
                        raise _non_finite(bad, epoch, ckpt_path, len(history), cfg.log_every, updated=step - 1)
                    if tracker is not None:
                        tracker.log_step(step, value, lr)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                if observer is not None:
                    observer.on_step(step)
                step += 1
            if readback.pending:  # the epoch's last steps, checked before validation and the checkpoint
                _, bad = readback.read()
                if bad is not None:
                    raise _non_finite(bad, epoch, ckpt_path, len(history), cfg.log_every, updated=step - 1)
            train_loss = readback.epoch_mean()
            seconds = time.perf_counter() - started
            broadcast_buffers(network, info)  # one set of BatchNorm statistics: rank 0's, as checkpointed
            metrics = validate(network, criterion, val_set, params, precision, info, workers=fast.workers)
            metrics.update({"train/loss": train_loss, "train/lr": schedule.lr_at(step - 1),
                            "train/img_s": steps_per_epoch * cfg.batch_size / seconds, "step": float(step)})
            schedule.end_epoch(metrics.get(headline))
            history.append({"epoch": float(epoch + 1), **metrics})
            if info.is_main:  # one line per epoch, terminal or not (DVC pipes the stage's output)
                elapsed = time.perf_counter() - run_started
                eta = elapsed / (epoch + 1 - start_epoch) * (cfg.epochs - epoch - 1)
                log.info("%sepoch %d/%d  loss %.4g  validation %s Mean %.2f (no flip test)  %s elapsed, ETA %s",
                         where, epoch + 1, cfg.epochs, metrics["train/loss"], family.metric,
                         metrics.get(headline, math.nan), _clock(elapsed), _clock(eta))
            if tracker is not None:
                tracker.log_epoch(epoch + 1, metrics)
                save_checkpoint(checkpoint_state(
                    network=network, optimizer=optimizer, schedule=schedule, scaler=scaler, epoch=epoch + 1,
                    step=step, seed=seed, steps_per_epoch=steps_per_epoch, record=record, variant=variant,
                    run_id=tracker.run_id, history=history, fingerprint=fingerprint, initialised=initialised,
                ), ckpt_path)
            barrier(info)
        final = _final_metrics(history, step, headline)
        model_uri = None
        if tracker is not None:
            if params.mlflow.log_model:
                # The config in hand: no need to read back the checkpoint just written.
                model_uri = tracker.log_model(network, params.model.input_res, registered_name(params),
                                              config=record, variant=variant, epoch=len(history),
                                              log_onnx=params.mlflow.log_onnx)
            run_id = tracker.run_id
            tracker.finish(final, runtime=runtime)
        status = "FINISHED"
        return TrainResult(out_dir, network, len(history), step, final, run_id, model_uri, history)
    finally:
        if tracker is not None and status != "FINISHED":
            tracker.close("FAILED")


def _non_finite(bad: NonFinite, epoch: int, ckpt_path: Path, good_epochs: int, log_every: int, updated: int
                ) -> NonFiniteLossError:
    """The error for a non-finite loss found at a read-back point (see :class:`NonFiniteLossError`), ``updated``
    the last step whose update has been made."""
    value = "not finite (on another process)" if bad.value is None else str(bad.value)
    if updated < bad.step:
        when = "training stopped before the update"
    else:
        steps = f"step {bad.step}" if updated == bad.step else f"steps {bad.step}-{updated}"
        when = (f"it was read back at step {bad.read_at} (losses are read every train.log_every={log_every} steps "
                f"and at each epoch's end), so the update of {steps} was made in memory only and is discarded; "
                f"training stopped")
    return NonFiniteLossError(
        f"loss is {value} at epoch {epoch + 1}, step {bad.step}; {when}, the last good checkpoint {ckpt_path} "
        f"(epoch {good_epochs}) is kept. Try a lower train.lr, train.warmup_steps or train.precision=fp32.")


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
