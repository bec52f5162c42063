"""The CUDA fast path as switches (hourglass.train.fastpath): what a run requests on CUDA, with the device injected
(this machine has no GPU), that the CPU resolves the CUDA-only switches to no-ops, and that the training loop takes what
was resolved (DataLoader, optimiser, backend flags, the runtime record) and reads its losses back only every
``log_every`` steps.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from shipped import paper, section
from torch.utils.data import DataLoader

from hourglass.data.workers import MAX_AUTO_WORKERS, auto_workers, resolve_workers
from hourglass.precision import cpu_isa, cpu_supports_bf16, select_precision
from hourglass.train import fastpath
from hourglass.train import loop as train_module
from hourglass.train.fastpath import backend_flags, compile_model, resolve_fast_path, resolve_optimizer_impl
from hourglass.train.optim import create_optimizer

sys.path.insert(0, str(Path(__file__).parent))
from toy_poses import ToyPoses, tiny_params  # noqa: E402

CUDA = torch.device("cuda", 1)
CPU = torch.device("cpu")


def test_on_cuda_every_fast_switch_is_requested():
    """The shipped defaults on CUDA: TF32, cuDNN benchmarking, fused Adam (the preset) / foreach RMSprop (the
    paper's), torch.compile, workers from the cores, pinned memory, persistent workers, prefetch; DDP on its GPU."""
    cfg = section("train")
    assert (cfg.tf32, cfg.cudnn_benchmark, cfg.optimizer_impl, cfg.compile, cfg.workers) == (
        True, True, "auto", "auto", "auto")
    fast = resolve_fast_path(cfg, CUDA, processes=2, cores=16)
    assert fast.tf32 and fast.cudnn_benchmark and fast.compile and fast.compile_mode == "default"
    assert fast.optimizer_impl == "fused" and fast.optimizer_flags() == {"fused": True}
    assert resolve_fast_path(paper("train"), CUDA, cores=16).optimizer_flags() == {"foreach": True}  # RMSprop
    assert fast.loader_kwargs() == {"num_workers": 7, "multiprocessing_context": "spawn", "pin_memory": True,
                                    "persistent_workers": True, "prefetch_factor": cfg.prefetch_factor}
    assert fast.ddp_kwargs() == {"device_ids": [1]}
    record = fast.record()
    assert record == {"tf32": True, "cudnn_benchmark": True, "optimizer_impl": "fused", "compile": True,
                      "compile_mode": "default", "workers": 7, "pin_memory": True, "persistent_workers": True,
                      "prefetch_factor": cfg.prefetch_factor}
    # Each switch turns its part off on CUDA too.
    off = section("train", tf32=False, cudnn_benchmark=False, optimizer_impl="for_loop", compile=False, workers=0,
                  pin_memory=False)
    slow = resolve_fast_path(off, CUDA, cores=16)
    assert (slow.tf32, slow.cudnn_benchmark, slow.compile, slow.compile_mode, slow.pin_memory) == (
        False, False, False, None, False)
    assert slow.optimizer_flags() == {"foreach": False}  # for_loop, though torch would pick foreach on CUDA
    assert slow.loader_kwargs() == {"num_workers": 0, "multiprocessing_context": None, "pin_memory": False,
                                    "persistent_workers": False, "prefetch_factor": None}
    assert resolve_fast_path(section("train", compile_mode="reduce-overhead"), CUDA).compile_mode == "reduce-overhead"


def test_on_the_cpu_the_cuda_only_switches_are_no_ops_and_the_loader_arguments_are_valid():
    cfg = section("train")
    fast = resolve_fast_path(cfg, CPU, cores=64)
    assert (fast.tf32, fast.cudnn_benchmark, fast.compile, fast.pin_memory, fast.workers) == (
        False, False, False, False, 0)
    assert fast.optimizer_impl == "fused" and fast.ddp_kwargs() == {}  # torch's fused Adam runs on the CPU
    DataLoader(ToyPoses(4), batch_size=2, **fast.loader_kwargs())  # torch accepts them (no prefetch without workers)
    explicit = resolve_fast_path(section("train", workers=2, compile=True, optimizer_impl="fused"), CPU)
    assert explicit.compile and explicit.optimizer_impl == "fused"  # standard PyTorch on the CPU as well
    assert explicit.loader_kwargs()["prefetch_factor"] == cfg.prefetch_factor
    assert explicit.loader_kwargs()["persistent_workers"] and not explicit.loader_kwargs()["pin_memory"]


def test_deterministic_runs_do_not_benchmark_cudnn():
    assert not resolve_fast_path(section("train", deterministic=True), CUDA).cudnn_benchmark


@pytest.mark.parametrize(("cores", "processes", "expected"), [
    (16, 1, MAX_AUTO_WORKERS), (16, 2, 7), (16, 8, 1), (8, 8, 1), (4, 1, 3), (2, 1, 1), (64, 8, 7)])
def test_auto_workers_share_the_cores_among_the_processes_of_the_machine(cores, processes, expected):
    assert auto_workers(CUDA, processes, cores) == expected
    assert auto_workers(CPU, processes, cores) == 0
    assert resolve_workers("auto", CUDA, processes, cores) == expected and resolve_workers(3, CUDA, processes) == 3


def test_optimizer_implementation_follows_what_torch_offers():
    assert [resolve_optimizer_impl("auto", name) for name in ("adam", "sgd", "rmsprop")] == [
        "fused", "fused", "foreach"]
    assert [resolve_fast_path(section("train", optimizer=name), device).optimizer_impl
            for name in ("adam", "rmsprop") for device in (CPU, CUDA)] == ["fused", "fused", "foreach", "foreach"]
    with pytest.raises(ValueError, match="no fused rmsprop"):
        resolve_optimizer_impl("fused", "rmsprop")
    net = torch.nn.Conv2d(3, 4, 3)
    for name, impl, key in (("adam", "fused", "fused"), ("sgd", "fused", "fused"), ("rmsprop", "foreach", "foreach")):
        optimizer = create_optimizer(net, section("train", optimizer=name), fastpath.optimizer_flags(impl))
        assert optimizer.defaults[key] is True, (name, impl)
        net(torch.rand(1, 3, 8, 8)).sum().backward()
        optimizer.step()  # fused and foreach steps run on the CPU too
    plain = create_optimizer(net, section("train", optimizer="adam"), fastpath.optimizer_flags("for_loop"))
    assert plain.defaults["foreach"] is False and not plain.defaults["fused"]


def test_backend_flags_set_tf32_and_cudnn_benchmark_on_cuda_and_restore_them():
    before = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.fp32_precision,
              torch.backends.cudnn.conv.fp32_precision)
    with backend_flags(resolve_fast_path(section("train"), CUDA)):
        assert torch.backends.cudnn.benchmark is True
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
        assert torch.backends.cudnn.conv.fp32_precision == "tf32"
    assert (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.fp32_precision,
            torch.backends.cudnn.conv.fp32_precision) == before
    with backend_flags(resolve_fast_path(section("train", tf32=False, cudnn_benchmark=False), CUDA)):
        assert torch.backends.cudnn.benchmark is False
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
        assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    with backend_flags(resolve_fast_path(section("train"), CPU)):  # nothing touched on the CPU
        assert (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.fp32_precision,
                torch.backends.cudnn.conv.fp32_precision) == before


