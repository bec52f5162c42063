"""Process-group set-up for DistributedDataParallel, driven by the variables ``torchrun`` sets.

A run without ``WORLD_SIZE`` (or with 1) is a single process and never touches ``torch.distributed``, so the same
training function serves both. Backend: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 0  # processes on this machine (torchrun's LOCAL_WORLD_SIZE); 0: unknown, all of them

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def processes_here(self) -> int:
        """Training processes sharing this machine's cores (what ``workers: auto`` divides them by)."""
        return self.local_world_size or self.world_size

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and talks to MLflow."""
        return self.rank == 0


SINGLE_PROCESS = DistInfo()  # a run without torchrun: the default of every function that takes a DistInfo


def _env_int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {key}={raw!r} is not an integer") from None


def dist_info_from_env(env: Mapping[str, str] | None = None) -> DistInfo:
    """Read RANK / WORLD_SIZE / LOCAL_RANK (torchrun's contract); absent means a single process."""
    env = os.environ if env is None else env
    info = DistInfo(
        rank=_env_int(env, "RANK", 0),
        world_size=_env_int(env, "WORLD_SIZE", 1),
        local_rank=_env_int(env, "LOCAL_RANK", 0),
        local_world_size=_env_int(env, "LOCAL_WORLD_SIZE", 0),
    )
    if info.world_size < 1 or not 0 <= info.rank < info.world_size:
        raise ValueError(f"inconsistent RANK={info.rank} / WORLD_SIZE={info.world_size}")
    return info


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


@contextlib.contextmanager
def process_group(info: DistInfo, device: torch.device) -> Iterator[DistInfo]:
    """Initialise the default process group for the duration of the block (nothing to do for one process).

    A group that the caller already initialised (tests using ``mp.spawn``) is used as it is and left alone.
    """
    if not info.enabled or dist.is_initialized():
        yield info
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend_for(device), rank=info.rank, world_size=info.world_size)
    try:
        yield info
    finally:
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_(value: torch.Tensor, info: DistInfo, op: str = "sum") -> torch.Tensor:
    """``value`` reduced in place over processes with ``op`` (``sum``, ``min`` or ``max``); returned for chaining."""
    if info.enabled:
        dist.all_reduce(value, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}[op])
    return value


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj`` in rank order (a one-element list for one process)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every process: per-process BatchNorm lets them
    drift apart during an epoch, and validation and the checkpoint should use one set."""
    if info.enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)
