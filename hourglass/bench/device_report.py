"""The device check's human-readable lines and verdicts: the device, each run, the loader, the projections."""

from __future__ import annotations

from typing import Any

KEEPS_UP = 1.25  # loader headroom (loader alone / training's consumption) below which the loader is the bottleneck
WAIT_LIMIT = 0.05  # share of the timed window spent waiting for batches above which the loader is the bottleneck


def busy_cpu_warning(info: dict[str, Any]) -> str | None:
    """A warning when the check ran on a CPU whose cores other processes hold (the device's load average), else
    None: the figures would fall far below a quiet machine's."""
    if info["type"] != "cpu" or info["load_average"] is None or info["load_average"] < info["cores"]:
        return None
    why = (f"torch's {info['threads']} threads wait for each other when other processes hold their cores, and "
           f"the figures fall far below a quiet machine's (measured on 2 busy cores: about 17x slower with 2 "
           f"threads than with OMP_NUM_THREADS=1); rerun when it is quiet, or with OMP_NUM_THREADS set to the "
           f"free cores" if info["threads"] > 1 else "other processes share the cores, so the figures are below "
           "a quiet machine's")
    return f"warning: the CPU is busy (load average {info['load_average']} on {info['cores']} cores): {why}"


def loader_keeps_up(loader: dict[str, Any], fast: dict[str, Any]) -> bool:
    """The loader alone outpaces what training consumed by ``KEEPS_UP`` and training seldom waited for it."""
    return bool(loader["headroom"] and loader["headroom"] >= KEEPS_UP and fast["data_wait_share"] < WAIT_LIMIT)


def describe_device(info: dict[str, Any]) -> str:
    """One line naming what the check ran on (:func:`hourglass.bench.device_info.device_info`)."""
    if info["type"] == "cuda":
        return (f"{info['name']}, {info['memory_gib']} GiB, compute capability {info['compute_capability']}; "
                f"driver {info['driver'] or 'unknown'} (CUDA {info['cuda_driver_api']}), CUDA {info['cuda']}, "
                f"cuDNN {info['cudnn']}, NCCL {info['nccl']}, torch {info['torch']}; {info['gpu_count']} GPU(s); "
                f"host {info['cpu']}, {info['cores']} cores")
    return (f"no GPU: ran on the CPU, {info['cpu']} ({info['cpu_isa']}), {info['cores']} cores, "
            f"{info['threads']} threads, torch {info['torch']}; load average {info['load_average']}")


def describe_run(figures: dict[str, Any]) -> str:
    """One timed run's figures, or why it failed."""
    if not figures["ok"]:
        return f"FAILED: {figures['error']}"
    memory, syncs = figures["peak_gpu_memory_gib"], figures["host_syncs"]
    return (f"{figures['samples_s']:.1f} samples/s, {figures['step_ms']:.1f} ms/step, "
            f"{figures['achieved_tflop_s']:.3g} TFLOP/s, "
            + (f"peak GPU memory {memory:.2f} GiB, " if memory is not None else "")
            + f"waiting for data {figures['data_wait_share']:.1%} of the time"
            + (f", {syncs} host syncs in {figures['timed_steps']} steps (loss read-backs: {figures['readbacks']})"
               if syncs is not None else ""))


def describe_settings(runtime: dict[str, Any] | None) -> str:
    """The fast-path switches a run resolved to (its runtime record), comma-separated."""
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


def loader_verdict(loader: dict[str, Any], fast: dict[str, Any]) -> str:
    """Whether the loader keeps the training fed, and what to change when it does not."""
    wait = fast["data_wait_share"]
    if loader["workers"] == 0:
        advice = ("; loader workers would overlap it (train.workers), at the price of cores the training computes "
                  "with" if wait >= WAIT_LIMIT else "")
        return f"the training process loads its own batches: {wait:.1%} of the time{advice}"
    if loader["keeps_up"]:
        return "it keeps up"
    return ("the loader limits training: raise train.workers or train.prefetch_factor, or give the job more cores "
            "(docs/device-check.md)")


def describe_projection(name: str, p: dict[str, Any]) -> str:
    """One recipe's projected wall-clock (:func:`hourglass.bench.projection.project`)."""
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
