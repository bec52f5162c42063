"""``python -m hourglass.bench profile``: where one training step of each demo variant spends its time.

The step is the training loop's (:mod:`hourglass.train.loop`): a batch from the real DataLoader (generated people
through the real preprocessing stage and Dataset, loaded as the fast path resolves the loader), the real
``forward_loss`` and optimiser, backward, update. Its parts (stem, residuals per resolution, pooling and upsampling,
heads, loss, backward per part, optimiser, data) come from torch.profiler (:mod:`hourglass.bench.step_parts`), as
shares of the profiled step; what no part claims is listed as ``unattributed``. The unprofiled step is timed on its
own (the profiler adds per-operator overhead), and its FLOPs (torch's FlopCounterMode, forward + loss + backward)
give the achieved GFLOP/s against the same run's fp32 matmul peak (as ``python -m hourglass.bench model`` measures
it). Per-epoch validation is the eval-mode forward on ``train.val_batch_size``, scaled to the validation people.
Progress and the tables go to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.autograd.profiler import record_function
from torch.profiler import ProfilerActivity
from torch.profiler import profile as torch_profile
from torch.utils.data import DataLoader

from hourglass.bench.generated import datasets, make_data
from hourglass.bench.model import matmul_gflops, training_flops
from hourglass.bench.step_parts import PREFIX, attribute, part_ranges
from hourglass.config import ParamsConfig
from hourglass.config.recipes import load_with_recipe
from hourglass.data.sampler import EpochSampler
from hourglass.model import create_model
from hourglass.precision import Precision, select_device, select_precision
from hourglass.supervision import final_heatmaps
from hourglass.train.criterion import build_criterion, forward_loss
from hourglass.train.fastpath import resolve_fast_path
from hourglass.train.heap import kept_heap
from hourglass.train.optim import create_optimizer
from hourglass.train.run_config import resolve_variant
from hourglass.train.seeding import seed_worker

LOSS = "input layout + loss"  # forward_loss around the network: the batch to channels_last, then the loss


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", nargs="+", default=None,
                        help="train.variants to profile (default: every variant of the params' sweep)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="precision of the step (default auto, as training: fp32 without native bf16)")
    parser.add_argument("--batch", type=int, default=None, help="samples per step (default: train.batch_size)")
    parser.add_argument("--res", type=int, default=None, help="input resolution in px (default: model.input_res)")
    parser.add_argument("--steps", type=int, default=3,
                        help="steps timed without the profiler and steps profiled, each (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--val-people", type=int, default=573,
                        help="validation people per epoch (default: %(default)s, the synthetic demo's split)")
    parser.add_argument("--people", type=int, default=64,
                        help="generated training people the loader draws from (default: %(default)s)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params file (default: %(default)s, the CPU demo preset)")
    parser.add_argument("--matmul-size", type=int, default=2048,
                        help="square matmul size of the fp32 peak (default: %(default)s)")
    parser.add_argument("--default-heap", dest="keep_heap", action="store_false",
                        help="leave glibc's allocator at its defaults instead of keeping freed memory as training "
                             "does (hourglass.train.heap)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _cycle(loader: DataLoader) -> Iterator[Any]:
    """Batches of ``loader`` without end (a new pass when one ends)."""
    while True:
        yield from loader


class Step:
    """One training step of the loop's, its parts in profiler ranges: the network's via
    :func:`hourglass.bench.step_parts.part_ranges`, the step's own (data, loss, backward, optimiser) here."""

    def __init__(self, params: ParamsConfig, precision: Precision, batches: Iterator[Any], joints: int) -> None:
        self.params, self.precision, self.batches = params, precision, batches
        torch.manual_seed(0)
        self.network = create_model(**params.model.network_kwargs(), joints=joints).to(
            precision.device, memory_format=precision.memory_format)
        fast = resolve_fast_path(params.train, precision.device)
        self.optimizer = create_optimizer(self.network, params.train, fast.optimizer_flags())
        self.scaler = precision.grad_scaler()
        self.criterion = build_criterion(params.model.supervision, params.train.target_scale)

    def __call__(self) -> None:
        with record_function(PREFIX + "data"):
            batch = next(self.batches)
        with record_function(PREFIX + "zero_grad"):
            self.optimizer.zero_grad(set_to_none=True)
        with record_function(PREFIX + LOSS):  # the input's layout conversion, the network (its own range), loss
            loss = forward_loss(self.network, self.criterion, batch, self.precision)
        with record_function(PREFIX + "backward"):
            self.scaler.scale(loss).backward()
        with record_function(PREFIX + "optimiser"):
            self.scaler.step(self.optimizer)
            self.scaler.update()

    def flops(self) -> int:
        """FLOPs of one step's forward, loss and backward (the optimiser's elementwise work is not counted)."""
        return training_flops(self.network, self.criterion, next(self.batches), self.precision)

    def validation_forward(self, batch: int) -> Callable[[], None]:
        """The eval-mode forward of one validation batch, as per-epoch validation runs it."""
        images = torch.rand(batch, 3, self.params.model.input_res, self.params.model.input_res,
                            device=self.precision.device).contiguous(memory_format=self.precision.memory_format)

        def run() -> None:
            self.network.eval()
            with torch.no_grad(), self.precision.autocast():
                final_heatmaps(self.network(images).stacks, self.network.config.supervision).float()
            self.network.train()
        return run


