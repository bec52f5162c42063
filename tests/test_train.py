"""The training loop: loss, schedule, checkpoints, outputs, what it learns, its log lines (kill-and-resume,
fingerprints and non-finite losses: ``test_train_resume.py``).

Mechanics run on ``toy_poses.ToyPoses`` (no preprocessed data, seconds per run).
"""

from __future__ import annotations

import csv
import json
import math
from itertools import pairwise

import numpy as np
import pytest
import torch
import yaml
from shipped import paper, preset_raw, recipe_raw
from toy_poses import ToyPoses, tiny_params

from hourglass.config.params_file import parse_params
from hourglass.heatmaps import gaussian_heatmaps
from hourglass.io.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint, save_checkpoint
from hourglass.model import create_model
from hourglass.precision import select_precision
from hourglass.train import loop as train_module
from hourglass.train.criterion import build_criterion, forward_loss
from hourglass.train.loop import train
from hourglass.train.losses import auxiliary_loss, heatmap_loss
from hourglass.train.optim import create_optimizer, create_schedule
from hourglass.train.run_config import resolve_variant

pytestmark = pytest.mark.usefixtures("one_thread")


def test_heatmap_loss_sums_per_output_mse():
    target = torch.rand(2, 3, 4, 4)
    outputs = torch.stack([target, target + 1.0], dim=1)
    # stack 1 exact, stack 2 off by 1 everywhere: 0 + 1
    assert heatmap_loss(outputs, target).item() == pytest.approx(1.0)
    assert heatmap_loss(outputs, target, target_scale=2.0).item() == pytest.approx(
        ((target - 2 * target) ** 2).mean().item() + ((1 - target) ** 2).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="do not match"):
        heatmap_loss(outputs, torch.rand(2, 3, 5, 5))


def test_auxiliary_loss_compares_each_map_with_the_max_pooled_target():
    target = torch.rand(2, 3, 8, 8)
    pooled = [torch.nn.functional.max_pool2d(target, k) for k in (4, 2)]  # 2x2 and 4x4, coarse to fine
    assert auxiliary_loss(pooled, target).item() == 0.0
    assert auxiliary_loss([], target).item() == 0.0
    # Off by 1 everywhere in one map, by 2 in the other: equal weights, 1 + 4.
    assert auxiliary_loss([pooled[0] + 1, pooled[1] - 2], target).item() == pytest.approx(5.0)
    assert auxiliary_loss([3 * pooled[0]], target, target_scale=3.0).item() == pytest.approx(0.0, abs=1e-12)
    # Peak-preserving: a Gaussian target keeps its peak of 1 at every resolution.
    peak = torch.from_numpy(gaussian_heatmaps(np.array([[5.0, 6.0]], dtype=np.float32), np.array([True]), 16))
    assert torch.nn.functional.max_pool2d(peak[None], 8).max().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="pooled by one whole factor"):
        auxiliary_loss([torch.rand(2, 3, 3, 3)], target)
    with pytest.raises(ValueError, match="pooled by one whole factor"):
        auxiliary_loss([torch.rand(2, 4, 4, 4)], target)


def test_training_loss_of_hg_int_adds_the_lower_resolution_terms():
    torch.manual_seed(0)
    network = create_model(stacks=1, modules=2, features=16, joints=16, supervision="resolutions")
    samples = [ToyPoses(2)[i] for i in range(2)]
    batch = {k: torch.as_tensor(np.stack([s[k] for s in samples])) for k in ("image", "target")}
    precision = select_precision("fp32", torch.device("cpu"), channels_last=False)
    loss = forward_loss(network, build_criterion("resolutions"), batch, precision)
    outputs, maps = network(batch["image"])
    full = heatmap_loss(outputs[:, -1:], batch["target"])
    lower = auxiliary_loss(maps, batch["target"])
    assert lower.item() > 0 and [m.shape[-1] for m in maps] == [2, 4, 8]  # 64 px input: 16 px output
    assert loss.item() == pytest.approx((full + lower).item(), rel=1e-6)
    # The other modes' loss is the full-resolution part alone.
    torch.manual_seed(0)
    plain = create_model(stacks=1, modules=2, features=16, joints=16, supervision="final")
    assert forward_loss(plain, build_criterion("final"), batch, precision).item() == pytest.approx(
        heatmap_loss(plain(batch["image"]).stacks[:, -1:], batch["target"]).item(), rel=1e-6)


