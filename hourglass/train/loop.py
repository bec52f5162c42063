"""The training loop as one function of the config: ``train(params, out_dir, train_set=..., val_set=...)``.

The same function runs as a single process or as one process of a ``torchrun`` job (the caller passes a
:class:`DistInfo`; DistributedDataParallel over NCCL/gloo). Per epoch it trains on this rank's share of
:class:`~hourglass.data.sampler.EpochSampler`'s order (``steps_per_epoch`` global batches, as many shuffled passes
over the people as that takes), validates with the official metric (per-joint PCKh and the Figure 4 accuracy),
records both DVC files and MLflow through :mod:`hourglass.tracking.runs`, and writes an atomic checkpoint from which a killed run resumes to exactly the
weights of an uninterrupted one (CPU, deterministic settings). Only rank 0 writes.

Loss: the original ``nn.ParallelCriterion`` of per-stack ``MSECriterion``s with equal weights — the mean squared
error of each supervised output against the (optionally scaled) target, summed over outputs. For
``supervision: resolutions`` (HG-Int) the lower-resolution maps of the top-down path join the sum with the same
weight, each against the target max-pooled to its size. The validation loss is the full-resolution part only, so
it stays comparable across variants.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from hourglass.io.atomic import write_atomic
from hourglass.io.checkpoint import CHECKPOINT_NAME, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from hourglass.config import ParamsConfig
from hourglass.data.dataset import worker_init
from hourglass.data.sampler import EpochSampler
from hourglass.family import family_of
from hourglass.train.fingerprint import mismatches, training_fingerprint
from hourglass.train.distributed import DistInfo, barrier, broadcast_buffers, gather_objects, process_group
from hourglass.train.fastpath import FastPath, backend_flags, compile_model, resolve_fast_path, resolve_workers
from hourglass.inference.runner import Predictions, predict_dataset
from hourglass.train.init_from import initialise_from
from hourglass.train.loss_readback import LossReadback, NonFinite
from hourglass.model import StackedHourglass, create_model
from hourglass.train.optim import create_optimizer, create_schedule, set_implementation
from hourglass.precision import Precision, runtime_record, select_device, select_precision
from hourglass.tracking.store import default_tracking_uri
from hourglass.io.git import head_commit
from hourglass.tracking.runs import RunTracker

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


def resolve_variant(params: ParamsConfig, variant: str | None) -> ParamsConfig:
    """``params`` with the named variant's model overrides (and its ``init_from``, if any, as ``train.init_from``)
    applied (None: the ``model`` and ``train`` sections as they are)."""
    if variant is None:
        return params
    try:
        overrides = params.train.variants[variant]
    except KeyError:
        known = ", ".join(sorted(params.train.variants)) or "none defined"
        raise ValueError(f"params.yaml: train.variants has no variant {variant!r} (known: {known})") from None
    model = params.model.model_copy(update=overrides.model_overrides())
    update: dict[str, Any] = {"model": type(params.model).model_validate(model.model_dump())}
    if overrides.init_from is not None:
        update["train"] = params.train.model_copy(update={"init_from": overrides.init_from})
    return params.model_copy(update=update)


def run_params(params: ParamsConfig, name: str, seed: int,
               initialised: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The MLflow run's params: what this run was (its data, seed, resolved network, targets, augmentation and
    training recipe, and for a fine-tuning run the source of its first weights), not every variant's definition,
    the download URLs or other stages' settings."""
    dumped = params.model_dump(mode="json")
    out: dict[str, Any] = {"variant": name, "dataset": params.dataset, "seed": seed}
    out.update({key: dumped[key] for key in ("model", "targets", "augment")})
    out["train"] = {k: v for k, v in dumped["train"].items() if k != "variants"}
    if params.dataset == "synthetic":
        out["synthetic"] = dumped["synthetic"]
    if initialised:  # InitReport.to_dict(); train.init_from above names the source
        out["init"] = {"sha256": initialised["sha256"], "source_joints": initialised["source_joints"],
                       "reinitialised": ",".join(initialised["reinitialised"]) or "none"}
    return out


