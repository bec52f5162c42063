"""The fast path of a training run: what ``train.*`` asks for, resolved once for the device at hand.

Each part is a switch of params.yaml with the fast default; on the CPU the CUDA-only ones are no-ops (resolved off
and recorded so), and everything here is plain PyTorch, so the same code runs on both:

=======================  ==========  ================================================  ==============================
switch (``train.``)      default     on CUDA                                           on the CPU
=======================  ==========  ================================================  ==============================
``precision``            auto        bf16 autocast (fp16 + GradScaler as an option)    bf16 with AVX512-BF16/AMX, fp32
``channels_last``        true        NHWC activations for cuDNN's tensor-core kernels  the same (oneDNN)
``tf32``                 true        TF32 for fp32 matmuls and convolutions            no-op
``cudnn_benchmark``      true        cuDNN times its algorithms once per shape         no-op
``optimizer_impl``       auto        fused (adam, sgd) or foreach (rmsprop) steps      the same
``compile``              auto        ``torch.compile`` with ``compile_mode``           eager
``workers``              auto        cores per process - 1, at least 1, at most 8      0: the main process loads
``pin_memory``           true        page-locked batches, asynchronous copies          no-op
``persistent_workers``   true        loader workers live across epochs                 the same (when workers > 0)
``prefetch_factor``      4           batches in flight per worker                      the same (when workers > 0)
=======================  ==========  ================================================  ==============================

``deterministic: true`` turns ``cudnn_benchmark`` off (its timing-based choice differs from run to run).
``tf32``, ``cudnn_benchmark``, ``optimizer_impl`` and ``compile``/``compile_mode`` can change the trained numbers
(rounding, algorithm choice, fused kernels' arithmetic), so dvc.yaml declares them and a checkpoint of other values
is not resumed; the loader switches only change how fast the same batches arrive (speed-only, see
:mod:`hourglass.train.fingerprint`). What a run resolved to goes into its runtime record (config.yaml, metrics.json,
MLflow ``runtime.*`` tags).

Every key is read whatever the device, so a run on the CPU reads (and DVC tracks) the same keys as one on CUDA, and
every CUDA branch below is a pure function of the device it is given: tests pass ``torch.device("cuda")`` without
a GPU and check what would be requested.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from hourglass.config import TrainConfig
from hourglass.data.workers import resolve_workers, worker_context

# This project's optimisers (hourglass.train.optim) for which torch.optim has a fused implementation; RMSprop has none.
FUSED_OPTIMIZERS = frozenset({"adam", "sgd"})
IMPLEMENTATIONS = ("fused", "foreach", "for_loop")


def resolve_optimizer_impl(requested: str, optimizer: str) -> str:
    """``train.optimizer_impl`` for ``optimizer`` (on every device); an explicit ``fused`` torch does not offer is an
    error, not a quiet fallback."""
    if requested == "auto":
        # The CPU too: torch's for-loop Adam costs one dispatch per parameter and operation, about 11 ms a step for
        # the demo's 396 tensors against 2 ms fused (NOTES.md, session 20); a tenth of a step at batches of 8.
        return "fused" if optimizer in FUSED_OPTIMIZERS else "foreach"
    if requested == "fused" and optimizer not in FUSED_OPTIMIZERS:
        raise ValueError(f"train.optimizer_impl=fused: torch.optim has no fused {optimizer} (fused: "
                         f"{', '.join(sorted(FUSED_OPTIMIZERS))}); use foreach or auto")
    if requested not in IMPLEMENTATIONS:
        raise ValueError(f"train.optimizer_impl={requested!r}; expected auto or one of {', '.join(IMPLEMENTATIONS)}")
    return requested


def optimizer_flags(impl: str) -> dict[str, bool]:
    """The torch.optim constructor arguments that select ``impl``. ``for_loop`` says ``foreach=False`` outright:
    left to itself torch would pick foreach for CUDA tensors."""
    return {"fused": {"fused": True}, "foreach": {"foreach": True}, "for_loop": {"foreach": False}}[impl]


@dataclass(frozen=True)
class FastPath:
    """What one training process runs with, resolved for its device (see the module docstring)."""

    device: torch.device
    tf32: bool
    cudnn_benchmark: bool
    optimizer_impl: str
    compile: bool
    compile_mode: str | None  # None when eager
    workers: int
    pin_memory: bool
    persistent_workers: bool
    prefetch_factor: int | None  # None without workers (torch refuses one then)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def optimizer_flags(self) -> dict[str, bool]:
        return optimizer_flags(self.optimizer_impl)

    def loader_kwargs(self) -> dict[str, Any]:
        """The DataLoader arguments of the training loader (the caller adds dataset, batch size and sampler)."""
        return {"num_workers": self.workers, "multiprocessing_context": worker_context(self.workers),
                "pin_memory": self.pin_memory, "persistent_workers": self.persistent_workers,
                "prefetch_factor": self.prefetch_factor}

    def ddp_kwargs(self) -> dict[str, Any]:
        """DistributedDataParallel arguments: the process's one GPU on CUDA, none on the CPU."""
        return {"device_ids": [self.device.index]} if self.cuda else {}

    def record(self) -> dict[str, Any]:
        """The resolved switches for the run's runtime record."""
        out = asdict(self)
        out.pop("device")
        return out


