"""How many trainings run at once on a CPU, and how long the plan takes (the demo's first line lays it out)."""

from __future__ import annotations

import pytest

from hourglass.sweep.plan import TRAINING_MEMORY_BYTES, TrainingPlan, makespan, plan_trainings
from hourglass.sweep.progress import EpochLines

GB = 2**30


@pytest.mark.parametrize(("jobs", "cores", "expected"), [
    (5, 2, TrainingPlan(3, 1)),    # the demo on 2 cores: 1.5x the cores, one thread each
    (5, 1, TrainingPlan(2, 1)),
    (5, 16, TrainingPlan(5, 3)),   # more cores than trainings: each gets its share
    (2, 2, TrainingPlan(2, 1)),
    (1, 2, TrainingPlan(1, 2)),    # one training: every core
    (0, 4, TrainingPlan(1, 4)),
])
def test_a_cpu_runs_one_and_a_half_trainings_per_core(jobs, cores, expected):
    assert plan_trainings(jobs, on_cpu=True, cores=cores, memory=64 * GB) == expected


def test_a_gpu_or_too_little_memory_trains_one_at_a_time():
    assert plan_trainings(5, on_cpu=False, cores=8, memory=None) == TrainingPlan(1, 8)
    assert plan_trainings(5, on_cpu=True, cores=2, memory=2 * TRAINING_MEMORY_BYTES + 1) == TrainingPlan(2, 1)
    assert plan_trainings(5, on_cpu=True, cores=2, memory=TRAINING_MEMORY_BYTES) == TrainingPlan(1, 2)
    with pytest.raises(ValueError, match="cores 0"):
        plan_trainings(5, on_cpu=True, cores=0, memory=None)


def test_makespan_shares_the_cores_between_the_running_trainings():
    one_at_a_time = TrainingPlan(1, 2)
    assert makespan([3.0, 1.0, 2.0], one_at_a_time, cores=2) == pytest.approx(6.0)
    # three 1-thread trainings on 2 cores run at 2/3 speed until they end together (1.5), then two at full speed
    assert makespan([1.0] * 5, TrainingPlan(3, 1), cores=2) == pytest.approx(2.5)
    # two at a time, the fifth alone on one core: three rounds
    assert makespan([1.0] * 5, TrainingPlan(2, 1), cores=2) == pytest.approx(3.0)
    # a short one ends first and frees its slot for the next in order
    assert makespan([1.0, 4.0, 2.0], TrainingPlan(2, 1), cores=2) == pytest.approx(4.0)
    assert makespan([], TrainingPlan(3, 1), cores=2) == 0.0
    assert TrainingPlan(3, 1).describe() == "3 trainings at a time, 1 thread each"
    assert TrainingPlan(1, 2).describe() == "one training at a time, 2 threads"


def test_epoch_lines_are_followed_as_the_logs_grow(tmp_path):
    said: list[str] = []
    old = tmp_path / "train@hg-0.log"
    old.write_text("2026 rank0 INFO hourglass.train.loop: [hg seed 0, 1/2] epoch 1/1  loss 1  (a previous attempt)\n")
    follower = EpochLines(tmp_path, ["train@hg-0", "train@hg_int-0"], said.append, interval=3600)
    with follower:
        with old.open("a") as log:
            log.write("2026 rank0 INFO hourglass.train.loop: an epoch is 6 steps of 4 = 24 samples\n")
            log.write("2026 rank0 INFO hourglass.train.loop: [hg seed 0, 1/2] epoch 1/2  loss 0.5  ETA 0:10\n")
            log.write("2026 rank0 INFO hourglass.train.loop: [hg seed 0, 1/2] epoch 2/2  lo")  # half written
        follower.poll()
        assert said == ["[hg seed 0, 1/2] epoch 1/2  loss 0.5  ETA 0:10"]
        with old.open("a") as log:
            log.write("ss 0.4  ETA 0:00\n")
        (tmp_path / "train@hg_int-0.log").write_text(
            "2026 rank0 INFO hourglass.train.loop: [hg_int seed 0, 2/2] epoch 1/2  loss 5  ETA 0:20\n")
    # the last poll on exit: the line finished since, and the log that appeared
    assert said[1:] == ["[hg seed 0, 1/2] epoch 2/2  loss 0.4  ETA 0:00",
                        "[hg_int seed 0, 2/2] epoch 1/2  loss 5  ETA 0:20"]
