"""How many DataLoader workers a process gets and how they start (training, evaluation and prediction share it)."""

from __future__ import annotations

import os

import torch

MAX_AUTO_WORKERS = 8  # ~2,000 augmented samples/s per worker core here (bench loader); 8 leaves headroom on slow cores


def worker_context(workers: int) -> str | None:
    """How DataLoader workers start: ``spawn`` whenever there are workers.

    Forking a process whose OpenMP/OpenCV thread pools are already running (the trainer has run the model and
    drawn samples by then) can deadlock the child on its first parallel call; seen here as a stalled training run.
    A spawned worker starts clean and opens its HDF5 shards itself.
    """
    return "spawn" if workers > 0 else None


def available_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one, e.g. under a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def auto_workers(device: torch.device, processes: int = 1, cores: int | None = None) -> int:
    """Loader workers per training process for ``workers: auto``.

    CUDA: the machine's cores shared by its ``processes`` training processes, one core of each share kept for the
    process itself (it launches the kernels), at least 1 and at most :data:`MAX_AUTO_WORKERS`. CPU: 0, the main
    process loads: workers would compete with the compute threads for the same cores, and loading is a small part of
    a CPU step (2-4 % of it for the CPU preset's network on 2 cores: ``python -m hourglass.bench device``'s
    data-wait share, NOTES.md).
    """
    if device.type != "cuda":
        return 0
    cores = available_cores() if cores is None else cores
    share = cores // max(1, processes)
    return max(1, min(MAX_AUTO_WORKERS, share - 1))


def resolve_workers(requested: int | str, device: torch.device, processes: int = 1, cores: int | None = None) -> int:
    """``train.workers`` as a number (``auto``: :func:`auto_workers`)."""
    if requested == "auto":
        return auto_workers(device, processes, cores)
    return int(requested)
