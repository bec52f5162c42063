"""Device and numeric precision: what a training or inference run computes in, chosen once per run.

``auto`` picks bf16 autocast where the hardware computes bf16 natively (CUDA with bf16, or a CPU with AVX512-BF16 /
AMX), because there it is several times faster than fp32 (see ``python -m hourglass.bench model``); elsewhere fp32,
since emulated bf16 on an older CPU is slower than fp32. fp16 needs a gradient scaler and is offered on CUDA only.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

PrecisionName = Literal["auto", "fp32", "bf16", "fp16"]
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# oneDNN's ISA caps (ONEDNN_MAX_CPU_ISA, formerly DNNL_MAX_CPU_ISA) that still include its native bf16 kernels.
_ONEDNN_BF16_ISAS = frozenset({"ALL", "DEFAULT", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX",
                               "AVX512_CORE_AMX_FP16", "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16",
                               "AVX10_2_512", "AVX10_2_512_AMX_2"})
# ATEN_CPU_CAPABILITY values that keep torch's own kernels below AVX-512 (bf16 then emulated element by element).
_ATEN_NO_BF16 = frozenset({"default", "avx2"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where ``/proc/cpuinfo`` does not exist)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def isa_caps_allow_bf16(environ: Mapping[str, str] | None = None) -> bool:
    """False when the environment caps torch below native bf16: ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``)
    under AVX512_CORE_BF16 for the convolutions, or ``ATEN_CPU_CAPABILITY=avx2``/``default`` for the other ops.
    Those caps emulate an older CPU on a newer one; ``precision: auto`` must then choose what that CPU would."""
    environ = os.environ if environ is None else environ
    onednn = (environ.get("ONEDNN_MAX_CPU_ISA") or environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    if onednn and onednn not in _ONEDNN_BF16_ISAS:
        return False
    return environ.get("ATEN_CPU_CAPABILITY", "").strip().lower() not in _ATEN_NO_BF16


def cpu_supports_bf16(flags: frozenset[str] | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """True when oneDNN is present, the CPU has native bf16 instructions (AVX512-BF16 or AMX-BF16) and no
    environment cap (:func:`isa_caps_allow_bf16`) keeps torch from using them."""
    if not torch.backends.mkldnn.is_available():
        return False
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in _CPU_BF16_FLAGS) and isa_caps_allow_bf16(environ)


@dataclass(frozen=True)
class Precision:
    """What one run computes in: the device, the autocast dtype (None = plain fp32), memory format, scaler."""

    device: torch.device
    name: Literal["fp32", "bf16", "fp16"]
    channels_last: bool

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.name]

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @property
    def needs_grad_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range and needs none."""
        return self.name == "fp16"

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Autocast for the forward pass (a no-op in fp32)."""
        dtype = self.autocast_dtype
        if dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=dtype):
            yield

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A scaler that is active only for fp16, so the loop can always call it."""
        return torch.amp.GradScaler(self.device.type, enabled=self.needs_grad_scaler)

    def describe(self) -> str:
        fmt = "channels_last" if self.channels_last else "NCHW"
        return f"{self.device.type} {self.name} {fmt}"


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name as the kernel reports it (the processor architecture where it does not)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name(device: torch.device) -> str:
    """What the run computed on: the GPU's name, or the CPU's model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def cpu_isa(flags: frozenset[str] | None = None) -> str:
    """The widest vector / matrix extension of this CPU that matters for training: AMX-BF16, AVX512-BF16 (both run
    bf16 natively, so ``precision: auto`` picks bf16), AVX512, AVX2, else torch's name for what its kernels use."""
    flags = cpu_flags() if flags is None else flags
    for flag, name in (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX512"),
                       ("avx2", "AVX2")):
        if flag in flags:
            return name
    return torch.backends.cpu.get_cpu_capability()


def runtime_record(precision: Precision, requested: str, *, fast: Mapping[str, Any],
                   world_size: int = 1) -> dict[str, Any]:
    """How a run ran, resolved: ``precision: auto`` gives bf16 on one machine and fp32 on the next from the same
    params, so identical params are not identical runs. Kept with every run's outputs. ``fast`` is the resolved
    fast path (:meth:`hourglass.train.fastpath.FastPath.record`: TF32, cuDNN benchmarking, optimiser implementation,
    compile and its mode, loader workers, pinning, persistence, prefetch)."""
    record: dict[str, Any] = {
        "device": str(precision.device), "device_name": device_name(precision.device),
        "precision": precision.name, "precision_requested": requested, "channels_last": precision.channels_last,
        "compile": fast["compile"], "world_size": world_size, "threads": torch.get_num_threads(),
        "torch": str(torch.__version__), "cuda": str(torch.version.cuda or "none"),
        "cudnn": str(torch.backends.cudnn.version() if precision.device.type == "cuda" else "none"),
        "cpu_isa": cpu_isa(), "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
    }
    record.update(fast)
    return record


def select_device(local_rank: int = 0) -> torch.device:
    """CUDA device ``local_rank`` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def bf16_supported(device: torch.device) -> bool:
    """Native bf16 arithmetic on ``device``."""
    if device.type == "cuda":
        # native only: torch's default also counts emulation (pre-Ampere GPUs), where bf16 is slower than fp32
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and cpu_supports_bf16()


def select_precision(requested: PrecisionName, device: torch.device, channels_last: bool = True) -> Precision:
    """Resolve ``requested`` for ``device``; an explicit choice the device cannot honour is an error, not a fallback."""
    if requested == "auto":
        name = "bf16" if bf16_supported(device) else "fp32"
    elif requested == "fp16" and device.type != "cuda":
        raise ValueError(f"train.precision=fp16 needs CUDA (device is {device}); use bf16 or fp32 on the CPU")
    elif requested in ("fp32", "bf16", "fp16"):
        name = requested
    else:
        raise ValueError(f"train.precision={requested!r}; expected one of auto, fp32, bf16, fp16")
    return Precision(device=device, name=name, channels_last=channels_last)
