"""``python -m hourglass.bench peer``: our network against peer A (princeton-vl/pytorch_stacked_hourglass as shipped),
training and batched inference, in one run on the CPU, with the ratios issues 26 and 27 set bars on.

Peer A is :mod:`hourglass.bench.peer_a`, a replica of its ``PoseNet`` that reproduces the port's own outputs
(tests/test_bench_peer.py), run as the port runs it: fp32, NHWC images permuted inside ``forward`` (which hands
torch channels_last strides, so its CPU kernels run channels_last from the first convolution on: the result says
which layout its activations had), a training step of ``zero_grad``, forward, the port's loss (per-stack MSE,
averaged by its trainer), ``backward`` and **Adam at 1e-3** (its ``task/pose.py``; not the paper's RMSprop), without
the glibc heap setting (the port has none); inference is its ``forward`` in eval mode without gradients.

Our side is what training and prediction run:

* training on the fast path ``hourglass.train.loop`` chooses: ``select_precision(--precision)`` (``auto``: bf16
  where the CPU computes it natively, else fp32), channels_last, the optimiser and its implementation of
  ``--params`` with ``--recipe`` (the paper's RMSprop for ``mpii``), ``torch.compile`` only where the params resolve
  it on for the CPU, and the heap setting of :func:`hourglass.train.heap.kept_heap`; plus the fp32 channels_last
  step (the same step when ``auto`` resolves to fp32: measured once and reported under both names);
* inference on torch (the same precision, no gradients) and, where the packages are installed, on ONNX Runtime and
  OpenVINO in fp32 and int8: the files ``hourglass export`` writes (:mod:`hourglass.export`; the int8 graph
  calibrated on the benchmark's batch, :mod:`hourglass.bench.peer_exports`), run through
  :mod:`hourglass.inference.runtimes` as ``hourglass predict --runtime`` runs them.

Timing: the contenders of a phase take turns (A, B, C, A, B, C, ...) for ``--iters`` rounds; in each turn a
contender makes ``--warmup`` untimed calls and then one timed call, so every timed call follows the same contender's
own calls (its allocator state, caches and, for our training, the kept heap entered for that turn), and a slow
spell of a shared machine falls on every contender alike. The fastest timed call counts: other processes only ever
slow a call down. Both sides get the same images (NHWC for peer A, the same pixels NCHW for ours) and targets.

The result (one JSON object, also written to ``--json``) gives img/s, every ratio to peer A, the CPU (``cpu_isa``,
whether it has native bf16 and whether environment caps allow it), the threads and the load average before and
after; ``bars`` compares the ratios with issues 26 and 27's targets, which are stated for 2 stacks, 256 features,
256 px (training: batch 8) on a quiet machine: ``applies`` is false at other sizes. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hourglass.bench import peer_a
from hourglass.bench.peer_exports import EXPORTED_RUNTIMES, exported_runtimes
from hourglass.config.recipes import load_with_recipe
from hourglass.io.atomic import write_json_atomic
from hourglass.model import count_parameters, create_model
from hourglass.precision import Precision, cpu_isa, cpu_model, cpu_supports_bf16, isa_caps_allow_bf16, select_precision
from hourglass.train.criterion import build_criterion, forward_loss
from hourglass.train.fastpath import compile_model, resolve_fast_path
from hourglass.train.heap import kept_heap
from hourglass.train.optim import create_optimizer

CPU = torch.device("cpu")
JOINTS = 16  # MPII's, as peer A's released models
# Issues 26 and 27: the configuration the bars are stated for, and the targets (no native bf16, native bf16).
BAR_CONFIG = {"stacks": 2, "features": 256, "res": 256}
BAR_TRAIN_BATCH = 8
TRAIN_BAR = {"fp32": 1.3, "bf16": 4.0}  # issue 26: training, ours / peer A
INFER_BAR = {"fp32": 3.0, "bf16": 3.5}  # issue 27: fastest exported runtime's batched inference / peer A


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stacks", type=int, default=2,
                        help="stacks of both networks (default: %(default)s, the bars' configuration)")
    parser.add_argument("--features", type=int, default=256,
                        help="features per hourglass, peer A's inp_dim (default: %(default)s)")
    parser.add_argument("--res", type=int, default=256,
                        help="input resolution in px, a multiple of 64 (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=8,
                        help="images per training step and per inference call (default: %(default)s)")
    parser.add_argument("--iters", type=int, default=3,
                        help="rounds: timed calls per contender, taken in turn; the fastest counts "
                             "(default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed calls of a contender right before each of its timed calls "
                             "(default: %(default)s)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="precision of our fast path, training and torch inference (default: %(default)s, as "
                             "training: bf16 where the CPU has it natively, else fp32); peer A is always fp32")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params file our training settings (optimiser, its implementation, compile, "
                             "target scale) come from (default: %(default)s)")
    parser.add_argument("--recipe", default="mpii",
                        help="recipe applied to --params first, 'none' for none (default: %(default)s: the "
                             "paper's settings, RMSprop 2.5e-4)")
    parser.add_argument("--no-exported", dest="exported", action="store_false",
                        help="time our inference on torch only, not on ONNX Runtime / OpenVINO")
    parser.add_argument("--no-train", dest="train", action="store_false",
                        help="skip the training phase (inference only)")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads of torch and the exported runtimes (default: torch's, one per core)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the figures to PATH as JSON (the last line of stdout is the same JSON)")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Contender:
    """One measured thing: ``call`` does one training step or one batched inference call; ``context`` is entered
    around each turn (warm-up and timed call), e.g. the kept heap of our training."""

    key: str
    label: str
    call: Callable[[], Any]
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    times: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.times)


def interleaved(contenders: list[Contender], iters: int, warmup: int) -> None:
    """``iters`` rounds; in each, every contender in turn makes ``warmup`` untimed calls and one timed call (its
    seconds appended to ``times``)."""
    for round_ in range(iters):
        for contender in contenders:
            with contender.context():
                for _ in range(warmup):
                    contender.call()
                start = time.perf_counter()
                contender.call()
                contender.times.append(time.perf_counter() - start)
            _progress(f"  round {round_ + 1}/{iters}: {contender.label} {contender.times[-1]:.3f} s")


def _inputs(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images NHWC for peer A, the same images NCHW for ours, targets) in [0, 1], seeded."""
    generator = torch.Generator().manual_seed(0)
    nhwc = torch.rand(args.batch, args.res, args.res, 3, generator=generator)
    target = torch.rand(args.batch, JOINTS, args.res // 4, args.res // 4, generator=generator)
    return nhwc, nhwc.permute(0, 3, 1, 2).contiguous(), target


def _peer_layout(model: peer_a.PoseNet, nhwc: torch.Tensor) -> str:
    """The memory layout of peer A's activations after its stem (what torch's kernels ran in)."""
    with torch.no_grad():
        stem = model.pre(nhwc[:1].permute(0, 3, 1, 2))
    if stem.is_contiguous():
        return "NCHW"
    return "channels_last" if stem.is_contiguous(memory_format=torch.channels_last) else "strided"


def _our_network(args: argparse.Namespace) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(stacks=args.stacks, features=args.features, joints=JOINTS)


def training_contenders(args: argparse.Namespace, fast: Precision, nhwc: torch.Tensor, nchw: torch.Tensor,
                        target: torch.Tensor) -> tuple[list[Contender], dict[str, Any]]:
    """Peer A's step and ours (fast path, and fp32 channels_last unless that is the fast path)."""
    settings = load_with_recipe(args.params, None if args.recipe == "none" else args.recipe)
    cfg = settings.train
    fast_path = resolve_fast_path(cfg, CPU)

    torch.manual_seed(0)
    peer = peer_a.PoseNet(args.stacks, args.features, JOINTS).train()
    peer_optimizer = peer_a.create_optimizer(peer)

    def peer_step() -> None:
        peer_optimizer.zero_grad()
        peer_a.train_loss(peer, nhwc, target).backward()
        peer_optimizer.step()

    batch = {"image": nchw, "target": target}

    def our_step(precision: Precision) -> Callable[[], None]:
        network = _our_network(args).to(CPU, memory_format=precision.memory_format).train()
        model = compile_model(network, fast_path)
        optimizer = create_optimizer(network, cfg, fast_path.optimizer_flags())
        scaler = precision.grad_scaler()
        criterion = build_criterion(network.config.supervision, cfg.target_scale)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            loss = forward_loss(model, criterion, batch, precision)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return step

    def heap() -> contextlib.AbstractContextManager[Any]:
        return kept_heap(CPU)

    fp32_cl = Precision(device=CPU, name="fp32", channels_last=True)
    contenders = [Contender("peer_a", "peer A train (fp32, Adam)", peer_step),
                  Contender("ours_fast", f"ours train ({fast.describe()})", our_step(fast), heap)]
    if fast != fp32_cl:
        contenders.append(Contender("ours_fp32_channels_last", f"ours train ({fp32_cl.describe()})",
                                    our_step(fp32_cl), heap))
    setup = {"ours": {"precision": fast.describe(), "optimizer": cfg.optimizer, "lr": cfg.lr,
                      "optimizer_impl": fast_path.optimizer_impl, "compile": fast_path.compile,
                      "heap": "kept_heap", "params": str(args.params), "recipe": args.recipe},
             "peer_a": {"precision": "cpu fp32, NHWC input permuted in forward", "optimizer": "adam",
                        "lr": peer_a.PEER_A_LR, "loss": "per-stack MSE, torch.mean over (N, nstack)",
                        "heap": "glibc defaults"}}
    return contenders, setup


def inference_contenders(args: argparse.Namespace, fast: Precision, nhwc: torch.Tensor, nchw: torch.Tensor,
                         workdir: Path) -> tuple[list[Contender], dict[str, str]]:
    """Peer A's forward, ours on torch (the fast path's precision) and on the exported runtimes."""
    from hourglass.inference.runtimes import TorchRuntime

    torch.manual_seed(0)
    peer = peer_a.PoseNet(args.stacks, args.features, JOINTS).eval()

    def peer_call() -> None:
        with torch.no_grad():
            peer(nhwc)

    network = _our_network(args).eval()
    ours = TorchRuntime(copy.deepcopy(network).to(memory_format=fast.memory_format), fast)
    contenders = [Contender("peer_a", "peer A infer (fp32)", peer_call),
                  Contender("torch", f"ours infer torch ({fast.describe()})", lambda: ours(nchw))]
    skipped: dict[str, str] = {}
    if args.exported:
        engines, skipped = exported_runtimes(network, args, workdir, nchw.numpy())
        for name, engine in engines.items():
            label = f"ours infer {name.removesuffix('_int8')} ({'int8' if name.endswith('_int8') else 'fp32'})"
            contenders.append(Contender(name, label, lambda engine=engine: engine(nchw)))
    else:
        skipped = {name: "--no-exported" for name in EXPORTED_RUNTIMES}
    return contenders, skipped


def _figures(contenders: list[Contender], batch: int) -> dict[str, dict[str, Any]]:
    peer = contenders[0].best
    return {c.key: {"label": c.label, "img_s": round(batch / c.best, 4), "best_s": round(c.best, 5),
                    "times_s": [round(t, 5) for t in c.times], "ratio_to_peer_a": round(peer / c.best, 4)}
            for c in contenders}


def _bars(result: dict[str, Any], args: argparse.Namespace, native_bf16: bool) -> dict[str, Any]:
    """Issues 26/27's targets beside the ratios; ``applies`` only at the configuration they are stated for."""
    kind = "bf16" if native_bf16 else "fp32"
    sized = {"stacks": args.stacks, "features": args.features, "res": args.res} == BAR_CONFIG
    bars: dict[str, Any] = {"cpu_class": "native bf16" if native_bf16 else "no native bf16"}
    if "train" in result:
        ratio = result["train"]["ours_fast"]["ratio_to_peer_a"]
        bars["train"] = {"issue": 26, "target": TRAIN_BAR[kind], "ratio": ratio, "met": ratio >= TRAIN_BAR[kind],
                         "applies": sized and args.batch == BAR_TRAIN_BATCH}
    exported = {k: v for k, v in result["infer"].items() if k in EXPORTED_RUNTIMES}
    if exported:
        best = max(exported, key=lambda k: exported[k]["ratio_to_peer_a"])
        ratio = exported[best]["ratio_to_peer_a"]
        bars["infer"] = {"issue": 27, "target": INFER_BAR[kind], "runtime": best, "ratio": ratio,
                         "met": ratio >= INFER_BAR[kind], "applies": sized}
    else:
        bars["infer"] = {"issue": 27, "target": INFER_BAR[kind], "runtime": None, "ratio": None, "met": None,
                         "applies": False}
    return bars


def format_table(result: dict[str, Any]) -> str:
    """The human-readable summary of :func:`run`'s result."""
    lines = [f"peer A ({peer_a.PEER_A}) vs ours: {result['config']}; {result['cpu']['model']} "
             f"({result['cpu']['isa']}, native bf16 {result['cpu']['native_bf16']}, caps allow bf16 "
             f"{result['cpu']['isa_caps_allow_bf16']}), {result['threads']} threads, load "
             f"{result['load_average']['before']} -> {result['load_average']['after']}"]
    for phase in ("train", "infer"):
        for row in result.get(phase, {}).values():
            if "same_as" in row:
                lines.append(f"  {phase:5} {row['label']}: the same step as the fast path above")
                continue
            lines.append(f"  {phase:5} {row['label']:<44} {row['img_s']:9.3f} img/s  {row['ratio_to_peer_a']:6.2f}x")
    for name, why in result["skipped"].items():
        lines.append(f"  infer {name}: skipped ({why})")
    for name, bar in result["bars"].items():
        if isinstance(bar, dict):
            applies = "" if bar["applies"] else " (not the bar's configuration)"
            lines.append(f"  bar {name} (issue {bar['issue']}): {bar['ratio']}x against {bar['target']}x{applies}")
    return "\n".join(lines)


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    saved = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.batch < 1 or args.iters < 1 or args.warmup < 0:
        raise SystemExit("--batch and --iters must be at least 1, --warmup at least 0")
    if args.res < 64 or args.res % 64:
        raise SystemExit(f"--res {args.res}: must be a positive multiple of 64")
    if args.features < 4 or args.features % 4 or args.stacks < 1:
        raise SystemExit("--features must be a positive multiple of 4 and --stacks at least 1")
    with _threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    fast = select_precision(args.precision, CPU, channels_last=True)
    native_bf16 = cpu_supports_bf16()
    load_before = [round(x, 2) for x in os.getloadavg()]
    nhwc, nchw, target = _inputs(args)
    probe = peer_a.PoseNet(args.stacks, args.features, JOINTS).eval()
    result: dict[str, Any] = {
        "benchmark": "peer",
        "peer_a": {"project": peer_a.PEER_A, "commit": peer_a.PEER_A_COMMIT,
                   "parameters": peer_a.count_parameters(probe),
                   "activation_layout": _peer_layout(probe, nhwc)},
        "ours": {"parameters": count_parameters(_our_network(args))},
        "config": {"stacks": args.stacks, "features": args.features, "res": args.res, "batch": args.batch,
                   "joints": JOINTS, "iters": args.iters, "warmup": args.warmup},
        "device": "cpu", "precision": fast.describe(), "threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
        "cpu": {"model": cpu_model(), "isa": cpu_isa(), "kernels": torch.backends.cpu.get_cpu_capability(),
                "native_bf16": native_bf16, "isa_caps_allow_bf16": isa_caps_allow_bf16()},
    }
    del probe
    _progress(f"peer A ({peer_a.PEER_A}) vs ours, {args.stacks} stacks, {args.features} features, {args.res} px, "
              f"batch {args.batch}; {result['cpu']['isa']}, {torch.get_num_threads()} threads; our fast path "
              f"{fast.describe()}; peer A's activations {result['peer_a']['activation_layout']}")
    if args.train:
        contenders, result["setup"] = training_contenders(args, fast, nhwc, nchw, target)
        _progress("training steps, interleaved:")
        interleaved(contenders, args.iters, args.warmup)
        result["train"] = _figures(contenders, args.batch)
        if "ours_fp32_channels_last" not in result["train"]:
            result["train"]["ours_fp32_channels_last"] = {**result["train"]["ours_fast"],
                                                          "same_as": "ours_fast"}
        del contenders
    with tempfile.TemporaryDirectory(prefix="hourglass-bench-peer-") as tmp:
        contenders, result["skipped"] = inference_contenders(args, fast, nhwc, nchw, Path(tmp))
        _progress("batched inference, interleaved:")
        interleaved(contenders, args.iters, args.warmup)
        result["infer"] = _figures(contenders, args.batch)
        del contenders
    result["load_average"] = {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]}
    result["bars"] = _bars(result, args, native_bf16)
    _progress(format_table(result))
    if args.json is not None:
        write_json_atomic(args.json, result, sort_keys=True)
    return result
