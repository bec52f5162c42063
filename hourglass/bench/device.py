"""``python -m hourglass.bench device`` (``make device-check``): before a long run, what this machine will do.

In at most five minutes on one GPU (about a minute on a CPU) it

* names the device: GPU name, memory, compute capability, driver / CUDA / cuDNN / NCCL / torch versions, GPU count
  (on a CPU-only machine the CPU, its vector extensions and cores, and that it ran on the CPU);
* runs the real training loop, :func:`hourglass.train.loop.train` (not a copy: a change to the loop changes these
  figures), for a few hundred steps of the paper's 8-stack network at the recipe's batch, on generated people
  through the real preprocessing, :class:`~hourglass.data.dataset.PoseDataset` and DataLoader, once on the fast path
  as the params resolve it on this device and once in fp32 eager (no autocast, NCHW, no TF32, no cuDNN benchmarking,
  for-loop optimiser, no compile); per run: samples/s, time per step, peak GPU memory and the share of the timed
  window the loop spent waiting for its next batch;
* times the same DataLoader alone (batches copied to the device), so its headroom over what training consumes says
  whether the loader keeps the GPU fed;
* with more than one GPU, runs the fast path again under ``torchrun --standalone --nproc-per-node=<GPUs>`` (NCCL)
  at the same per-GPU batch and reports the scaling efficiency;
* projects the wall-clock of ``recipes/mpii.yaml`` and ``recipes/flic.yaml`` as shipped (epochs x steps_per_epoch x
  batch_size samples): measured when the timed network and batch are the recipe's, otherwise scaled by the
  training FLOPs per sample (counted by torch's FlopCounterMode on the meta device), for the recipe's network and
  for its whole sweep.

The timed window starts after ``--warmup`` steps (cuDNN's algorithm search, compilation, the loader's start-up) with
a device synchronisation and ends with one after the last step; the loop itself reads its losses back every
``train.log_every`` steps, as in training. Human-readable lines go to stdout as they are measured; the last line is
one JSON object with every figure. Sizes: ``paper`` (the recipe's network and batch; the default on CUDA), ``small``
(the CPU preset's network at batch 16; the default on the CPU), ``smallest`` (for the test suite).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from hourglass.bench.ddp_timing import time_ddp
from hourglass.bench.device_info import device_info
from hourglass.bench.device_report import (
    busy_cpu_warning,
    describe_device,
    describe_projection,
    describe_run,
    describe_settings,
    loader_keeps_up,
    loader_verdict,
)
from hourglass.bench.generated import datasets, make_data
from hourglass.bench.projection import MEASURED_JOINTS, project, train_gflop
from hourglass.bench.step_timing import time_loader, time_training
from hourglass.config import ParamsConfig
from hourglass.config.recipes import load_with_recipe
from hourglass.io.atomic import write_atomic
from hourglass.precision import select_device
from hourglass.train.fastpath import resolve_fast_path

# Model and batch overrides of each size (on top of the params and recipe), and (timed steps, warm-up steps).
SIZES: dict[str, dict[str, Any]] = {
    "paper": {},
    "small": {"model.stacks": 2, "model.features": 64, "model.stem_width": 32, "model.input_res": 192,
              "train.batch_size": 16},
    "smallest": {"model.stacks": 1, "model.features": 16, "model.stem_width": 16, "model.input_res": 64,
                 "train.batch_size": 4},
}
STEPS = {"paper": (300, 30), "small": (20, 3), "smallest": (3, 1)}
# fp32 eager: every switch of the fast path off (hourglass.train.fastpath), the loader as in the fast run.
BASELINE = {"train.precision": "fp32", "train.channels_last": False, "train.compile": False, "train.tf32": False,
            "train.cudnn_benchmark": False, "train.optimizer_impl": "for_loop"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", choices=sorted(SIZES), default=None,
                        help="network and batch: paper (the recipe's), small (the CPU preset's network, batch 16), "
                             "smallest (tests); default: paper on CUDA, small on the CPU")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per run (default: 300 paper, 20 small)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps before timing, at least 1 "
                        "(default: 30 paper, 3 small)")
    parser.add_argument("--batch", type=int, default=None, help="per-GPU batch instead of the size's")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params file the settings come from (default: %(default)s)")
    parser.add_argument("--recipe", default="mpii",
                        help="recipe applied to --params first, 'none' for none (default: %(default)s: the paper's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a params value by dotted key, as YAML, e.g. --set train.workers=12 "
                             "(repeatable)")
    parser.add_argument("--ddp-procs", type=int, default=None,
                        help="processes of the torchrun run (default: every GPU when there are several, else none; "
                             "on the CPU it runs gloo, for testing the path)")
    parser.add_argument("--ddp-timeout", type=float, default=240.0,
                        help="seconds the torchrun run may take (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON object to this file")


def _say(message: str) -> None:
    print(message, flush=True)


def _run_config(name: str, params: ParamsConfig, root: Path, train_set: Any, val_set: Any, warmup: int,
                gflop: float) -> dict[str, Any]:
    """One timed run named ``name`` with its achieved TFLOP/s, or ``{"ok": False, "error": ...}`` when it failed."""
    try:
        out = time_training(params, root / name, train_set, val_set, warmup)
    except Exception as err:  # noqa: BLE001 - the check reports a broken path instead of stopping at it
        return {"ok": False, "error": f"{type(err).__name__}: {err}"}
    out["achieved_tflop_s"] = out["samples_s"] * gflop / 1e3
    return out


def _overrides(items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as dotted-key overrides, each value read as YAML."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(raw)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole check (see the module docstring): lines on stdout as measured, every figure in the returned dict."""
    started = time.perf_counter()
    device = select_device()
    size = args.size or ("paper" if device.type == "cuda" else "small")
    default_steps, default_warmup = STEPS[size]
    steps = args.steps or default_steps
    warmup = args.warmup or default_warmup
    if steps < 1 or warmup < 1:
        raise SystemExit("--steps and --warmup must be at least 1")
    overrides = dict(SIZES[size])
    if args.batch:
        overrides["train.batch_size"] = args.batch
    # generated MPII-like people; one epoch of warm-up + timed steps; no MLflow; the user's --set last
    overrides.update({"dataset": "synthetic", "train.epochs": 1,
                      "train.steps_per_epoch": warmup + steps, "train.val_batch_size": 8, "mlflow.enabled": False,
                      "mlflow.system_metrics": False, "preprocess.workers": 1})
    overrides.update(_overrides(args.overrides))
    recipe = None if args.recipe == "none" else args.recipe
    fast_params = load_with_recipe(args.params, recipe, overrides)
    slow_params = load_with_recipe(args.params, recipe, {**overrides, **BASELINE})
    info = device_info(device)
    _say(f"device check: {describe_device(info)}")
    warning = busy_cpu_warning(info)
    if warning:
        _say(warning)
    model, batch = fast_params.model, fast_params.train.batch_size
    gflop = train_gflop(model, MEASURED_JOINTS)
    _say(f"network: {model.stacks} stacks x {model.features} features, {model.modules} module(s), "
         f"{model.input_res} px, batch {batch} ({size} size, recipe {args.recipe}), {gflop:.3g} GFLOP per training "
         f"sample; {steps} timed steps after {warmup} warm-up steps of hourglass.train.loop.train on generated people")

    gpus = info["gpu_count"]
    procs = args.ddp_procs if args.ddp_procs is not None else (gpus if gpus > 1 else 0)
    result: dict[str, Any] = {"benchmark": "device", "ran_on": device.type, "device": info, "size": size,
                              "recipe": args.recipe, "loop": "hourglass.train.loop.train",
                              "network": model.network_kwargs() | {"input_res": model.input_res}, "batch": batch,
                              "timed_steps": steps, "warmup_steps": warmup, "gflop_per_sample": gflop}
    with tempfile.TemporaryDirectory(prefix="hourglass-device-") as tmp:
        root = Path(tmp)
        people = max(48, 2 * batch * max(1, procs))
        t0 = time.perf_counter()
        processed = make_data(root, fast_params, people)
        train_set, val_set = datasets(processed, fast_params)
        result["data"] = {"people": people, "crop_res": train_set.crop_res, "seconds": time.perf_counter() - t0}

        # The fast path as training resolves it here; when that compiles, the same without compiling too (what
        # compile buys at this batch, and the fall-back when it fails); then everything off.
        configs = [("fast", fast_params)]
        if resolve_fast_path(fast_params.train, device).compile:
            configs.append(("fast_eager", load_with_recipe(args.params, recipe, {**overrides, "train.compile": False})))
        configs.append(("fp32_eager", slow_params))
        runs = {}
        for name, params in configs:
            runs[name] = _run_config(name, params, root, train_set, val_set, warmup, gflop)
            settings = describe_settings(runs[name].get("runtime"))
            _say(f"{name.replace('_', ' ')} ({settings}): {describe_run(runs[name])}")
        result["runs"] = runs
        # the run the loader, DDP and the projections go by: the fast path, or without compile where that failed
        chosen = "fast" if runs["fast"]["ok"] or "fast_eager" not in runs else "fast_eager"
        fast_params = dict(configs)[chosen]
        fast, slow = runs[chosen], runs["fp32_eager"]
        result["projected_from"] = chosen
        result["speedup"] = fast["samples_s"] / slow["samples_s"] if fast["ok"] and slow["ok"] else None
        if result["speedup"] is not None:
            _say(f"{chosen.replace('_', ' ')} / fp32 eager: {result['speedup']:.2f}x")
        eager = runs.get("fast_eager")
        result["compile_speedup"] = (runs["fast"]["samples_s"] / eager["samples_s"]
                                     if eager and eager["ok"] and runs["fast"]["ok"] else None)
        if result["compile_speedup"] is not None:
            _say(f"torch.compile: {result['compile_speedup']:.2f}x over the same path eager")

        loader = time_loader(fast_params, train_set, max(steps, 50))
        consumed = fast["samples_s"] if fast["ok"] else None
        loader["headroom"] = loader["samples_s"] / consumed if consumed else None
        loader["keeps_up"] = loader_keeps_up(loader, fast)
        result["loader"] = loader
        if consumed:
            _say(f"data loader alone ({loader['workers']} workers): {loader['samples_s']:.0f} samples/s, "
                 f"{loader['headroom']:.1f}x what the fast path consumes; {loader_verdict(loader, fast)}")

        # DDP eager where the fast path compiles (every process would compile again, minutes of the check's five),
        # against the single process's eager figure
        base = "fast_eager" if eager and eager["ok"] else chosen
        if procs > 1 and runs[base]["ok"]:
            ddp = time_ddp(procs, dict(configs)[base], processed, root, warmup, args.ddp_timeout)
            if ddp["ran"]:
                ddp["compared_with"] = base
                ddp["efficiency"] = ddp["samples_s"] / (procs * runs[base]["samples_s"])
                _say(f"DDP over {procs} processes ({ddp['backend']}, batch {batch} each, as {base.replace('_', ' ')}):"
                     f" {ddp['samples_s']:.1f} samples/s, {ddp['step_ms']:.1f} ms/step, scaling efficiency "
                     f"{ddp['efficiency']:.0%}")
            else:
                _say(f"DDP over {procs} processes: did not run: {ddp['reason']}")
        else:
            ddp = {"ran": False, "processes": procs, "reason": "one GPU" if device.type == "cuda" else
                   "no GPUs (--ddp-procs N runs gloo on the CPU)"}
            if procs > 1:
                ddp["reason"] = "the fast path failed"
        result["ddp"] = ddp

    result["projection"] = project(args.params, fast_params, fast, gflop)
    for name, projection in result["projection"].items():
        _say("projected: " + describe_projection(name, projection))
    if device.type != "cuda":
        _say(f"(ran on the CPU at the {size} size: the projections say what this CPU would take)")
    result["seconds"] = time.perf_counter() - started
    if args.json is not None:
        write_atomic(args.json, json.dumps(result, sort_keys=True, indent=1))
    return result
