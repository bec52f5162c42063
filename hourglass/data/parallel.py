"""Ordered parallel map over spawned worker processes that stops cleanly when its consumer stops early.

``multiprocessing.Pool`` is the obvious tool, but leaving ``pool.imap`` half consumed (a stage that fails after too
many bad images) makes ``Pool.__exit__`` call ``terminate()``, which can hang for ever joining its task-feeding
thread (seen here in the test suite). ``ProcessPoolExecutor.shutdown(cancel_futures=True)`` drops the queued work
and waits only for what is running. Spawned, not forked: safe after torch/OpenMP or another library's threads
started in the parent.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], tasks: Iterable[T], workers: int, chunksize: int = 1,
                initializer: Callable[[], None] | None = None) -> Iterator[R]:
    """``map(fn, tasks)`` on ``workers`` spawned processes, results in task order; ``fn`` must be picklable."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=initializer) as pool:
        try:
            yield from pool.map(fn, tasks, chunksize=chunksize)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