def test_schedule_warmup_and_plateau_drop_by_five():
    cfg = paper("train", lr=1.0, warmup_steps=4, plateau_patience=1, plateau_threshold=0.5)
    optimizer = create_optimizer(torch.nn.Linear(2, 2), cfg)
    schedule = create_schedule(optimizer, cfg)
    assert [schedule.apply(s) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert optimizer.param_groups[0]["lr"] == 1.0
    assert not schedule.end_epoch(50.0)  # improvement
    assert not schedule.end_epoch(50.2)  # below threshold: first bad epoch, within patience
    assert schedule.end_epoch(50.1)  # second bad epoch: drop
    assert schedule.lr_at(10) == pytest.approx(0.2)
    restored = create_schedule(optimizer, cfg)
    restored.load_state_dict(schedule.state_dict())
    assert restored.lr_at(10) == pytest.approx(0.2) and restored.best == 50.0


def test_plateau_drops_at_most_plateau_max_drops_times():
    """The paper divides the rate by 5 once; ``plateau_max_drops: null`` keeps dropping at every plateau."""
    stalled = [50.0] + [50.0] * 12  # one improvement, then a flat metric: the rule fires every 3rd epoch
    for limit, expected in ((1, [0.2]), (2, [0.2, 0.04]), (None, [0.2, 0.04, 0.008, 0.0016])):
        cfg = paper("train", lr=1.0, plateau_patience=2, plateau_threshold=0.5, plateau_max_drops=limit)
        schedule = create_schedule(create_optimizer(torch.nn.Linear(2, 2), cfg), cfg)
        rates = []
        for metric in stalled:
            if schedule.end_epoch(metric):
                rates.append(schedule.lr_at(0))
        assert rates == pytest.approx(expected), limit
        restored = create_schedule(create_optimizer(torch.nn.Linear(2, 2), cfg), cfg)
        restored.load_state_dict(schedule.state_dict())
        assert restored.drops == len(expected) and not restored.end_epoch(40.0)


def test_step_schedule_and_adam_option():
    cfg = paper("train", lr=1.0, schedule="step", milestones=(1, 3), step_factor=0.1, optimizer="adam")
    optimizer = create_optimizer(torch.nn.Linear(2, 2), cfg)
    assert isinstance(optimizer, torch.optim.Adam)
    schedule = create_schedule(optimizer, cfg)
    drops = [schedule.end_epoch(None) for _ in range(4)]
    assert drops == [True, False, True, False] and schedule.lr_at(0) == pytest.approx(0.01)


def test_cosine_schedule_falls_from_the_end_of_warmup_to_zero_at_the_last_step():
    cfg = paper("train", lr=2.0, schedule="cosine", warmup_steps=2, min_lr=0.0)
    schedule = create_schedule(create_optimizer(torch.nn.Linear(2, 2), cfg), cfg, total_steps=12)
    rates = [schedule.lr_at(s) for s in range(13)]
    assert rates[:2] == [1.0, 2.0]  # warm-up, then the cosine starts from the full rate
    assert rates[7] == pytest.approx(1.0)  # halfway through the 10 decaying steps
    assert rates[12] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in pairwise(rates[1:]))
    assert not schedule.end_epoch(99.0)  # per step, not per epoch: validation does not move it
    floored = paper("train", lr=2.0, schedule="cosine", min_lr=0.1)
    assert create_schedule(create_optimizer(torch.nn.Linear(2, 2), floored), floored, 10).lr_at(10) == 0.1
    with pytest.raises(ValueError, match="total number of optimiser steps"):
        create_schedule(create_optimizer(torch.nn.Linear(2, 2), cfg), cfg)


