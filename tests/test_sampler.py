"""The training order: epochs of any length as consecutive shuffled passes, shared out over DDP ranks."""

from __future__ import annotations

from collections import Counter

import pytest
from torch.utils.data import DistributedSampler

from hourglass.data.sampler import EpochSampler


def _epoch(sampler: EpochSampler, epoch: int) -> list[int]:
    sampler.set_epoch(epoch)
    return list(sampler)


@pytest.mark.parametrize("people, steps, batch", [(10, 9, 4), (22, 8, 6), (7, 3, 7), (5, 1, 2)])
def test_each_person_is_used_floor_or_ceil_k_times_in_an_epoch_of_k_passes(people, steps, batch):
    sampler = EpochSampler(people, batch, steps, seed=5)
    for epoch in range(4):
        order = _epoch(sampler, epoch)
        assert len(order) == steps * batch == len(sampler)
        k = steps * batch / people
        counts = Counter(order)
        uses = {counts.get(i, 0) for i in range(people)}
        assert uses <= {int(k), -int(-k // 1)}, (k, uses)
        # Whole passes first: the first floor(k) x people samples are floor(k) permutations.
        for p in range(int(k)):
            assert sorted(order[p * people:(p + 1) * people]) == list(range(people))


def test_each_epoch_draws_a_new_order_and_the_order_is_a_function_of_seed_and_epoch():
    a, b = EpochSampler(30, 4, 20, seed=1), EpochSampler(30, 4, 20, seed=1)
    orders = [_epoch(a, e) for e in range(3)]
    assert len({tuple(o) for o in orders}) == 3
    assert _epoch(b, 2) == orders[2]  # a fresh sampler (a resumed run) draws epoch 2 as the first one did
    assert _epoch(EpochSampler(30, 4, 20, seed=2), 2) != orders[2]


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_take_disjoint_shares_of_one_global_order_batch_by_batch(world):
    batch, steps = 6, 7
    single = EpochSampler(17, batch, steps, seed=3)
    ranks = [EpochSampler(17, batch, steps, seed=3, rank=r, world_size=world) for r in range(world)]
    for epoch in range(2):
        order = _epoch(single, epoch)
        shares = [_epoch(r, epoch) for r in ranks]
        per_rank = batch // world
        for step in range(steps):
            together = [i for share in shares for i in share[step * per_rank:(step + 1) * per_rank]]
            assert Counter(together) == Counter(order[step * batch:(step + 1) * batch])
        positions = [set(range(r, len(order), world)) for r in range(world)]
        assert all(not (positions[i] & positions[j]) for i in range(world) for j in range(i + 1, world))


@pytest.mark.parametrize("world", [1, 2])
def test_one_pass_epochs_keep_distributed_samplers_order(world):
    """Within one pass the order is torch's DistributedSampler's: runs that fit their split are unchanged."""
    people, batch = 50, 8
    for rank in range(world):
        ours = EpochSampler(people, batch, None, seed=7, rank=rank, world_size=world)
        torch_sampler = DistributedSampler(range(people), num_replicas=world, rank=rank, shuffle=True, seed=7,
                                           drop_last=True)
        for epoch in range(3):
            torch_sampler.set_epoch(epoch)
            expected = list(torch_sampler)[:len(ours)]
            assert ours.steps == people // batch and _epoch(ours, epoch) == expected


def test_passes_and_samples_per_epoch_of_the_mpii_recipe():
    sampler = EpochSampler(22246, 6, 8000)
    assert sampler.samples_per_epoch == 48000 and sampler.passes_per_epoch == pytest.approx(2.158, abs=1e-3)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_people": 3, "batch_size": 4}, "train split has 3 people, fewer than one global batch"),
    ({"num_people": 30, "batch_size": 5, "world_size": 2}, "multiple of the 2 processes"),
    ({"num_people": 30, "batch_size": 4, "rank": 2, "world_size": 2}, "rank 2 is not one of 2"),
])
def test_bad_sizes_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EpochSampler(**kwargs)
