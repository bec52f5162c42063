"""Freed memory kept in the process's heap while a CPU run trains (glibc malloc), so steps stop page-faulting.

Every training step allocates and frees the same activations and gradients, many of them tens of MB. glibc serves
blocks above its mmap threshold (128 KB, rising with use up to 32 MB) with ``mmap`` and unmaps them when they are
freed, and it trims the top of the heap back to the system: the next step then faults every page in again, and the
kernel zeroes each one. On the CPU demo that was about 74 thousand page faults per step of batch 32 (fp32). With the
mmap threshold at its maximum (32 MB) and a trim threshold of 1 TiB, blocks up to 32 MB stay in the heap for the
next step (4.6 thousand faults). Larger blocks are still mapped: forbidding mmap altogether (``M_MMAP_MAX`` 0)
gained no more, and would make an allocation fail wherever the heap cannot grow. Only where memory comes from
changes, not what is computed. glibc's
defaults come back (and the heap is trimmed) when the run ends; other C libraries (macOS, musl) are left as they are.
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

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_THRESHOLD = 128 * 1024, 128 * 1024  # glibc's defaults
KEPT_TRIM_THRESHOLD = 2**40
KEPT_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit); mallopt refuses more


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
    applied = (bool(libc.mallopt(M_MMAP_THRESHOLD, KEPT_MMAP_THRESHOLD))
               and bool(libc.mallopt(M_TRIM_THRESHOLD, KEPT_TRIM_THRESHOLD)))
    if not applied:
        log.warning("mallopt refused to keep freed memory; training with the allocator's defaults")
    try:
        yield applied
    finally:
        libc.mallopt(M_MMAP_THRESHOLD, DEFAULT_MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)
