"""Losses stay on the device between read-backs (hourglass.train.loss_readback): recording a step converts nothing to a
host value, the training loop reads back only every ``log_every`` steps and at each epoch's end, the epoch's mean
and the first non-finite step are what they were when every step was read, and under DDP every process finds the
same first bad step.
"""

from __future__ import annotations

import math
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from hourglass.train import loop as train_module
from hourglass.train.distributed import DistInfo
from hourglass.train.loss_readback import LossReadback

sys.path.insert(0, str(Path(__file__).parent))
from toy_poses import ToyPoses, tiny_params  # noqa: E402

HOST_READS = ("item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__")


@pytest.fixture
def host_reads(monkeypatch):
    """Every conversion of a tensor to a host value, with the project function that asked for it (the caller's
    frame inside hourglass/), recorded while the fixture is active."""
    seen: list[tuple[str, str]] = []
    for name in HOST_READS:
        real = getattr(torch.Tensor, name)

        def spy(self, *args, _real=real, _name=name, **kwargs):
            caller = sys._getframe(1)
            if f"{os.sep}hourglass{os.sep}" in caller.f_code.co_filename:
                seen.append((Path(caller.f_code.co_filename).name, caller.f_code.co_name))
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    return seen


def test_adding_a_step_reads_nothing_back(host_reads):
    readback = LossReadback(torch.device("cpu"))
    for step, value in enumerate([1.0, 2.0, math.nan, 4.0]):
        readback.add(torch.tensor(value), step)
    assert host_reads == []  # add() queues device operations only
    last, bad = readback.read()
    assert last == 4.0 and bad is not None and bad.step == 2 and math.isnan(bad.value) and bad.read_at == 3
    assert host_reads  # read() is where the values come back


def test_read_back_values_and_the_epoch_mean():
    readback = LossReadback(torch.device("cpu"))
    losses = [0.5, 0.25, 2.0, 1.0, 0.125]
    for step, value in enumerate(losses[:3]):
        readback.add(torch.tensor(value), step)
    assert readback.pending and readback.read() == (2.0, None) and not readback.pending
    for step, value in enumerate(losses[3:], start=3):
        readback.add(torch.tensor(value), step)
    assert readback.read() == (0.125, None)
    assert readback.epoch_mean() == pytest.approx(sum(losses) / len(losses), rel=1e-15)
    readback.add(torch.tensor(math.inf), 5)  # the next epoch starts empty
    last, bad = readback.read()
    assert last == math.inf and bad.step == 5 and bad.read_at == 5 and bad.value == math.inf
    assert readback.epoch_mean() == math.inf
    with pytest.raises(RuntimeError, match="without steps"):
        readback.epoch_mean()


def test_the_training_loop_reads_losses_back_only_at_its_read_back_points(tmp_path, monkeypatch, host_reads):
    """2 epochs of 5 steps, log_every 3: read at steps 0, 3, 6, 9 (logged) and after step 4 (the end of epoch 1,
    before its validation and checkpoint); the loop's own code converts no tensor to a host value."""
    reads, means = [], []
    real_read, real_mean = LossReadback.read, LossReadback.epoch_mean
    monkeypatch.setattr(LossReadback, "read", lambda self: reads.append(self._last_step) or real_read(self))
    monkeypatch.setattr(LossReadback, "epoch_mean", lambda self: means.append(self._epoch_steps) or real_mean(self))
    params = tiny_params(epochs=2, steps_per_epoch=5, log_every=3)
    result = train_module.train(params, tmp_path, train_set=ToyPoses(8), val_set=ToyPoses(4, seed=1))
    assert result.steps == 10 and reads == [0, 3, 4, 6, 9] and means == [5, 5]
    in_loop = {(f, fn) for f, fn in host_reads if f in ("loop.py", "losses.py", "criterion.py") and fn in (
        "_train", "train_one_epoch", "forward_loss", "__call__", "heatmap_loss", "auxiliary_loss")}
    assert in_loop == set()
    assert ("loss_readback.py", "read") in set(host_reads)
    assert all(math.isfinite(h["train/loss"]) for h in result.history)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    try:
        readback = LossReadback(torch.device("cpu"), DistInfo(rank=rank, world_size=2))
        # rank 1 goes bad at step 12, rank 0 at step 13: both must name step 12, only rank 1 knows its value
        losses = {0: [1.0, 1.0, 1.0, math.nan], 1: [3.0, 3.0, math.inf, math.inf]}[rank]
        readback.add(torch.tensor(losses[0]), 10)
        first = readback.read()
        for step, value in enumerate(losses[1:], start=11):
            readback.add(torch.tensor(value), step)
        last, bad = readback.read()
        torch.save({"first": first, "last": last, "bad": (bad.step, bad.value, bad.read_at)}, Path(out) / f"{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_every_process_finds_the_same_first_bad_step(tmp_path):
    mp.spawn(_ddp_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"{rank}.pt", weights_only=False) for rank in range(2)]
    assert [r["first"] for r in results] == [(2.0, None), (2.0, None)]  # the mean over processes of step 10
    assert all(math.isnan(r["last"]) for r in results)
    assert results[0]["bad"] == (12, None, 13)  # rank 0's own losses were finite at step 12
    assert results[1]["bad"] == (12, math.inf, 13)
