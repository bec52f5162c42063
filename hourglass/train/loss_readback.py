"""Training losses kept on the device between read-backs, so the step loop never waits for the GPU.

``float(loss)`` after every step makes the host wait until the GPU has finished that step before it can queue the
next one, so the GPU idles for the host's share of every step. Here a step only queues a few scalar operations on
the device (the epoch's running sum; whether every loss of the current window was finite, how many leading ones
were, and the first one that was not). The numbers come back to the host at read-back points only: every
``train.log_every`` steps (the loss MLflow records) and at the end of each epoch (the epoch's mean loss), one
all-reduce and one copy each.

What the non-finite check guarantees with that: a NaN or infinite loss on any process is found at the next
read-back point, where every process stops together (they read back at the same steps) and the error names the
first step whose loss was not finite. At a read-back step the check comes before that step's update, so with
``log_every: 1`` training stops before the first bad update, as it did when every step read its loss back. Between
read-backs, the updates after a bad step have been made to the weights in memory; they are never saved, because the
end of every epoch is a read-back point before validation and the checkpoint: ``checkpoint.pt`` always holds the
last epoch whose every loss was finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from hourglass.train.distributed import SINGLE_PROCESS, DistInfo, all_reduce_


@dataclass(frozen=True)
class NonFinite:
    """Where the loss first stopped being finite in a read-back window."""

    step: int  # the first step (run-wide count) whose loss was not finite on some process
    value: float | None  # that loss on this process (None: it was another process's)
    read_at: int  # the step at which it was read back (== step: before that step's update)


class LossReadback:
    """Per-step losses of one training process, accumulated on its device (see the module docstring)."""

    def __init__(self, device: torch.device, info: DistInfo = SINGLE_PROCESS) -> None:
        self.device, self.info = device, info
        self._epoch_sum = torch.zeros((), dtype=torch.float64, device=device)
        self._epoch_steps = 0
        self._reset_window()

    def _reset_window(self) -> None:
        self._first_step: int | None = None
        self._last_step = -1
        self._last: Tensor | None = None
        self._ok = torch.ones((), dtype=torch.bool, device=self.device)  # every loss of the window finite so far
        self._good = torch.zeros((), dtype=torch.int64, device=self.device)  # leading finite losses of the window
        self._bad = torch.full((), math.nan, dtype=torch.float32, device=self.device)  # the first non-finite loss

    @property
    def pending(self) -> bool:
        """Steps were added since the last read-back."""
        return self._first_step is not None

    def add(self, loss: Tensor, step: int) -> None:
        """Record step ``step``'s loss without reading it (device operations only, no host synchronisation)."""
        loss = loss.detach().float()
        if self._first_step is None:
            self._first_step = step
        finite = torch.isfinite(loss)
        self._bad = torch.where(self._ok & ~finite, loss, self._bad)
        self._ok = self._ok & finite
        self._good = self._good + self._ok
        self._epoch_sum = self._epoch_sum + loss.double()
        self._epoch_steps += 1
        self._last, self._last_step = loss, step

    def read(self) -> tuple[float, NonFinite | None]:
        """A read-back point: the last step's loss averaged over processes, and where the window's first non-finite
        loss (on any process) was, or None. Every process must call it at the same steps."""
        if self._last is None:
            raise RuntimeError("read() before any add()")
        packed = torch.stack([self._last.double(), (~self._ok).double()])
        last, bad = all_reduce_(packed, self.info, "sum").tolist()
        found = None
        if bad:  # the same on every process, so they all take this branch (and its collective) together
            local = int(self._good.item())
            first = int(all_reduce_(self._good.clone(), self.info, "min").item())
            mine = local == first and not bool(self._ok.item())
            assert self._first_step is not None
            found = NonFinite(step=self._first_step + first, value=float(self._bad.item()) if mine else None,
                              read_at=self._last_step)
        self._reset_window()
        return last / self.info.world_size, found

    def epoch_mean(self) -> float:
        """The mean loss over the epoch's steps and every process (a read-back point); starts the next epoch."""
        if not self._epoch_steps:
            raise RuntimeError("epoch_mean() of an epoch without steps")
        total = float(all_reduce_(self._epoch_sum.clone(), self.info, "sum").item())
        mean = total / (self._epoch_steps * self.info.world_size)
        self._epoch_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self._epoch_steps = 0
        return mean
