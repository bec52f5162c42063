"""hourglass.train.heap: freed memory kept in the heap during CPU runs, glibc's defaults back afterwards, numbers
unchanged."""

from __future__ import annotations

import pytest
import torch

from hourglass.train import heap


class FakeLibc:
    def __init__(self, accept: bool = True) -> None:
        self.calls: list[tuple[str, int, int]] = []
        self.accept = accept

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return int(self.accept)

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad, 0))
        return 1


def test_cpu_runs_keep_the_heap_and_restore_the_defaults():
    libc = FakeLibc()
    with heap.kept_heap(torch.device("cpu"), libc) as applied:
        assert applied
        assert libc.calls == [("mallopt", heap.M_MMAP_THRESHOLD, 32 * 2**20), ("mallopt", heap.M_TRIM_THRESHOLD, 2**40)]
    assert libc.calls[2:] == [("mallopt", heap.M_MMAP_THRESHOLD, heap.DEFAULT_MMAP_THRESHOLD),
                              ("mallopt", heap.M_TRIM_THRESHOLD, heap.DEFAULT_TRIM_THRESHOLD), ("malloc_trim", 0, 0)]


def test_real_glibc_takes_the_largest_mmap_threshold_and_mmap_stays_allowed():
    """glibc accepts 32 MB as the threshold (it refuses more), and mmap is never forbidden: a block the heap cannot
    grow to is still mapped instead of failing."""
    libc = heap.glibc()
    if libc is None:
        pytest.skip("not glibc: the allocator is left as it is")
    with heap.kept_heap(torch.device("cpu"), libc) as applied:
        assert applied
        big = torch.empty(64 * 2**20, dtype=torch.uint8)  # 64 MB: above the threshold, mapped
        big.fill_(1)
        assert int(big.sum()) == 64 * 2**20


def test_other_devices_and_refusals_leave_the_allocator_alone():
    libc = FakeLibc()
    with heap.kept_heap(torch.device("cuda", 0), libc) as applied:
        assert not applied
    assert libc.calls == [] and not heap.heap_applies(torch.device("cuda", 0), libc)
    refusing = FakeLibc(accept=False)
    with heap.kept_heap(torch.device("cpu"), refusing) as applied:
        assert not applied
    assert refusing.calls[-1] == ("malloc_trim", 0, 0)  # the defaults are put back all the same


def test_the_same_step_computes_the_same_numbers_with_the_heap_kept():
    """Bit for bit: only where the memory comes from changes (real glibc where present)."""
    def one_step() -> list[torch.Tensor]:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
        loss = net(torch.rand(4, 3, 256, 256, generator=torch.Generator().manual_seed(1))).square().mean()
        loss.backward()
        return [p.grad.clone() for p in net.parameters()]

    plain = one_step()
    with heap.kept_heap(torch.device("cpu")):
        kept = one_step()
    assert all(torch.equal(a, b) for a, b in zip(plain, kept, strict=True))
