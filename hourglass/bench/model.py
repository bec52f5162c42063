"""``python -m hourglass.bench model``: training and inference img/s of the network, fast path vs baseline, and the
share of the machine's matmul peak a training step reaches.

The fast path is what ``hourglass.train.loop`` chooses on this machine with the default params (precision ``auto``:
bf16 autocast where the CPU/GPU computes bf16 natively, else fp32; channels_last; the loop's optimiser
implementation; ``--compile`` adds torch.compile). The baseline is fp32, eager, NCHW, torch's default optimiser
implementation. A training step is the loop's ``forward_loss`` + backward + optimiser update; inference is the
network without gradients. The fp32 and bf16 matmul peaks of the same run put the figures in context: a step can only
speed up as much as the hardware's bf16/fp32 ratio allows.

By default the networks are the paper's (``--stacks`` hourglasses of 256 features, the recipe's optimiser). With
``--demo`` they are the demo's: every variant of params.yaml's ``sweep`` as it trains (no recipe; its batch size and
input resolution unless ``--batch``/``--res`` say otherwise), each with its FLOPs per training sample (torch's
FlopCounterMode: forward, loss and backward) and so its achieved GFLOP/s as a share of the same run's matmul peak in
the precision it trains in (fp32 for the baseline). ``--threads`` sets the threads of everything measured, peaks
included: ``make demo`` on a CPU trains one thread per training (``hourglass.sweep.plan``). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hourglass.config import ParamsConfig, TrainConfig
from hourglass.config.recipes import load_with_recipe
from hourglass.family import family_of
from hourglass.model import create_model
from hourglass.precision import Precision, select_device, select_precision
from hourglass.supervision import final_heatmaps
from hourglass.train.criterion import HeatmapCriterion, build_criterion, forward_loss
from hourglass.train.fastpath import resolve_fast_path
from hourglass.train.optim import create_optimizer
from hourglass.train.run_config import resolve_variant

PAPER_BATCH, PAPER_RES = 8, 256  # the peer comparison's configuration


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stacks", type=int, nargs="+", default=[2, 8],
                        help="stack counts of the paper's network to measure (default 2 8; ignored with --demo)")
    parser.add_argument("--demo", action="store_true",
                        help="measure the demo's networks instead: params.yaml's sweep variants at its batch size and "
                             "input resolution, with their GFLOP per sample and share of the matmul peak")
    parser.add_argument("--batch", type=int, default=None,
                        help=f"images per step (default {PAPER_BATCH}; with --demo: train.batch_size)")
    parser.add_argument("--res", type=int, default=None,
                        help=f"input resolution in pixels (default {PAPER_RES}; with --demo: model.input_res)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every measurement, peaks included (default: torch's, every core)")
    parser.add_argument("--iters", type=int, default=3,
                        help="timed iterations per measurement; the fastest counts (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations before timing (default 1)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                        help="precision of the fast path (default auto, as training)")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                        help="measure the fast path in NCHW instead of channels_last")
    parser.add_argument("--compile", action="store_true", help="torch.compile the fast path (slow to warm up)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params file the settings come from (default: %(default)s)")
    parser.add_argument("--recipe", default="mpii",
                        help="recipe applied to --params first, 'none' for none (default: %(default)s: the paper's "
                             "settings; --demo applies none)")
    parser.add_argument("--matmul-size", type=int, default=2048, help="square matmul size for the peaks (default 2048)")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], iters: int, warmup: int, device: torch.device) -> float:
    """Fastest seconds per call of ``fn`` over ``iters`` timed calls after ``warmup`` untimed ones: other processes
    on a shared machine only ever slow a call down, so the minimum is the estimate least disturbed by them."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_gflops(dtype: torch.dtype, size: int, device: torch.device, iters: int = 5) -> float:
    """Achieved GFLOP/s of a square ``size`` matmul in ``dtype`` (2 n^3 flops per product)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    seconds = _timed(lambda: torch.mm(a, b), iters, 2, device)
    return 2 * size**3 / seconds / 1e9


def training_flops(network: nn.Module, criterion: HeatmapCriterion, batch: dict[str, torch.Tensor],
                   precision: Precision) -> int:
    """FLOPs of one training step's forward, loss and backward (torch's FlopCounterMode; the optimiser's elementwise
    update is not counted). Gradients are left cleared."""
    network.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as counter:
        forward_loss(network, criterion, batch, precision).backward()
    network.zero_grad(set_to_none=True)
    return counter.get_total_flops()


@dataclass(frozen=True)
class Subject:
    """One network to measure: what builds it, its loss and its optimiser's settings."""

    name: str
    network: dict[str, Any]  # create_model's arguments
    train: TrainConfig
    criterion: HeatmapCriterion


@dataclass(frozen=True)
class Measured:
    train_img_s: float
    infer_img_s: float
    flops_per_sample: float