def _times(fn: Callable[[], None], count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def shares(parts: dict[str, dict[str, float]], step_ms: float) -> dict[str, dict[str, float]]:
    """Rows ``{part: {forward_ms, backward_ms, ms, share}}`` of one profiled step of ``step_ms``; the step's time no
    part claims is the ``unattributed`` row, so the shares add up to 100 %."""
    names = sorted(set(parts["forward"]) | set(parts["backward"]))
    rows = {}
    for name in names:
        fwd, bwd = parts["forward"].get(name, 0.0), parts["backward"].get(name, 0.0)
        rows[name] = {"forward_ms": fwd, "backward_ms": bwd, "ms": fwd + bwd}
    rows["unattributed"] = {"forward_ms": 0.0, "backward_ms": 0.0,
                            "ms": step_ms - sum(r["ms"] for r in rows.values())}
    for row in rows.values():
        row["share"] = 100 * row["ms"] / step_ms
    return rows


def profile_variant(step: Step, args: argparse.Namespace) -> dict[str, Any]:
    """The figures of one variant: unprofiled step time, parts of the profiled steps, GFLOP/s, validation."""
    params, batch = step.params, step.params.train.batch_size
    _times(step, args.warmup)
    step_s = min(_times(step, args.steps))  # other processes only ever slow a step down
    # one step under the profiler first, left out: the profiler's start-up would count to the first profiled step
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(1 + args.steps):
            with record_function(PREFIX + "step"):
                step()
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    first_end = next(e.time_range.end for e in events if e.name == PREFIX + "step")
    events = [e for e in events if e.time_range.start > first_end]
    profiled_ms = sum((e.time_range.end - e.time_range.start) / 1e3 for e in events
                      if e.name == PREFIX + "step") / args.steps
    parts = attribute(e for e in events if e.name != PREFIX + "step")
    per_step = {k: {name: ms / args.steps for name, ms in v.items()} for k, v in parts.items()}
    rows = shares(per_step, profiled_ms)
    flops = step.flops()
    val_batch = params.train.val_batch_size
    val_s = min(_times(step.validation_forward(val_batch), max(2, args.steps)))
    val_epoch_s = math.ceil(args.val_people / val_batch) * val_s
    epoch_train_s = params.train.steps_per_epoch * step_s if params.train.steps_per_epoch else math.nan
    data_ms = rows.get("data", {}).get("ms", 0.0)
    compute_s = step_s - data_ms / 1e3 * step_s / (profiled_ms / 1e3)  # the data share applied to the plain step
    return {
        "batch": batch, "input_res": params.model.input_res, "step_ms": step_s * 1e3, "samples_s": batch / step_s,
        "profiled_step_ms": profiled_ms, "parts": rows, "gflop_per_sample": flops / batch / 1e9,
        "gflops": flops / step_s / 1e9, "gflops_without_data": flops / compute_s / 1e9,
        "validation": {"batch": val_batch, "batch_ms": val_s * 1e3, "people": args.val_people,
                       "epoch_s": val_epoch_s, "epoch_share": val_epoch_s / (epoch_train_s + val_epoch_s)},
        "epoch_s": epoch_train_s + val_epoch_s,
    }


def _table(name: str, figures: dict[str, Any], peak: float) -> None:
    _progress(f"\n{name}: batch {figures['batch']} at {figures['input_res']} px, step {figures['step_ms']:.0f} ms "
              f"({figures['samples_s']:.1f} samples/s; profiled {figures['profiled_step_ms']:.0f} ms), "
              f"{figures['gflop_per_sample']:.2f} GFLOP/sample, {figures['gflops']:.1f} GFLOP/s = "
              f"{100 * figures['peak_share']:.0f} % of the fp32 matmul peak {peak:.0f} GFLOP/s "
              f"({figures['gflops_without_data']:.1f} GFLOP/s without data loading)")
    _progress(f"  {'part':34s} {'fwd ms':>8s} {'bwd ms':>8s} {'share':>7s}")
    for part, row in sorted(figures["parts"].items(), key=lambda kv: -kv[1]["ms"]):
        _progress(f"  {part:34s} {row['forward_ms']:8.1f} {row['backward_ms']:8.1f} {row['share']:6.1f}%")
    val = figures["validation"]
    _progress(f"  validation per epoch: {val['epoch_s']:.1f} s ({val['people']} people, batches of {val['batch']} at "
              f"{val['batch_ms']:.0f} ms) = {100 * val['epoch_share']:.1f} % of an epoch of {figures['epoch_s']:.0f} s")


def run(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {"preprocess.workers": 1}
    if args.res is not None:
        overrides["model.input_res"] = args.res
    if args.batch is not None:
        overrides["train.batch_size"] = args.batch
    base = load_with_recipe(args.params, None, overrides)
    variants = args.variant or list(base.sweep)
    device = select_device()
    precision = select_precision(args.precision, device, base.train.channels_last)
    peak = matmul_gflops(torch.float32, args.matmul_size, device)
    _progress(f"device {device}, {torch.get_num_threads()} threads, kernels "
              f"{torch.backends.cpu.get_cpu_capability()}; {precision.describe()}; fp32 matmul {peak:.0f} GFLOP/s "
              f"(measured again at the end)")
    result: dict[str, Any] = {"benchmark": "profile", "device": str(device), "precision": precision.describe(),
                              "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
                              "threads": torch.get_num_threads(), "variants": {}}
    # the heap as the training loop keeps it (hourglass.train.heap), unless asked for the allocator's defaults
    with tempfile.TemporaryDirectory(prefix="hourglass-profile-") as tmp, kept_heap(
            device if args.keep_heap else torch.device("meta")) as heap_kept:
        result["heap_kept"] = heap_kept
        train_set, _ = datasets(make_data(Path(tmp), base, args.people), base)
        fast = resolve_fast_path(base.train, device)
        sampler = EpochSampler(len(train_set), base.train.batch_size, steps=1000, seed=0)
        loader = DataLoader(train_set, batch_size=base.train.batch_size, sampler=sampler, drop_last=True,
                            worker_init_fn=seed_worker, **fast.loader_kwargs())
        batches = _cycle(loader)
        joints = int(train_set[0]["target"].shape[0])
        for name in variants:
            step = Step(resolve_variant(base, name), precision, batches, joints)
            with part_ranges(step.network, step.params.model.input_res):
                result["variants"][name] = profile_variant(step, args)
            _progress(f"{name}: step {result['variants'][name]['step_ms']:.0f} ms")
        del batches, loader
    # The peak again at the end: another process on a shared machine only lowers it, so the higher one counts.
    peak_end = matmul_gflops(torch.float32, args.matmul_size, device)
    result.update(matmul_gflops_fp32=max(peak, peak_end), matmul_gflops_fp32_measured=[peak, peak_end])
    for name, figures in result["variants"].items():
        figures["peak_share"] = figures["gflops"] / result["matmul_gflops_fp32"]
        _table(name, figures, result["matmul_gflops_fp32"])
    result["loader_workers"] = fast.workers
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1, sort_keys=True))
    return result