def test_variant_overrides_model_and_unknown_variant_is_named():
    params = parse_params(recipe_raw("mpii", {"model": {"stacks": 8},
                                              "train": {"variants": {"hg": {"model": {"stacks": 1, "modules": 2}}}}}))
    resolved = resolve_variant(params, "hg")
    assert (resolved.model.stacks, resolved.model.modules, resolved.model.features) == (1, 2, 256)
    with pytest.raises(ValueError, match="no variant 'nope'.*known: hg"):
        resolve_variant(params, "nope")
    with pytest.raises(ValueError, match="variant name"):
        parse_params(preset_raw({"train": {"variants": {"a/b": {}}}}))


def test_checkpoint_is_atomic_and_weights_only(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint({"epoch": 1, "model": {"w": torch.ones(2)}}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]  # no temporary left behind
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


def _final_weights(out_dir) -> dict[str, torch.Tensor]:
    return load_checkpoint(out_dir / CHECKPOINT_NAME)["model"]


def test_training_writes_dvc_outputs_and_learns(tmp_path):
    params = tiny_params(epochs=3, lr=2e-3)
    result = train(params, tmp_path, train_set=ToyPoses(24), val_set=ToyPoses(8, seed=1))
    assert result.epochs == 3 and result.steps == 18
    rows = list(csv.DictReader(open(tmp_path / "epochs.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # One helper writes both files: the final metrics repeat the last row exactly.
    for key in ("val/pckh/Mean", "val/figure4", "val/loss", "train/loss", "val/pckh/Mean_at_0.1"):
        assert metrics[key] == pytest.approx(float(rows[-1][key]), rel=1e-12), key
    assert "val/pckh/joint/r_ankle" in rows[0]
    losses = [float(r["train/loss"]) for r in rows]
    assert losses[-1] < losses[0]
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["epoch"] == 3 and state["step"] == 18 and state["config"]["model"]["stacks"] == 1
    # How the run ran, resolved (params say only what was asked for), in config.yaml and metrics.json alike.
    resolved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert resolved["runtime"] == metrics["runtime"]
    runtime = metrics["runtime"]
    assert runtime["precision"] == "fp32" and runtime["precision_requested"] == "fp32"
    assert runtime["device"] == "cpu" and runtime["device_name"] and runtime["torch"] == torch.__version__
    assert {"channels_last", "compile", "world_size", "cuda", "threads"} <= set(runtime)


def test_auto_precision_is_recorded_as_what_it_resolved_to(tmp_path, monkeypatch):
    monkeypatch.setattr("hourglass.precision.cpu_supports_bf16", lambda flags=None: False)
    train(tiny_params(epochs=1, precision="auto"), tmp_path, train_set=ToyPoses(8), val_set=ToyPoses(4, seed=1))
    runtime = json.loads((tmp_path / "metrics.json").read_text())["runtime"]
    assert runtime["precision_requested"] == "auto" and runtime["precision"] == "fp32"


def test_hg_int_variant_trains_its_lower_resolution_heads(tmp_path, monkeypatch):
    variants = {"hg_int": {"model": {"stacks": 1, "modules": 2, "supervision": "resolutions"}}}
    params = tiny_params(epochs=1, steps_per_epoch=2, lr=1e-3, variants=variants)
    calls = []
    real = build_criterion("resolutions", params.train.target_scale)

    class Counted:  # the criterion the loop is given, counting each training loss's lower-resolution terms
        def __call__(self, outputs, target):
            calls.append(len(outputs.levels))
            return real(outputs, target)

        def validation_loss(self, stacks, target):
            return real.validation_loss(stacks, target)

    result = train(params, tmp_path, train_set=ToyPoses(8), val_set=ToyPoses(4, seed=1), variant="hg_int",
                   criterion=Counted())
    assert result.steps == 2 and calls == [3, 3]  # every step's loss had three lower-resolution terms
    assert math.isfinite(result.final_metrics["val/loss"])
    torch.manual_seed(params.seeds[0])  # the trainer's initial weights (its default seed: the first)
    initial = create_model(stacks=1, modules=2, features=16, joints=16, supervision="resolutions").state_dict()
    trained = _final_weights(tmp_path)
    assert trained.keys() == initial.keys()
    for i in range(3):
        assert not torch.equal(trained[f"auxiliary_heatmaps.{i}.weight"], initial[f"auxiliary_heatmaps.{i}.weight"])
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["config"]["model"]["supervision"] == "resolutions"


def test_a_split_smaller_than_one_global_batch_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="train split has 3 people, fewer than one global batch of "
                                         "train.batch_size=4"):
        train(tiny_params(steps_per_epoch=9), tmp_path, train_set=ToyPoses(3), val_set=ToyPoses(4))


def test_an_epoch_longer_than_the_split_concatenates_passes(tmp_path):
    """The MPII recipe's case (8,000 steps x 6 > 22,246 people): 9 steps of 4 over 8 people train, 4.5 passes."""
    result = train(tiny_params(epochs=1, steps_per_epoch=9), tmp_path, train_set=ToyPoses(8), val_set=ToyPoses(4))
    assert result.steps == 9


@pytest.mark.slow
def test_learns_to_find_the_blobs(tmp_path):
    """Accuracy sanity check on the toy task (a coloured blob per joint), ~40 s: the loop, loss and decoding together
    must climb well above the first epoch. Measured (deterministic, one thread): PCKh 21.7 after epoch 1, best 36.3,
    final 31.0 after 12 epochs; a broken target/decoding convention scores near 0 and a collapse to empty heatmaps
    stays at the first epoch's level. (The tiny 64 px network learns this slowly; validation itself scores 100 on
    the ground-truth heatmaps.)"""
    params = tiny_params(epochs=12, batch_size=8, lr=1e-3, schedule="constant", log_every=50, target_scale=10.0)
    result = train(params, tmp_path, train_set=ToyPoses(256), val_set=ToyPoses(32, seed=1))
    first, best = result.history[0]["val/pckh/Mean"], result.final_metrics["best/val/pckh/Mean"]
    assert best > 30.0 and best > first + 8.0, (first, best)


def test_flic_runs_follow_pck_for_the_schedule_and_the_best_epoch(tmp_path, monkeypatch):
    """FLIC is scored with PCK@0.2 (``val/pck/...``); the plateau schedule and ``best/...`` must follow that metric,
    not MPII's ``val/pckh/Mean`` (which a FLIC run never has: the schedule would never decay)."""
    seen = []
    original = train_module.create_schedule

    def spy(optimizer, cfg, total_steps=None):
        schedule = original(optimizer, cfg, total_steps)
        end_epoch = schedule.end_epoch
        schedule.end_epoch = lambda metric: seen.append(metric) or end_epoch(metric)
        return schedule

    monkeypatch.setattr(train_module, "create_schedule", spy)
    params = tiny_params(epochs=2).model_copy(update={"dataset": "flic"})
    result = train(params, tmp_path, train_set=ToyPoses(16, joints=11), val_set=ToyPoses(8, seed=1, joints=11))
    pck = [h["val/pck/Mean"] for h in result.history]
    assert seen == pck and all(math.isfinite(v) for v in seen)
    assert result.final_metrics["best/val/pck/Mean"] == max(pck)
    assert "best/val/pckh/Mean" not in result.final_metrics
    assert not any(k.startswith("val/pckh") for k in result.history[-1])


def test_each_epoch_logs_one_line_with_progress_score_and_eta(tmp_path, caplog):
    raw = tiny_params(epochs=2).model_dump(mode="json")
    params = parse_params({**raw, "sweep": ["hg", "hg_int"], "seeds": [3, 4],
                           "flows": {**raw["flows"], "champion_variant": "hg"}})
    data = (ToyPoses(8), ToyPoses(4, seed=1))
    with caplog.at_level("INFO", logger="hourglass.train.loop"):
        train(params, tmp_path, train_set=data[0], val_set=data[1], variant="hg_int", seed=3)
    lines = [r.getMessage() for r in caplog.records if "elapsed, ETA" in r.getMessage()]
    assert len(lines) == 2  # where the run is in the sweep x seeds matrix, in dvc.yaml's order: hg-3 hg-4 hg_int-3
    assert lines[0].startswith("[hg_int seed 3, 3/4] epoch 1/2  loss ") and "validation PCKh@0.5 Mean" in lines[0]
    assert lines[1].startswith("[hg_int seed 3, 3/4] epoch 2/2") and lines[1].endswith("ETA 0:00")