def measure(subject: Subject, precision: Precision, args: argparse.Namespace, batch_size: int, res: int,
            compile_model: bool, baseline: bool) -> Measured:
    """Training and inference img/s and training FLOPs per sample of ``subject`` under ``precision``; the fast path
    (``baseline`` False) steps the optimiser as the training loop resolves it, the baseline with torch's default."""
    device = precision.device
    torch.manual_seed(0)
    network = create_model(**subject.network).to(device, memory_format=precision.memory_format)
    model = torch.compile(network) if compile_model else network
    flags = None if baseline else resolve_fast_path(subject.train, device).optimizer_flags()
    optimizer = create_optimizer(network, subject.train, flags)
    scaler = precision.grad_scaler()
    batch = {"image": torch.rand(batch_size, 3, res, res, device=device),
             "target": torch.rand(batch_size, network.joints, res // 4, res // 4, device=device)}
    flops = training_flops(network, subject.criterion, batch, precision) / batch_size

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = forward_loss(model, subject.criterion, batch, precision)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    images = batch["image"].contiguous(memory_format=precision.memory_format)

    def infer() -> None:
        with torch.no_grad(), precision.autocast():
            final_heatmaps(model(images).stacks, network.config.supervision).float()

    network.train()
    train_s = _timed(train_step, args.iters, args.warmup, device)
    network.eval()
    infer_s = _timed(infer, args.iters, args.warmup, device)
    return Measured(batch_size / train_s, batch_size / infer_s, flops)


def paper_subjects(args: argparse.Namespace) -> tuple[list[Subject], int, int]:
    """The paper's network at each of ``--stacks``, trained with the recipe's optimiser; with the batch and
    resolution to measure at."""
    settings = load_with_recipe(args.params, None if args.recipe == "none" else args.recipe)
    subjects = [Subject(str(stacks), {"stacks": stacks}, settings.train, build_criterion("intermediate"))
                for stacks in args.stacks]
    return subjects, args.batch or PAPER_BATCH, args.res or PAPER_RES


def demo_subjects(args: argparse.Namespace) -> tuple[list[Subject], int, int]:
    """params.yaml's sweep variants as the demo trains them (no recipe); with the batch and resolution to measure at
    (the demo's unless ``--batch``/``--res`` are given)."""
    settings: ParamsConfig = load_with_recipe(args.params, None)
    joints = family_of(settings).joints.count
    subjects = []
    for name in settings.sweep:
        variant = resolve_variant(settings, name)
        subjects.append(Subject(name, {**variant.model.network_kwargs(), "joints": joints}, variant.train,
                                build_criterion(variant.model.supervision, variant.train.target_scale)))
    return subjects, args.batch or settings.train.batch_size, args.res or settings.model.input_res


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = select_device()
    fast = select_precision(args.precision, device, args.channels_last)
    baseline = Precision(device=device, name="fp32", channels_last=False)
    subjects, batch, res = demo_subjects(args) if args.demo else paper_subjects(args)
    _progress(f"device {device}, {torch.get_num_threads()} threads, kernels "
              f"{torch.backends.cpu.get_cpu_capability() if device.type == 'cpu' else device.type}; "
              f"fast path: {fast.describe()}{' + torch.compile' if args.compile else ''}; "
              f"baseline: {baseline.describe()} eager; {'demo networks' if args.demo else 'paper networks'}, "
              f"batch {batch} at {res} px")
    result: dict[str, Any] = {"device": str(device), "threads": torch.get_num_threads(),
                              "fast_path": fast.describe() + (" compile" if args.compile else ""),
                              "networks": "demo" if args.demo else "paper",
                              "batch": batch, "res": res, "train_img_s": {}, "infer_img_s": {},
                              "baseline_train_img_s": {}, "baseline_infer_img_s": {}}
    result["matmul_gflops_fp32"] = matmul_gflops(torch.float32, args.matmul_size, device)
    result["matmul_gflops_bf16"] = matmul_gflops(torch.bfloat16, args.matmul_size, device)
    _progress(f"matmul {args.matmul_size}: fp32 {result['matmul_gflops_fp32']:.0f} GFLOP/s, "
              f"bf16 {result['matmul_gflops_bf16']:.0f} GFLOP/s")
    if fast.name == "fp16":  # CUDA only: its own peak, not bf16's
        result["matmul_gflops_fp16"] = matmul_gflops(torch.float16, args.matmul_size, device)
    peak = {"fast": result[f"matmul_gflops_{fast.name}"],
            "baseline": result["matmul_gflops_fp32"]}
    for subject in subjects:
        key = subject.name
        figures = {"fast": measure(subject, fast, args, batch, res, args.compile, baseline=False),
                   "baseline": measure(subject, baseline, args, batch, res, False, baseline=True)}
        for path, m in figures.items():
            prefix = "" if path == "fast" else "baseline_"
            result[f"{prefix}train_img_s"][key] = m.train_img_s
            result[f"{prefix}infer_img_s"][key] = m.infer_img_s
            line = f"{key}, {path} path: train {m.train_img_s:.2f} img/s, infer {m.infer_img_s:.2f} img/s"
            if args.demo:
                gflops = m.train_img_s * m.flops_per_sample / 1e9
                result.setdefault(f"{prefix}train_gflops", {})[key] = gflops
                result.setdefault(f"{prefix}peak_share", {})[key] = gflops / peak[path]
                result.setdefault("gflop_per_sample", {})[key] = m.flops_per_sample / 1e9
                line += (f"; {m.flops_per_sample / 1e9:.2f} GFLOP/sample, {gflops:.1f} GFLOP/s = "
                         f"{100 * gflops / peak[path]:.0f} % of the {'fp32' if path == 'baseline' else fast.name} "
                         f"matmul peak")
            _progress(line)
        train_ratio = result["train_img_s"][key] / result["baseline_train_img_s"][key]
        infer_ratio = result["infer_img_s"][key] / result["baseline_infer_img_s"][key]
        _progress(f"{key}: fast/baseline = {train_ratio:.2f}x training, {infer_ratio:.2f}x inference")
    return result
