"""``python -m hourglass.bench device`` on the CPU at the smallest size: the JSON has every figure, the loop it
times is hourglass.train.loop's (a slower loop shows in its figures), the DDP path runs under torchrun (gloo here), and
the projection is the recipes' samples at the measured rate, scaled by FLOPs only where the network differs.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import warnings
from collections.abc import Iterator

import pytest
import torch
from shipped import PARAMS, recipe

from hourglass.bench import step_timing
from hourglass.bench.__main__ import main
from hourglass.bench.projection import project, train_gflop
from hourglass.train import loop

pytestmark = pytest.mark.usefixtures("one_thread")

TOP_KEYS = {"benchmark", "ran_on", "device", "size", "recipe", "loop", "network", "batch", "timed_steps",
            "warmup_steps", "gflop_per_sample", "data", "runs", "projected_from", "speedup", "compile_speedup",
            "loader", "ddp", "projection", "seconds"}
DEVICE_KEYS = {"type", "name", "memory_gib", "compute_capability", "driver", "cuda_driver_api", "cuda", "cudnn", "nccl",
               "torch", "gpu_count", "bf16", "cpu", "cpu_isa", "cores", "threads", "load_average"}
RUN_KEYS = {"ok", "samples_s", "step_ms", "data_wait_share", "peak_gpu_memory_gib", "timed_s", "run_s",
            "timed_steps", "warmup_steps", "readbacks", "host_syncs", "achieved_tflop_s", "runtime"}
RUNTIME_KEYS = {"precision", "channels_last", "tf32", "cudnn_benchmark", "optimizer_impl", "compile", "compile_mode",
                "workers", "pin_memory", "persistent_workers", "prefetch_factor", "cpu_isa", "device"}
PROJECTION_KEYS = {"samples", "epochs", "steps_per_epoch", "batch_size", "network", "gflop_per_sample", "hours",
                   "basis", "sweep", "seeds", "variants", "sweep_hours"}
SMALLEST = ["device", "--size", "smallest", "--params", str(PARAMS)]


def _check(argv: list[str]) -> tuple[dict, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    text = out.getvalue()
    return json.loads(text.strip().splitlines()[-1]), text


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> Iterator[tuple[dict, str, dict]]:
    """One check with the torchrun run forced (two gloo processes): (printed JSON, stdout, --json file)."""
    path = tmp_path_factory.mktemp("device") / "device.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result, text = _check([*SMALLEST, "--ddp-procs", "2", "--ddp-timeout", "300", "--json", str(path)])
    finally:
        torch.set_num_threads(threads)
    yield result, text, json.loads(path.read_text())


def test_the_json_has_every_figure_and_says_it_ran_on_the_cpu(checked):
    result, text, written = checked
    assert written == result
    assert set(result) == TOP_KEYS and set(result["device"]) == DEVICE_KEYS
    assert result["ran_on"] == "cpu" and result["device"]["gpu_count"] == 0 and "ran on the CPU" in text
    assert result["size"] == "smallest" and result["loop"] == "hourglass.train.loop.train"
    assert set(result["runs"]) == {"fast", "fp32_eager"}  # the CPU does not compile (compile: auto)
    assert result["projected_from"] == "fast" and result["compile_speedup"] is None
    assert (result["timed_steps"], result["warmup_steps"], result["batch"]) == (3, 1, 4)
    for name in ("fast", "fp32_eager"):
        run = result["runs"][name]
        assert set(run) == RUN_KEYS and run["ok"], run
        assert run["samples_s"] > 0 and 0 <= run["data_wait_share"] <= 1 and run["peak_gpu_memory_gib"] is None
        assert run["samples_s"] == pytest.approx(3 * 4 / run["timed_s"])
        # no sync debug mode on the CPU; timed steps 1-3 hold no read-back point at log_every 10
        assert run["host_syncs"] is None and run["readbacks"] == 0
        assert RUNTIME_KEYS <= set(run["runtime"])
    eager = result["runs"]["fp32_eager"]["runtime"]
    assert (eager["precision"], eager["channels_last"], eager["compile"], eager["optimizer_impl"]) == (
        "fp32", False, False, "for_loop")
    assert result["speedup"] == pytest.approx(result["runs"]["fast"]["samples_s"] / eager_rate(result))
    loader = result["loader"]
    assert loader["workers"] == 0 and loader["samples_s"] > 0 and isinstance(loader["keeps_up"], bool)
    for name, samples in (("mpii", 100 * 8000 * 6), ("flic", 50 * 2000 * 6)):
        projection = result["projection"][name]
        assert set(projection) == PROJECTION_KEYS and projection["samples"] == samples
        assert 150 < projection["gflop_per_sample"] < 180  # ~165 GFLOP per sample for the 8-stack network
        assert projection["hours"] > 0 and projection["basis"].startswith("scaled by FLOPs")
    assert set(result["projection"]["mpii"]["variants"]) == set(recipe("mpii").sweep)
    assert text.count("projected: recipes/") == 2


def eager_rate(result: dict) -> float:
    return result["runs"]["fp32_eager"]["samples_s"]


def test_the_torchrun_run_reports_its_scaling(checked):
    ddp = checked[0]["ddp"]
    assert ddp["ran"], ddp
    assert (ddp["processes"], ddp["backend"], ddp["per_process_batch"], ddp["global_batch"]) == (2, "gloo", 4, 8)
    assert ddp["samples_s"] > 0 and ddp["runtime"]["world_size"] == 2 and ddp["compared_with"] == "fast"
    assert ddp["efficiency"] == pytest.approx(ddp["samples_s"] / (2 * checked[0]["runs"]["fast"]["samples_s"]))
    assert "scaling efficiency" in checked[1]


def test_a_change_to_the_training_loop_reaches_the_benchmark(checked, monkeypatch):
    """Slow hourglass.train.loop's step by 0.2 s: every timed step of both runs is that much slower, and the loop ran
    each run's warm-up + timed steps (it is the training loop, not a copy)."""
    calls = []
    real = loop.forward_loss

    def slower(*args, **kwargs):
        calls.append(1)
        time.sleep(0.2)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "forward_loss", slower)  # the loop's own step
    result, _ = _check(SMALLEST)
    assert len(calls) == 2 * (3 + 1)
    for name in ("fast", "fp32_eager"):
        before, after = checked[0]["runs"][name]["step_ms"], result["runs"][name]["step_ms"]
        assert after - before > 150, (name, before, after)
    assert result["ddp"] == {"ran": False, "processes": 0, "reason": "no GPUs (--ddp-procs N runs gloo on the CPU)"}


