"""Freed memory kept in the process's heap while a CPU run trains (glibc malloc), so steps stop page-faulting.

Every training step allocates and frees the same activations and gradients, many of them tens of MB. glibc serves
blocks above its mmap threshold (at most 32 MB) with ``mmap`` and unmaps them when they are freed, and it trims the
top of the heap back to the system: the next step then faults every page in again, and the kernel zeroes each one.
On the CPU demo that was 140-360 thousand page faults and about 0.2 s of system time per step of batch 32
(``python -m hourglass.bench profile``'s network, fp32). With ``M_MMAP_MAX`` 0 and a trim threshold of 1 TiB the
freed blocks stay in the heap for the next step. Only where memory comes from changes, not what is computed: the
weights are bit for bit those of the default allocator. glibc's defaults come back (and the heap is trimmed) when the
run ends; other C libraries (macOS, musl) are left as they are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536  # glibc's defaults
KEPT_TRIM_THRESHOLD = 2**40


def glibc() -> Any | None:
    """The C library when it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def heap_applies(device: torch.device, libc: Any | None = None) -> bool:
    """Whether :func:`kept_heap` keeps freed memory for a run on ``device``: CPU runs under glibc."""
    return device.type == "cpu" and (libc or glibc()) is not None


@contextmanager
def kept_heap(device: torch.device, libc: Any | None = None) -> Iterator[bool]:
    """For the duration of a run on ``device``: freed blocks stay in the heap (see the module docstring). Yields
    whether it applied; ``libc`` is injectable (tests)."""
    libc = (libc or glibc()) if device.type == "cpu" else None
    if libc is None:
        yield False
        return
    applied = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, KEPT_TRIM_THRESHOLD))
    if not applied:
        log.warning("mallopt refused to keep freed memory; training with the allocator's defaults")
    try:
        yield applied
    finally:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)
