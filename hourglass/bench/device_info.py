"""What the device check ran on: the GPU and its software stack, or the CPU, its vector extensions and load."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import torch

from hourglass.data.workers import available_cores
from hourglass.precision import cpu_isa, cpu_model


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