def heatmap_loss(supervised: Tensor, target: Tensor, target_scale: float = 1.0) -> Tensor:
    """Sum over supervised outputs (N, K, J, H, W) of the mean squared error against ``target`` (N, J, H, W)."""
    if supervised.shape[0] != target.shape[0] or supervised.shape[2:] != target.shape[1:]:
        raise ValueError(f"heatmaps {tuple(supervised.shape)} do not match targets {tuple(target.shape)}")
    diff = supervised.float() - (target.float() * target_scale).unsqueeze(1)
    return diff.pow(2).mean(dim=(0, 2, 3, 4)).sum()


def auxiliary_loss(maps: Sequence[Tensor], target: Tensor, target_scale: float = 1.0) -> Tensor:
    """Sum over lower-resolution heatmaps (N, J, h, w) of the mean squared error against ``target`` (N, J, H, W)
    max-pooled to (h, w). Max pooling keeps each peak at its full height, so a coarse map is asked for the same
    response as the full-resolution one, in the cell that holds the joint."""
    full_h, full_w = target.shape[-2:]
    total = target.new_zeros((), dtype=torch.float32)
    for heatmaps in maps:
        h, w = heatmaps.shape[-2:]
        if heatmaps.shape[:2] != target.shape[:2] or not h or not w or full_h % h or full_w % w \
                or full_h // h != full_w // w:
            raise ValueError(f"auxiliary heatmaps {tuple(heatmaps.shape)} are not targets {tuple(target.shape)} "
                             f"pooled by one whole factor")
        pooled = F.max_pool2d(target.float() * target_scale, kernel_size=full_h // h)
        total = total + (heatmaps.float() - pooled).pow(2).mean()
    return total


# -- validation ---------------------------------------------------------------------------------------------------
@torch.no_grad()
def validate(model: nn.Module, dataset: Dataset, params: ParamsConfig, precision: Precision,
             info: DistInfo = DistInfo(), workers: int | None = None) -> dict[str, float]:
    """Validation loss and the official metric of ``dataset`` (each process scores a strided shard, no padding),
    loaded by ``workers`` processes (None: ``train.workers`` resolved for the device).

    No flip test: per-epoch validation tracks progress at the cost of one pass; ``pipeline.evaluate`` scores with it.
    """
    indices = range(info.rank, len(dataset), info.world_size)
    loss = {"sum": 0.0, "count": 0}

    def add_loss(batch: Mapping[str, Any], outputs: Tensor) -> None:
        supervised = model.supervised(outputs).float()
        target = batch["target"].to(precision.device)
        loss["sum"] += float(heatmap_loss(supervised, target, params.train.target_scale)) * len(outputs)
        loss["count"] += len(outputs)

    if workers is None:
        workers = resolve_workers(params.train.workers, precision.device, info.processes_here)
    shard = None
    if len(indices):
        shard = predict_dataset(model, dataset, precision, batch_size=params.train.val_batch_size,
                                workers=workers, indices=indices, on_batch=add_loss,
                                worker_init_fn=_seed_worker)
    gathered = gather_objects({"pred": shard, "loss_sum": loss["sum"], "count": loss["count"]}, info)
    parts = [g["pred"] for g in gathered if g["pred"] is not None]
    if not parts:
        raise ValueError("validation set is empty")
    merged = Predictions.concatenate(parts).sorted_by_row()
    family = family_of(params)
    out = family.validation_metrics(family.score(merged.coords, merged.joints, merged.annotated, merged.normalize))
    out["val/loss"] = sum(g["loss_sum"] for g in gathered) / sum(g["count"] for g in gathered)
    return out


# -- run set-up ---------------------------------------------------------------------------------------------------
def _seed_worker(worker_id: int) -> None:
    """Data loader workers get distinct numpy / random streams derived from torch's per-worker seed, and one OpenCV
    thread each (workers are spawned, so setting it is safe; several workers with a pool each would oversubscribe)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    worker_init(worker_id)


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


def _seed_all(*keys: int) -> None:
    """Seed every global generator from ``keys`` (seed, rank, epoch): a pure function of where the run is."""
    seed = int(np.random.SeedSequence(list(keys)).generate_state(1)[0])
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


@contextlib.contextmanager
def _determinism(enabled: bool) -> Iterator[None]:
    """Deterministic kernels for the duration of a run, restoring the caller's settings afterwards."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled or previous)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def _joints(dataset: Dataset) -> int:
    sample = dataset[0]
    return int(sample["target"].shape[0])


def run_record(params: ParamsConfig, seed: int) -> dict[str, Any]:
    """The resolved params of a run with its own training seed (``seed``, beside the sweep's ``seeds``): what
    config.yaml, the checkpoint and the logged model record."""
    return {**params.model_dump(mode="json"), "seed": seed}


def _write_config(record: Mapping[str, Any], variant: str | None, runtime: Mapping[str, Any], path: Path,
                  initialised: Mapping[str, Any] | None = None) -> None:
    """The resolved config and how the run ran (and, fine-tuning, where its first weights came from), beside the
    outputs, so every artefact says what made it."""
    extra = {"initialised_from": dict(initialised)} if initialised else {}
    write_atomic(path, yaml.safe_dump({"variant": variant, "runtime": dict(runtime), **extra, **record},
                                      sort_keys=False))


def _resumable_state(path: Path, fingerprint: Mapping[str, Any], device: torch.device) -> dict[str, Any] | None:
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


# -- the loop -----------------------------------------------------------------------------------------------------
def train(
    params: ParamsConfig,
    out_dir: str | Path,
    *,
    train_set: Dataset,
    val_set: Dataset,
    variant: str | None = None,
    seed: int | None = None,
    info: DistInfo = DistInfo(),
    stage: str | None = None,
    data_fingerprint: str | None = None,
    observer: StepObserver | None = None,
) -> TrainResult:
    """Train ``params.model`` (after ``variant``'s overrides) to ``params.train.epochs`` from training seed ``seed``
    (initial weights, sample order, augmentation; None: the first of ``params.seeds``); resume from
    ``out_dir/checkpoint.pt`` when it belongs to this run (:mod:`hourglass.train.fingerprint`: the same configuration,
    ``data_fingerprint`` and code), else start fresh and say why. Rank 0 writes ``checkpoint.pt``, ``epochs.csv``, ``metrics.json`` and
    ``config.yaml`` to ``out_dir`` and logs the MLflow run; other ranks only compute. The device's fast path
    (:mod:`hourglass.train.fastpath`) is resolved from ``params.train`` once; ``observer`` watches the step loop."""
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
    with process_group(info, device), _determinism(cfg.deterministic), backend_flags(fast):
        return _train(params, variant, seed, out_dir, train_set, val_set, info, precision, fast, stage,
                      data_fingerprint, observer)


def _train(params: ParamsConfig, variant: str | None, seed: int, out_dir: Path, train_set: Dataset,
           val_set: Dataset, info: DistInfo, precision: Precision, fast: FastPath, stage: str | None,
           data_fingerprint: str | None, observer: StepObserver | None) -> TrainResult:
    cfg = params.train
    headline = family_of(params).headline  # what the plateau schedule and "best" follow
    ckpt_path = out_dir / CHECKPOINT_NAME
    torch.manual_seed(seed)  # identical initial weights on every rank (DDP also broadcasts rank 0's)
    network = create_model(**params.model.network_kwargs(), joints=_joints(train_set))
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

    start_epoch, step, run_id, history = 0, 0, None, []
    initialised: dict[str, Any] | None = None  # where the first weights came from (train.init_from)
    fingerprint = training_fingerprint(params, variant, data_fingerprint, seed)
    state = _resumable_state(ckpt_path, fingerprint, precision.device)
    if state is not None:
        network.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        set_implementation(optimizer, fast.optimizer_flags())
        schedule.load_state_dict(state["schedule"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, step, run_id = int(state["epoch"]), int(state["step"]), state.get("mlflow_run_id")
        history = list(state.get("history", []))
        set_rng_state(state["rng"])
        initialised = state.get("initialised_from")
        log.info("resuming %s from epoch %d (step %d)", ckpt_path, start_epoch, step)
    elif cfg.init_from is not None:
        # fine-tuning: the weights only; optimiser, schedule and sampler above start fresh
        report = initialise_from(network, cfg.init_from, default_tracking_uri())
        initialised = report.to_dict()
        if info.is_main:
            log.info("%s", report.describe())

    model: nn.Module = network
    if info.enabled:
        model = DistributedDataParallel(model, **fast.ddp_kwargs())
    model = compile_model(model, fast)

    tracker = None
    record = run_record(params, seed)
    runtime = runtime_record(precision, cfg.precision, world_size=info.world_size, fast=fast.record())
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_config(record, variant, runtime, out_dir / RESOLVED_CONFIG, initialised)
        name = variant or "model"
        tags = {"variant": name, "seed": str(seed), "dvc.stage": stage or f"train@{name}-{seed}",
                "precision": precision.describe(),
                "world_size": str(info.world_size), **{f"runtime.{k}": str(v) for k, v in runtime.items()}}
        commit = head_commit()
        if commit:
            tags.update({"git.commit": commit, "mlflow.source.git.commit": commit})
        tracker = RunTracker(out_dir, params.mlflow, run_name=f"{name}/seed-{seed}",
                             params=run_params(params, name, seed, initialised), tags=tags,
                             resume_epoch=start_epoch if state is not None else None, run_id=run_id)
        log.info("training %s seed %d on %s, %d process(es)", name, seed, precision.describe(), info.world_size)

    status = "FAILED"
    family = family_of(params)
    # "[hg_int seed 0, 2/5]": where this run is in the sweep's variant x seed matrix (dvc.yaml's order), so a log of
    # many stages says how far the sweep is
    where = f"[{variant} seed {seed}] "
    if variant in params.sweep and seed in params.seeds:
        position = params.sweep.index(variant) * len(params.seeds) + params.seeds.index(seed)
        where = f"[{variant} seed {seed}, {position + 1}/{len(params.sweep) * len(params.seeds)}] "
    # One loader for the run (persistent workers live across its epochs); each epoch re-seeds its generator as a
    # loader built per epoch was. The batches themselves depend only on (seed, epoch, position): EpochSampler's Draw.
    generator = torch.Generator()
    loader = DataLoader(train_set, batch_size=per_rank, sampler=sampler, drop_last=True, worker_init_fn=_seed_worker,
                        generator=generator, **fast.loader_kwargs())
    # Losses stay on the device; they are read back every log_every steps and at each epoch's end, never per step.
    readback = LossReadback(precision.device, info)
    run_started = time.perf_counter()
    try:
        for epoch in range(start_epoch, cfg.epochs):
            started = time.perf_counter()
            _seed_all(seed, info.rank, epoch)
            sampler.set_epoch(epoch)
            generator.manual_seed(seed * 100_003 + epoch)
            model.train()
            bar = tqdm(loader, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       disable=not info.is_main or None, leave=False)
            for batch in _observed(bar, observer):
                lr = schedule.apply(step)
                optimizer.zero_grad(set_to_none=True)
                loss = _forward_loss(model, network, batch, precision, cfg.target_scale)
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
            metrics = validate(network, val_set, params, precision, info, workers=fast.workers)
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
                save_checkpoint({
                    "model": network.state_dict(), "network": network.config, "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(), "scaler": scaler.state_dict(),
                    "epoch": epoch + 1, "step": step,
                    "sampler": {"epoch": epoch + 1, "position": 0, "seed": seed, "steps": steps_per_epoch},
                    "rng": rng_state(), "config": record, "variant": variant, "seed": seed,
                    "mlflow_run_id": tracker.run_id, "history": history, "fingerprint": fingerprint,
                    **({"initialised_from": initialised} if initialised else {}),
                }, ckpt_path)
            barrier(info)
        final = _final_metrics(history, step, headline)
        model_uri = None
        if tracker is not None:
            if params.mlflow.log_model:
                # The config in hand: no need to read back the checkpoint just written.
                model_uri = tracker.log_model(network, params.model.input_res, params.mlflow.registered_model,
                                              config=record, variant=variant,
                                              epoch=len(history))
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


def _forward_loss(model: nn.Module, network: StackedHourglass, batch: Mapping[str, Tensor], precision: Precision,
                  target_scale: float) -> Tensor:
    """The training loss of one batch (forward pass under the run's precision). The wrapped ``model`` is asked for
    the auxiliary maps too, so under DDP every head of the ``resolutions`` mode takes part in the pass it syncs."""
    images = batch["image"].to(precision.device, memory_format=precision.memory_format, non_blocking=True)
    target = batch["target"].to(precision.device, non_blocking=True)
    with precision.autocast():
        outputs, maps = model(images, auxiliary=True)
    loss = heatmap_loss(network.supervised(outputs), target, target_scale)
    if maps:
        loss = loss + auxiliary_loss(maps, target, target_scale)
    return loss


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