def test_compile_is_requested_with_its_mode(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda model, mode=None: calls.append(mode) or model)
    net = torch.nn.Linear(2, 2)
    assert compile_model(net, resolve_fast_path(section("train", compile_mode="max-autotune"), CUDA)) is net
    compile_model(net, resolve_fast_path(section("train"), CPU))  # auto: eager on the CPU
    assert calls == ["max-autotune"]


def test_precision_on_cuda_is_bf16_autocast_or_fp16_with_a_scaler(monkeypatch):
    """auto: bf16 where the GPU computes it natively; torch's own default would count emulation (pre-Ampere)."""
    asked = []
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: asked.append(
        including_emulation) or not including_emulation)
    auto = select_precision("auto", CUDA)
    assert asked == [False]
    assert auto.name == "bf16" and auto.autocast_dtype is torch.bfloat16 and not auto.needs_grad_scaler
    fp16 = select_precision("fp16", CUDA)
    assert fp16.autocast_dtype is torch.float16 and fp16.needs_grad_scaler
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert select_precision("auto", CUDA).name == "fp32"  # emulated only: fp32


def test_cpu_isa_names_the_widest_extension():
    assert cpu_isa(frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16"})) == "AMX-BF16"
    assert cpu_isa(frozenset({"avx2", "avx512f", "avx512_bf16"})) == "AVX512-BF16"
    assert cpu_isa(frozenset({"avx2", "avx512f"})) == "AVX512"
    assert cpu_isa(frozenset({"avx2", "fma"})) == "AVX2"


def test_the_training_loop_uses_what_was_resolved_and_records_it(tmp_path, monkeypatch):
    """Explicit CPU-capable choices (foreach RMSprop, one persistent worker prefetching 3) reach the DataLoader and
    the optimiser of the run and its runtime record; the worker outlives the first epoch."""
    loaders, optimizers = [], []

    class SpyLoader(DataLoader):
        def __init__(self, *args, **kwargs):
            loaders.append(kwargs)
            super().__init__(*args, **kwargs)

    real_create = train_module.create_optimizer
    monkeypatch.setattr(train_module, "DataLoader", SpyLoader)
    monkeypatch.setattr(train_module, "create_optimizer",
                        lambda *args, **kwargs: optimizers.append(real_create(*args, **kwargs)) or optimizers[-1])
    params = tiny_params(epochs=2, optimizer="rmsprop", optimizer_impl="foreach", workers=1, prefetch_factor=3,
                         persistent_workers=True)
    train_module.train(params, tmp_path, train_set=ToyPoses(8), val_set=ToyPoses(4, seed=1))
    assert len(loaders) == 1  # one loader for the run (validation builds its own through predict_dataset)
    assert {k: loaders[0][k] for k in ("num_workers", "prefetch_factor", "persistent_workers", "pin_memory",
                                       "multiprocessing_context")} == {
        "num_workers": 1, "prefetch_factor": 3, "persistent_workers": True, "pin_memory": False,
        "multiprocessing_context": "spawn"}
    assert optimizers[0].defaults["foreach"] is True
    runtime = json.loads((tmp_path / "metrics.json").read_text())["runtime"]
    assert {k: runtime[k] for k in ("optimizer_impl", "workers", "prefetch_factor", "persistent_workers", "tf32",
                                    "cudnn_benchmark", "compile", "compile_mode", "pin_memory")} == {
        "optimizer_impl": "foreach", "workers": 1, "prefetch_factor": 3, "persistent_workers": True, "tf32": False,
        "cudnn_benchmark": False, "compile": False, "compile_mode": None, "pin_memory": False}
    assert runtime["cpu_isa"] == cpu_isa() and runtime["cpu_kernels"] == torch.backends.cpu.get_cpu_capability()


def test_auto_precision_honours_the_isa_caps_that_emulate_an_older_cpu():
    """ONEDNN_MAX_CPU_ISA / ATEN_CPU_CAPABILITY below bf16 (an AVX2-only CPU emulated on a newer one): no native bf16
    even where the flags have it, so ``precision: auto`` trains fp32 as that CPU would."""
    bf16 = frozenset({"avx2", "avx512f", "avx512_bf16"})
    if not torch.backends.mkldnn.is_available():
        pytest.skip("no oneDNN in this torch")
    assert cpu_supports_bf16(bf16, environ={})
    assert cpu_supports_bf16(bf16, environ={"ONEDNN_MAX_CPU_ISA": "avx512_core_amx", "ATEN_CPU_CAPABILITY": "avx512"})
    assert not cpu_supports_bf16(bf16, environ={"ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert not cpu_supports_bf16(bf16, environ={"DNNL_MAX_CPU_ISA": "AVX512_CORE"})
    assert not cpu_supports_bf16(bf16, environ={"ATEN_CPU_CAPABILITY": "avx2"})
    assert not cpu_supports_bf16(frozenset({"avx2"}), environ={})


def test_auto_precision_reads_the_caps_from_the_environment(monkeypatch):
    monkeypatch.setattr("hourglass.precision.cpu_flags", lambda cpuinfo=None: frozenset({"avx512_bf16"}))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert select_precision("auto", CPU).name == "fp32"
