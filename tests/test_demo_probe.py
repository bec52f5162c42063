"""`make demo`'s first line: the machine in words and the expected duration from a measured probe."""

from __future__ import annotations

from pathlib import Path

import pytest

from hourglass.bench.demo_probe import OTHER_STAGES_S, SIDE_BY_SIDE_OVERHEAD, TRAINING_OVERHEAD, estimate
from hourglass.bench.projection import train_gflop
from hourglass.config.params_file import load_params
from hourglass.train.run_config import resolve_variant

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny(one_thread: None):
    params = load_params(REPO / "params.yaml")
    small = {"features": 16, "input_res": 64, "stem_width": 16}
    return params.model_copy(update={
        "model": params.model.model_copy(update=small),
        "train": params.train.model_copy(update={"batch_size": 2, "epochs": 2, "steps_per_epoch": 5,
                                                 "precision": "fp32"})})


def test_each_architecture_is_probed_once_and_supervision_scales_by_flops(tiny):
    found = estimate(tiny, ["hg_stacked", "hg_stacked_int", "hg_stacked_add", "hg_int"], steps=1)
    assert set(found.rates) == {"hg_stacked", "hg_stacked_int", "hg_stacked_add", "hg_int"}
    assert all(rate > 0 for rate in found.rates.values())
    flops = {v: train_gflop(resolve_variant(tiny, v).model, 16) for v in found.rates}
    # one probe for the three 2-stack variants: their rates differ exactly by their FLOPs
    assert found.rates["hg_stacked"] * flops["hg_stacked"] == pytest.approx(
        found.rates["hg_stacked_int"] * flops["hg_stacked_int"])
    assert found.samples == 2 * 5 * 2
    seconds = sum(found.samples / found.rates[v] for v in found.variants) * TRAINING_OVERHEAD + OTHER_STAGES_S
    assert found.minutes == pytest.approx(seconds / 60)
    line = found.first_line()
    assert line.startswith("make demo on ") and "cores" in line and "trains cpu fp32" in line
    assert f"Expected about {found.minutes:.0f} min: 4 variant(s) x 20 samples" in line


def test_nothing_to_train_or_no_fixed_length_says_so(tiny):
    assert "every training is up to date" in estimate(tiny, []).first_line()
    open_ended = tiny.model_copy(update={"train": tiny.train.model_copy(update={"steps_per_epoch": None})})
    found = estimate(open_ended, ["hg"])
    assert found.rates == {} and "No estimate: train.steps_per_epoch is null" in found.first_line()


def test_every_architecture_is_probed_in_each_round_and_keeps_its_fastest(tiny, monkeypatch):
    # When something slows the first round (seen in fresh-clone demos, cause unknown), the second round counts.
    calls: list[int] = []
    rates = iter([10.0, 40.0, 30.0, 20.0])  # round 1: hg, hg_stacked; round 2: hg, hg_stacked

    def fake_probe(params, precision, steps):
        calls.append(params.model.stacks)
        return next(rates)

    monkeypatch.setattr("hourglass.bench.demo_probe.probe_rate", fake_probe)
    found = estimate(tiny, ["hg", "hg_stacked", "hg", "hg_stacked_int"], rounds=2)
    assert calls == [1, 2, 1, 2]  # round-robin over the two architectures, each once per round
    assert found.rates["hg"] == 30.0 and found.rates["hg_stacked"] == 40.0
    assert found.variants == ("hg", "hg_stacked", "hg", "hg_stacked_int")  # a variant per seed still counts


def test_a_side_by_side_plan_probes_in_as_many_processes_and_lays_the_trainings_out(tiny):
    from hourglass.sweep.plan import TrainingPlan, makespan

    plan = TrainingPlan(3, 1)
    found = estimate(tiny, ["hg", "hg_stacked", "hg_int"], steps=1, rounds=1, plan=plan)
    assert found.plan == plan and all(rate > 0 for rate in found.rates.values())
    durations = [found.samples / found.rates[v] * SIDE_BY_SIDE_OVERHEAD for v in found.variants]
    assert found.minutes == pytest.approx((makespan(durations, plan, found.cores) + OTHER_STAGES_S) / 60)
    assert "3 trainings at a time, 1 thread each" in found.first_line()
    assert "samples/s per training" in found.first_line()
