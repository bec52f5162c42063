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
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from hourglass.io.annotations import read_annotations, write_annotations
from hourglass.config import ModelConfig, ParamsConfig, parse_params
from hourglass.data.dataset import create_dataset
from hourglass.data.workers import available_cores
from hourglass.data.preprocess import preprocess
from hourglass.data.sampler import EpochSampler
from hourglass.train.distributed import DistInfo, dist_info_from_env
from hourglass.family import family_of
from hourglass.train.fastpath import resolve_fast_path
from hourglass.model import create_model
from hourglass.precision import cpu_isa, cpu_model, select_device
from hourglass.recipes import load_with_recipe
from hourglass.train.loop import resolve_variant

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
RECIPES = ("mpii", "flic")
KEEPS_UP = 1.25  # loader headroom (loader alone / training's consumption) below which the loader is the bottleneck
WAIT_LIMIT = 0.05  # share of the timed window spent waiting for batches above which the loader is the bottleneck
WORKER_RESULT = "rank0.json"


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- the machine --------------------------------------------------------------------------------------------------
def _nvidia_driver() -> str | None:
    """The NVIDIA driver version from nvidia-smi (torch reports only the CUDA API version the driver supports)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def _cuda_driver_api() -> str | None:
    """The CUDA version the driver supports (torch's private helper; absent from CPU builds, hence best-effort)."""
    getter = getattr(torch._C, "_cuda_getDriverVersion", None)
    try:
        version = int(getter()) if getter is not None else 0
    except (RuntimeError, OSError, ValueError):
        return None
    return f"{version // 1000}.{version % 1000 // 10}" if version else None


def _nccl_version() -> str | None:
    try:
        version = torch.cuda.nccl.version()
    except (AttributeError, RuntimeError):
        return None
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


def device_info(device: torch.device) -> dict[str, Any]:
    """What the check ran on."""
    info: dict[str, Any] = {
        "type": device.type, "torch": str(torch.__version__), "cuda": torch.version.cuda,
        "gpu_count": torch.cuda.device_count() if device.type == "cuda" else 0,
        "cpu": cpu_model(), "cpu_isa": cpu_isa(), "cores": available_cores(), "threads": torch.get_num_threads(),
        "name": None, "memory_gib": None, "compute_capability": None, "driver": None, "cuda_driver_api": None,
        "cudnn": None, "nccl": None, "bf16": None,
        # other processes' load: on a busy CPU the figures fall far below a quiet machine's
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                    compute_capability=f"{props.major}.{props.minor}", driver=_nvidia_driver(),
                    cuda_driver_api=_cuda_driver_api(), cudnn=torch.backends.cudnn.version(),
                    bf16=torch.cuda.is_bf16_supported(including_emulation=False), nccl=_nccl_version())
    else:
        info["name"] = cpu_model()
    return info


def _describe_device(info: dict[str, Any]) -> str:
    if info["type"] == "cuda":
        return (f"{info['name']}, {info['memory_gib']} GiB, compute capability {info['compute_capability']}; "
                f"driver {info['driver'] or 'unknown'} (CUDA {info['cuda_driver_api']}), CUDA {info['cuda']}, "
                f"cuDNN {info['cudnn']}, NCCL {info['nccl']}, torch {info['torch']}; {info['gpu_count']} GPU(s); "
                f"host {info['cpu']}, {info['cores']} cores")
    return (f"no GPU: ran on the CPU, {info['cpu']} ({info['cpu_isa']}), {info['cores']} cores, "
            f"{info['threads']} threads, torch {info['torch']}; load average {info['load_average']}")


# -- generated data -----------------------------------------------------------------------------------------------
def make_data(root: Path, params: ParamsConfig, people: int, seed: int = 0) -> Path:
    """Generated MPII-like people (photo-like JPEGs) through the real preprocessing stage: ``root/processed`` with
    a ``train`` split of ``people`` and a small ``valid`` split."""
    from hourglass.bench.loader import make_raw_set

    raw = root / "raw"
    make_raw_set(raw, people, np.random.default_rng(seed))
    table = read_annotations(raw / "annot" / "train.h5")
    write_annotations(raw / "annot" / "valid.h5", table.subset(slice(0, min(8, len(table)))), name="bench")
    preprocess(raw, root / "processed", params, dataset="bench", progress=False)
    return root / "processed"


def _datasets(processed: Path, params: ParamsConfig) -> tuple[Any, Any]:
    return create_dataset(processed, "train", params, train=True), create_dataset(processed, "valid", params, False)


# -- timing the training loop ---------------------------------------------------------------------------------------
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
                  info: DistInfo = DistInfo()) -> dict[str, Any]:
    """One epoch of ``warmup + steps`` steps of :func:`hourglass.train.loop.train` (``params.train.steps_per_epoch``),
    timed by a :class:`StepTimer`; this process's figures, with the run's resolved runtime record."""
    from hourglass.train.loop import train  # the module attribute at call time: what the training stage runs

    device = select_device(info.local_rank)
    steps = int(params.train.steps_per_epoch) - warmup
    timer = StepTimer(device, warmup, steps, SyncCounter() if device.type == "cuda" else None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    try:
        train(params, out_dir, train_set=train_set, val_set=val_set, seed=0, info=info, observer=timer)
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


def _run_config(name: str, params: ParamsConfig, root: Path, train_set: Any, val_set: Any, warmup: int,
                gflop: float) -> dict[str, Any]:
    try:
        out = time_training(params, root / name, train_set, val_set, warmup)
    except Exception as err:  # noqa: BLE001 - the check reports a broken path instead of stopping at it
        return {"ok": False, "error": f"{type(err).__name__}: {err}"}
    out["achieved_tflop_s"] = out["samples_s"] * gflop / 1e3
    return out


def _describe_run(figures: dict[str, Any]) -> str:
    if not figures["ok"]:
        return f"FAILED: {figures['error']}"
    memory, syncs = figures["peak_gpu_memory_gib"], figures["host_syncs"]
    return (f"{figures['samples_s']:.1f} samples/s, {figures['step_ms']:.1f} ms/step, "
            f"{figures['achieved_tflop_s']:.3g} TFLOP/s, "
            + (f"peak GPU memory {memory:.2f} GiB, " if memory is not None else "")
            + f"waiting for data {figures['data_wait_share']:.1%} of the time"
            + (f", {syncs} host syncs in {figures['timed_steps']} steps (loss read-backs: {figures['readbacks']})"
               if syncs is not None else ""))


def _settings(runtime: dict[str, Any] | None) -> str:
    if not runtime:
        return ""
    parts = [runtime["precision"], "channels_last" if runtime["channels_last"] else "NCHW",
             f"optimiser {runtime['optimizer_impl']}", f"{runtime['workers']} loader workers"]
    if runtime["tf32"]:
        parts.append("TF32")
    if runtime["cudnn_benchmark"]:
        parts.append("cudnn.benchmark")
    parts.append(f"compile {runtime['compile_mode']}" if runtime["compile"] else "eager")
    return ", ".join(parts)


# -- the loader alone -----------------------------------------------------------------------------------------------
def time_loader(params: ParamsConfig, train_set: Any, batches: int) -> dict[str, Any]:
    """The training DataLoader as the fast path builds it, alone, batches copied to the device: samples/s."""
    from torch.utils.data import DataLoader

    from hourglass.train.loop import _seed_worker

    device = select_device()
    fast = resolve_fast_path(params.train, device)
    batch = params.train.batch_size
    sampler = EpochSampler(len(train_set), batch, steps=batches + max(1, fast.workers), seed=0)
    loader = DataLoader(train_set, batch_size=batch, sampler=sampler, drop_last=True, worker_init_fn=_seed_worker,
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


def _loader_verdict(loader: dict[str, Any], fast: dict[str, Any]) -> str:
    wait = fast["data_wait_share"]
    if loader["workers"] == 0:
        advice = ("; loader workers would overlap it (train.workers), at the price of cores the training computes "
                  "with" if wait >= WAIT_LIMIT else "")
        return f"the training process loads its own batches: {wait:.1%} of the time{advice}"
    if loader["keeps_up"]:
        return "it keeps up"
    return ("the loader limits training: raise train.workers or train.prefetch_factor, or give the job more cores "
            "(README: Before a long run)")


# -- several GPUs -------------------------------------------------------------------------------------------------
def time_ddp(procs: int, params: ParamsConfig, processed: Path, root: Path, warmup: int,
             timeout: float) -> dict[str, Any]:
    """The fast path under ``torchrun --standalone --nproc-per-node=procs`` at ``params``' per-process batch
    (the global batch is ``procs`` times it); rank 0's figures."""
    per_process = params.train.batch_size
    raw = params.model_dump(mode="json")
    raw["train"]["batch_size"] = per_process * procs
    spec = root / "ddp-spec.json"
    spec.write_text(json.dumps({"params": raw, "data": str(processed), "out": str(root / "ddp"), "warmup": warmup}))
    env = dict(os.environ)
    if select_device().type != "cuda":  # gloo on the CPU: share the cores instead of oversubscribing them
        env["OMP_NUM_THREADS"] = str(max(1, available_cores() // procs))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}",
           "-m", "hourglass.bench.device", str(spec)]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ran": False, "processes": procs, "reason": f"torchrun did not finish within {timeout:g} s"}
    result = root / "ddp" / WORKER_RESULT
    if done.returncode != 0 or not result.is_file():
        tail = (done.stderr or done.stdout)[-2000:]
        return {"ran": False, "processes": procs, "reason": f"torchrun exited {done.returncode}: {tail}"}
    figures = json.loads(result.read_text())
    figures.update(ran=True, processes=procs, per_process_batch=per_process, global_batch=per_process * procs,
                   backend="nccl" if select_device().type == "cuda" else "gloo")
    return figures


def worker_main(argv: list[str]) -> int:
    """One process of :func:`time_ddp`'s torchrun job: train on the generated data, rank 0 writes its figures."""
    spec = json.loads(Path(argv[0]).read_text())
    info = dist_info_from_env()
    params = parse_params(spec["params"], "device check (torchrun)")
    train_set, val_set = _datasets(Path(spec["data"]), params)
    out_dir = Path(spec["out"])
    figures = time_training(params, out_dir, train_set, val_set, int(spec["warmup"]), info)
    if info.is_main:
        (out_dir / WORKER_RESULT).write_text(json.dumps(figures))
    return 0


# -- FLOPs and the recipes' cost ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _train_gflop(stacks: int, features: int, modules: int, supervision: str, stem_width: int, joints: int,
                 res: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from hourglass.train.loop import auxiliary_loss, heatmap_loss

    with torch.device("meta"):
        network = create_model(stacks=stacks, features=features, modules=modules, supervision=supervision,
                               stem_width=stem_width, joints=joints)
        # two samples: BatchNorm in training mode refuses one value per channel (a 64 px input's 1x1 bottom)
        images = torch.empty(2, 3, res, res)
        target = torch.empty(2, joints, res // 4, res // 4)
    with FlopCounterMode(display=False) as counter:
        outputs, maps = network(images, auxiliary=True)
        loss = heatmap_loss(network.supervised(outputs), target)
        if maps:
            loss = loss + auxiliary_loss(maps, target)
        loss.backward()
    return counter.get_total_flops() / 2 / 1e9


def train_gflop(model: ModelConfig, joints: int) -> float:
    """Forward + backward GFLOP of one training sample of ``model`` (FlopCounterMode on the meta device)."""
    return _train_gflop(model.stacks, model.features, model.modules, model.supervision, model.stem_width, joints,
                        model.input_res)


MEASURED_JOINTS = 16  # the generated people are MPII-like


def _same_network(a: ModelConfig, b: ModelConfig) -> bool:
    return a.network_kwargs() == b.network_kwargs() and a.input_res == b.input_res


def project(params_path: Path, measured: ParamsConfig, figures: dict[str, Any], gflop: float) -> dict[str, Any]:
    """The shipped recipes' wall-clock on this device at the fast path's measured rate ``figures["samples_s"]`` of
    the ``measured`` network (``gflop`` per training sample), see the module docstring."""
    out: dict[str, Any] = {}
    rate = figures.get("samples_s") if figures.get("ok") else None
    for name in RECIPES:
        recipe = load_with_recipe(params_path, name)
        cfg, joints = recipe.train, family_of(recipe).joints.count
        if cfg.steps_per_epoch is None:
            out[name] = {"error": "train.steps_per_epoch is null: the samples per epoch depend on the data"}
            continue
        samples = cfg.epochs * cfg.steps_per_epoch * cfg.batch_size

        def hours(model: ModelConfig) -> tuple[float | None, str]:
            if rate is None:
                return None, "not measured"
            if _same_network(model, measured.model) and cfg.batch_size == measured.train.batch_size \
                    and joints == MEASURED_JOINTS:
                return samples / rate / 3600, "measured"
            ratio = train_gflop(model, joints) / gflop
            # A smaller network computes fewer FLOP/s (per-layer overheads weigh more), so scaling from one is
            # pessimistic, the more so the larger the ratio.
            return samples * ratio / rate / 3600, f"scaled by FLOPs from the measured network ({ratio:,.3g}x)"

        model_hours, basis = hours(recipe.model)
        variants = {}
        for variant in recipe.sweep:
            variant_hours, variant_basis = hours(resolve_variant(recipe, variant).model)
            variants[variant] = {"hours": variant_hours, "basis": variant_basis}
        sweep_hours = None if rate is None else sum(v["hours"] for v in variants.values()) * len(recipe.seeds)
        out[name] = {
            "samples": samples, "epochs": cfg.epochs, "steps_per_epoch": cfg.steps_per_epoch,
            "batch_size": cfg.batch_size, "network": recipe.model.network_kwargs() | {"input_res": recipe.model.input_res},
            "gflop_per_sample": train_gflop(recipe.model, joints), "hours": model_hours, "basis": basis,
            "sweep": list(recipe.sweep), "seeds": list(recipe.seeds), "variants": variants, "sweep_hours": sweep_hours,
        }
    return out


def _describe_projection(name: str, p: dict[str, Any]) -> str:
    if "error" in p:
        return f"recipes/{name}.yaml: {p['error']}"
    if p["hours"] is None:
        return f"recipes/{name}.yaml: no projection (the fast path did not run)"
    net = p["network"]
    return (f"recipes/{name}.yaml: {p['epochs']} epochs x {p['steps_per_epoch']:,} steps x {p['batch_size']} = "
            f"{p['samples'] / 1e6:.2f} M samples of the {net['stacks']}-stack network "
            f"({p['gflop_per_sample']:.0f} GFLOP each): {_duration(p['hours'])} ({p['basis']}); its sweep of "
            f"{len(p['sweep'])} variant(s) x {len(p['seeds'])} seed(s): {_duration(p['sweep_hours'])}")


def _duration(hours: float) -> str:
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 72:
        return f"{hours:.1f} h"
    return f"{hours / 24:,.0f} days"


# -- the command ----------------------------------------------------------------------------------------------------
def _overrides(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(raw)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
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
    overrides.update({"dataset": "synthetic", "synthetic.joint_set": "mpii", "train.epochs": 1,
                      "train.steps_per_epoch": warmup + steps, "train.val_batch_size": 8, "mlflow.enabled": False,
                      "mlflow.system_metrics": False, "preprocess.workers": 1})
    overrides.update(_overrides(args.overrides))
    recipe = None if args.recipe == "none" else args.recipe
    fast_params = load_with_recipe(args.params, recipe, overrides)
    slow_params = load_with_recipe(args.params, recipe, {**overrides, **BASELINE})
    info = device_info(device)
    _say(f"device check: {_describe_device(info)}")
    if device.type == "cpu" and info["load_average"] is not None and info["load_average"] >= info["cores"]:
        why = (f"torch's {info['threads']} threads wait for each other when other processes hold their cores, and "
               f"the figures fall far below a quiet machine's (measured on 2 busy cores: about 17x slower with 2 "
               f"threads than with OMP_NUM_THREADS=1); rerun when it is quiet, or with OMP_NUM_THREADS set to the "
               f"free cores" if info["threads"] > 1 else "other processes share the cores, so the figures are below "
               f"a quiet machine's")
        _say(f"warning: the CPU is busy (load average {info['load_average']} on {info['cores']} cores): {why}")
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
        train_set, val_set = _datasets(processed, fast_params)
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
            _say(f"{name.replace('_', ' ')} ({_settings(runs[name].get('runtime'))}): {_describe_run(runs[name])}")
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
        loader["keeps_up"] = bool(loader["headroom"] and loader["headroom"] >= KEEPS_UP
                                  and fast["data_wait_share"] < WAIT_LIMIT)
        result["loader"] = loader
        if consumed:
            _say(f"data loader alone ({loader['workers']} workers): {loader['samples_s']:.0f} samples/s, "
                 f"{loader['headroom']:.1f}x what the fast path consumes; {_loader_verdict(loader, fast)}")

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
        _say("projected: " + _describe_projection(name, projection))
    if device.type != "cuda":
        _say(f"(ran on the CPU at the {size} size: the projections say what this CPU would take)")
    result["seconds"] = time.perf_counter() - started
    if args.json is not None:
        args.json.write_text(json.dumps(result, sort_keys=True, indent=1))
    return result


if __name__ == "__main__":  # one process of the torchrun job started by time_ddp
    sys.exit(worker_main(sys.argv[1:]))