def test_a_fast_path_that_fails_to_compile_is_reported_and_the_eager_one_measured(monkeypatch):
    """A compiled fast path (forced on the CPU) whose torch.compile fails: the failure is in the figures, not a
    crash, and the same path without compile is measured, compared and projected from."""
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", broken)
    result, text = _check([*SMALLEST, "--set", "train.compile=true"])
    runs = result["runs"]
    assert set(runs) == {"fast", "fast_eager", "fp32_eager"}
    assert runs["fast"] == {"ok": False, "error": "RuntimeError: no C++ compiler"} and "FAILED" in text
    assert runs["fast_eager"]["ok"] and not runs["fast_eager"]["runtime"]["compile"]
    assert result["projected_from"] == "fast_eager" and result["compile_speedup"] is None
    assert result["speedup"] == pytest.approx(runs["fast_eager"]["samples_s"] / runs["fp32_eager"]["samples_s"])
    assert result["projection"]["mpii"]["hours"] > 0


def test_the_sync_counter_counts_cuda_sync_warnings_in_its_window_only():
    modes = []
    counter = step_timing.SyncCounter(set_mode=modes.append)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        counter.start()
        for _ in range(3):  # the same line three times: counted three times
            warnings.warn("Warning: called a synchronizing CUDA operation (function cudaStreamSynchronize)",
                          stacklevel=1)
        warnings.warn("something else", stacklevel=1)
        counter.stop()
        warnings.warn("called a synchronizing CUDA operation, after the window", stacklevel=1)
    assert counter.count == 3 and modes == ["warn", "default"]
    assert [str(w.message) for w in caught] == ["something else", "called a synchronizing CUDA operation, after the "
                                                                    "window"]


def test_the_step_timer_counts_only_its_window():
    timer = step_timing.StepTimer(torch.device("cpu"), warmup=2, steps=3)
    timer.on_batch(5.0)  # warm-up batches are not counted
    timer.on_step(0)
    timer.on_batch(5.0)
    timer.on_step(1)  # the window starts here
    for step in (2, 3, 4):
        timer.on_batch(0.001)
        timer.on_step(step)
    timer.on_batch(5.0)  # after the window
    timer.on_step(5)
    figures = timer.figures(global_batch=8)
    assert figures["data_wait_share"] == pytest.approx(0.003 / figures["timed_s"])
    assert figures["samples_s"] == pytest.approx(24 / figures["timed_s"])
    with pytest.raises(RuntimeError, match="ran 0 of 3 timed steps"):
        step_timing.StepTimer(torch.device("cpu"), 1, 3).figures(8)


def test_a_measured_recipe_network_is_projected_from_its_own_rate():
    """Measured at the MPII recipe's network and batch (as on a GPU at the paper size): 4.8 M samples at 1,000/s is
    1.33 h; the other variants are scaled by their FLOPs; FLIC's 11-joint network by its own FLOPs."""
    mpii = recipe("mpii")
    gflop = train_gflop(mpii.model, 16)
    projection = project(PARAMS, mpii, {"ok": True, "samples_s": 1000.0}, gflop)
    assert projection["mpii"]["hours"] == pytest.approx(4.8e6 / 1000 / 3600)
    assert projection["mpii"]["basis"] == "measured" and projection["mpii"]["variants"]["s8m1"]["basis"] == "measured"
    hg = projection["mpii"]["variants"]["hg"]
    assert hg["basis"].startswith("scaled by FLOPs") and 0 < hg["hours"] < projection["mpii"]["hours"]
    assert projection["mpii"]["sweep_hours"] == pytest.approx(
        sum(v["hours"] for v in projection["mpii"]["variants"].values()))
    assert projection["flic"]["basis"].startswith("scaled by FLOPs")
    assert projection["flic"]["hours"] == pytest.approx(0.6e6 / 1000 / 3600, rel=0.01)
    failed = project(PARAMS, mpii, {"ok": False}, gflop)
    assert failed["mpii"]["hours"] is None and failed["mpii"]["sweep_hours"] is None