def resolve_fast_path(cfg: TrainConfig, device: torch.device, *, processes: int = 1,
                      cores: int | None = None) -> FastPath:
    """Resolve ``cfg``'s switches for ``device``, shared by ``processes`` training processes on this machine over
    ``cores`` cores (None: this process's)."""
    # Every switch is read on every device (the CPU then records the CUDA-only ones as off).
    tf32, benchmark, impl = cfg.tf32, cfg.cudnn_benchmark, cfg.optimizer_impl
    compile_requested, mode = cfg.compile, cfg.compile_mode
    workers_requested, prefetch = cfg.workers, cfg.prefetch_factor
    pin, persistent = cfg.pin_memory, cfg.persistent_workers
    cuda = device.type == "cuda"
    workers = resolve_workers(workers_requested, device, processes, cores)
    compiled = cuda if compile_requested == "auto" else bool(compile_requested)
    return FastPath(
        device=device,
        tf32=cuda and tf32,
        cudnn_benchmark=cuda and benchmark and not cfg.deterministic,
        optimizer_impl=resolve_optimizer_impl(impl, cfg.optimizer),
        compile=compiled,
        compile_mode=mode if compiled else None,
        workers=workers,
        pin_memory=cuda and pin,
        persistent_workers=workers > 0 and persistent,
        prefetch_factor=prefetch if workers > 0 else None,
    )


@contextlib.contextmanager
def backend_flags(fast: FastPath) -> Iterator[None]:
    """cuDNN benchmarking and TF32 as ``fast`` resolved them, for the duration of a run; the caller's settings are
    restored afterwards. Nothing is touched for a CPU run. TF32 goes through torch's ``fp32_precision`` settings
    (``tf32`` / ``ieee``), the API that replaces ``allow_tf32`` (torch warns when the two are mixed)."""
    if not fast.cuda:
        yield
        return
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = (torch.backends.cudnn.benchmark, matmul.fp32_precision, conv.fp32_precision)
    precision = "tf32" if fast.tf32 else "ieee"
    torch.backends.cudnn.benchmark = fast.cudnn_benchmark
    matmul.fp32_precision = precision
    conv.fp32_precision = precision
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, matmul.fp32_precision, conv.fp32_precision = saved


def compile_model(model: nn.Module, fast: FastPath) -> nn.Module:
    """``model`` under ``torch.compile`` in ``fast.compile_mode``, or as it is when the run is eager. Training
    compiles the DDP-wrapped model, so TorchDynamo's DDP optimiser splits the graph at the gradient buckets and the
    all-reduces overlap the backward pass."""
    if not fast.compile:
        return model
    return torch.compile(model, mode=fast.compile_mode)
