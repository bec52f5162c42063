"""Where a run's randomness comes from: every generator seeded from where the run is, and deterministic kernels.

A resumed run continues with exactly the numbers of an uninterrupted one because nothing here depends on what ran
before: the global generators are re-seeded from (seed, rank, epoch) at each epoch and every loader worker derives
its streams from torch's per-worker seed.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

from hourglass.io.images import single_threaded_cv2


def seed_worker(worker_id: int) -> None:
    """Data loader workers get distinct numpy / random streams derived from torch's per-worker seed, and one OpenCV
    thread each (workers are spawned, so setting it is safe; several workers with a pool each would oversubscribe)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    single_threaded_cv2(worker_id)


def seed_all(*keys: int) -> None:
    """Seed every global generator from ``keys`` (seed, rank, epoch): a pure function of where the run is."""
    seed = int(np.random.SeedSequence(list(keys)).generate_state(1)[0])
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


@contextlib.contextmanager
def determinism(enabled: bool) -> Iterator[None]:
    """Deterministic kernels for the duration of a run, restoring the caller's settings afterwards."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled or previous)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
