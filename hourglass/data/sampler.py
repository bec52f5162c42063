"""The order in which training visits people: epochs as the original counts them.

pose-hg-train counts an epoch as ``trainIters x trainBatch`` samples, whatever the split's size: its data loader
concatenates as many shuffled passes over the people as it needs (MPII: 8,000 x 6 = 48,000 samples, about 2.2
passes over the 22,246 training people). :class:`EpochSampler` does the same, as a pure function of
``(seed, epoch)``:

* an epoch of ``steps x batch`` samples is the first that many indices of consecutive shuffled passes, so in an
  epoch of k passes each person is used floor(k) or ceil(k) times;
* each epoch draws new passes, so the order differs from epoch to epoch;
* under DDP every rank takes a disjoint, strided share of the one global order, so global step s covers exactly
  samples ``s*batch .. (s+1)*batch - 1`` of it whatever the number of processes;
* since the order depends on nothing but the seed and the epoch, a run resumed at an epoch boundary draws the
  order an uninterrupted run would have drawn.

Each index comes as a :class:`Draw`: an ``int`` that also carries ``(seed, epoch, position)``, its place in the
epoch's global order, from which :class:`hourglass.data.dataset.PoseDataset` draws the sample's augmentation. So the
augmentation depends on where a sample is in the run, never on which process or loader worker loads it: the same
weights for any ``train.workers`` or number of processes at a given global batch, and a person met twice in one
epoch is augmented twice, differently.

The first pass of every epoch is ``torch.randperm(n)`` seeded with ``seed + epoch``, exactly torch's
``DistributedSampler(shuffle=True, drop_last=True)``: a run that fits in one pass visits people in the same order
as before this sampler existed. Later passes are seeded from ``SeedSequence([seed, epoch, pass])``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


class Draw(int):
    """A sample index (usable wherever an ``int`` is) with ``stream``: ``(seed, epoch, position)``, the random
    stream of its augmentation."""

    stream: tuple[int, int, int]

    def __new__(cls, index: int, stream: tuple[int, int, int]) -> Draw:
        draw = super().__new__(cls, index)
        draw.stream = stream
        return draw

    def __reduce__(self) -> tuple[type, tuple[int, tuple[int, int, int]]]:
        return Draw, (int(self), self.stream)  # to loader workers with its stream

    def __repr__(self) -> str:
        return f"Draw({int(self)}, stream={self.stream})"


class EpochSampler(Sampler[Draw]):
    """This rank's indices for one epoch of ``steps`` global batches of ``batch_size`` over ``num_people``.

    ``steps=None`` means one pass: as many whole global batches as the split holds (the remainder is dropped).
    """

    def __init__(self, num_people: int, batch_size: int, steps: int | None = None, *, seed: int = 0,
                 rank: int = 0, world_size: int = 1, split: str = "train") -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not one of {world_size} processes")
        if batch_size < 1 or batch_size % world_size:
            raise ValueError(f"train.batch_size={batch_size} must be a positive multiple of the {world_size} "
                             f"processes")
        if num_people < batch_size:
            raise ValueError(f"the {split} split has {num_people} people, fewer than one global batch of "
                             f"train.batch_size={batch_size}")
        if steps is not None and steps < 1:
            raise ValueError(f"train.steps_per_epoch={steps} must be positive (or null: one pass per epoch)")
        self.num_people = num_people
        self.batch_size = batch_size
        self.steps = steps if steps is not None else num_people // batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    @property
    def samples_per_epoch(self) -> int:
        """Global samples in one epoch (every rank together)."""
        return self.steps * self.batch_size

    @property
    def passes_per_epoch(self) -> float:
        """How many times an epoch goes over the split (2.16 for the MPII recipe)."""
        return self.samples_per_epoch / self.num_people

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _pass(self, index: int) -> torch.Tensor:
        generator = torch.Generator()
        if index == 0:  # torch's DistributedSampler's seed: one-pass runs keep their order
            generator.manual_seed(self.seed + self.epoch)
        else:
            state = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(2, dtype=np.uint32)
            generator.manual_seed(int(state[0]) << 32 | int(state[1]))
        return torch.randperm(self.num_people, generator=generator)

    def global_order(self) -> torch.Tensor:
        """Every rank's samples of this epoch, in global step order (length ``samples_per_epoch``)."""
        total = self.samples_per_epoch
        passes = [self._pass(i) for i in range(math.ceil(total / self.num_people))]
        return torch.cat(passes)[:total]

    def __iter__(self) -> Iterator[Draw]:
        order = self.global_order().tolist()
        for position in range(self.rank, len(order), self.world_size):
            yield Draw(order[position], (self.seed, self.epoch, position))

    def __len__(self) -> int:
        return self.samples_per_epoch // self.world_size
