"""``python -m hourglass.bench model``: training and inference img/s of the network, fast path vs baseline.

The fast path is what ``hourglass.train.loop`` chooses on this machine with the default params (precision ``auto``:
bf16 autocast where the CPU/GPU computes bf16 natively, else fp32; channels_last; ``--compile`` adds
torch.compile). The baseline is fp32, eager, NCHW. A training step is forward + loss + backward + RMSprop update;
inference is ``predict`` without gradients. The fp32 and bf16 matmul peaks of the same run put the figures in
context: a step can only speed up as much as the hardware's bf16/fp32 ratio allows. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from hourglass.config.recipes import load_with_recipe
from hourglass.model import create_model
from hourglass.precision import Precision, select_device, select_precision
from hourglass.supervision import final_heatmaps
from hourglass.train.criterion import build_criterion
from hourglass.train.optim import create_optimizer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stacks", type=int, nargs="+", default=[2, 8], help="stack counts to measure (default 2 8)")
    parser.add_argument("--batch", type=int, default=8, help="images per step (default 8)")
    parser.add_argument("--res", type=int, default=256, help="input resolution in pixels (default 256)")
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
                             "settings)")
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


def measure(stacks: int, precision: Precision, args: argparse.Namespace, compile_model: bool) -> tuple[float, float]:
    """(training img/s, inference img/s) of a ``stacks``-stack network under ``precision``."""
    device = precision.device
    torch.manual_seed(0)
    network = create_model(stacks=stacks).to(device, memory_format=precision.memory_format)
    model = torch.compile(network) if compile_model else network
    settings = load_with_recipe(args.params, None if args.recipe == "none" else args.recipe)
    optimizer = create_optimizer(network, settings.train)
    scaler = precision.grad_scaler()
    images = torch.rand(args.batch, 3, args.res, args.res, device=device).to(memory_format=precision.memory_format)
    target = torch.rand(args.batch, network.joints, args.res // 4, args.res // 4, device=device)
    criterion = build_criterion(network.config.supervision)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast():
            outputs = model(images)
        loss = criterion(outputs, target)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def infer() -> None:
        with torch.no_grad(), precision.autocast():
            final_heatmaps(model(images).stacks, network.config.supervision).float()

    network.train()
    train_s = _timed(train_step, args.iters, args.warmup, device)
    network.eval()
    infer_s = _timed(infer, args.iters, args.warmup, device)
    return args.batch / train_s, args.batch / infer_s


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = select_device()
    fast = select_precision(args.precision, device, args.channels_last)
    baseline = Precision(device=device, name="fp32", channels_last=False)
    _progress(f"device {device}, {torch.get_num_threads()} threads; fast path: {fast.describe()}"
              f"{' + torch.compile' if args.compile else ''}; baseline: {baseline.describe()} eager")
    result: dict[str, Any] = {"device": str(device),
                              "fast_path": fast.describe() + (" compile" if args.compile else ""),
                              "batch": args.batch, "res": args.res, "train_img_s": {}, "infer_img_s": {},
                              "baseline_train_img_s": {}, "baseline_infer_img_s": {}}
    result["matmul_gflops_fp32"] = matmul_gflops(torch.float32, args.matmul_size, device)
    result["matmul_gflops_bf16"] = matmul_gflops(torch.bfloat16, args.matmul_size, device)
    _progress(f"matmul {args.matmul_size}: fp32 {result['matmul_gflops_fp32']:.0f} GFLOP/s, "
              f"bf16 {result['matmul_gflops_bf16']:.0f} GFLOP/s")
    for stacks in args.stacks:
        for key, precision, compile_model in (("", fast, args.compile), ("baseline_", baseline, False)):
            train_ips, infer_ips = measure(stacks, precision, args, compile_model)
            result[f"{key}train_img_s"][str(stacks)] = train_ips
            result[f"{key}infer_img_s"][str(stacks)] = infer_ips
            _progress(f"{stacks} stacks, {key or 'fast_'}path: train {train_ips:.2f} img/s, "
                      f"infer {infer_ips:.2f} img/s")
        train_ratio = result["train_img_s"][str(stacks)] / result["baseline_train_img_s"][str(stacks)]
        infer_ratio = result["infer_img_s"][str(stacks)] / result["baseline_infer_img_s"][str(stacks)]
        _progress(f"{stacks} stacks: fast/baseline = {train_ratio:.2f}x training, {infer_ratio:.2f}x inference")
    return result
