"""A killed training run resumes to exactly the weights of an uninterrupted one; a checkpoint of another
configuration, data, code or seed is not resumed; a non-finite loss stops the run and keeps the last good
checkpoint. On ``toy_poses.ToyPoses``."""

from __future__ import annotations

import csv
import math

import pytest
import torch
import yaml
from toy_poses import ToyPoses, tiny_params

from hourglass.config.params_file import parse_params
from hourglass.io.checkpoint import CHECKPOINT_NAME, load_checkpoint
from hourglass.train.criterion import build_criterion
from hourglass.train.loop import NonFiniteLossError, train


class Watched:
    """The run's criterion, with every loss it computes (training steps and validation batches, counted together
    from 1) passed through ``hook(call, loss)``: the loop is given it as its ``criterion``."""

    def __init__(self, params, hook) -> None:
        self.real = build_criterion(params.model.supervision, params.train.target_scale)
        self.hook, self.calls = hook, 0

    def __call__(self, outputs, target):
        self.calls += 1
        return self.hook(self.calls, self.real(outputs, target))

    def validation_loss(self, stacks, target):
        self.calls += 1
        return self.hook(self.calls, self.real.validation_loss(stacks, target))

pytestmark = pytest.mark.usefixtures("one_thread")


def _final_weights(out_dir) -> dict[str, torch.Tensor]:
    return load_checkpoint(out_dir / CHECKPOINT_NAME)["model"]


class Interrupted(RuntimeError):
    pass


def test_kill_and_resume_ends_with_identical_weights(tmp_path):
    """Epochs of 6 steps of 4 over 10 people (2.4 passes): the resumed run draws the uninterrupted run's order."""
    params = tiny_params(epochs=3, lr=1e-3, warmup_steps=3, optimizer="rmsprop", steps_per_epoch=6)
    data = ToyPoses(10), ToyPoses(8, seed=1)
    train(params, tmp_path / "full", train_set=data[0], val_set=data[1])

    def crash_in_epoch_two(call: int, loss: torch.Tensor) -> torch.Tensor:
        if call == 10:  # epoch 2 (6 steps/epoch + 1 validation batch per epoch), mid-epoch
            raise Interrupted("simulated kill")
        return loss

    with pytest.raises(Interrupted):
        train(params, tmp_path / "resumed", train_set=data[0], val_set=data[1],
              criterion=Watched(params, crash_in_epoch_two))
    assert load_checkpoint(tmp_path / "resumed" / CHECKPOINT_NAME)["epoch"] == 1
    result = train(params, tmp_path / "resumed", train_set=data[0], val_set=data[1])
    assert result.epochs == 3
    full, resumed = _final_weights(tmp_path / "full"), _final_weights(tmp_path / "resumed")
    assert full.keys() == resumed.keys()
    for name in full:
        assert torch.equal(full[name], resumed[name]), name
    rows = list(csv.DictReader(open(tmp_path / "resumed" / "epochs.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    full_rows = list(csv.DictReader(open(tmp_path / "full" / "epochs.csv")))
    assert [r["val/pckh/Mean"] for r in rows] == [r["val/pckh/Mean"] for r in full_rows]


def test_a_checkpoint_of_another_configuration_data_or_code_is_not_resumed(tmp_path, caplog):
    params = tiny_params(epochs=1)
    data = ToyPoses(8), ToyPoses(4, seed=1)
    train(params, tmp_path, train_set=data[0], val_set=data[1], data_fingerprint="data-1")
    longer = parse_params({**params.model_dump(mode="json"), "model": {**params.model.model_dump(), "features": 32},
                           "train": {**params.train.model_dump(mode="json"), "epochs": 2}})
    with caplog.at_level("INFO", logger="hourglass.train.loop"):
        result = train(longer, tmp_path, train_set=data[0], val_set=data[1], data_fingerprint="data-1")
    assert "starting fresh, not resuming" in caplog.text and "(config differs)" in caplog.text
    assert "resuming" not in caplog.text.replace("not resuming", "")
    assert result.epochs == 2 and load_checkpoint(tmp_path / CHECKPOINT_NAME)["config"]["model"]["features"] == 32
    caplog.clear()
    with caplog.at_level("INFO", logger="hourglass.train.loop"):
        train(longer, tmp_path, train_set=data[0], val_set=data[1], data_fingerprint="data-2")
    assert "(data differs)" in caplog.text
    # Settings that change only speed or logging keep the checkpoint: the finished run is resumed at its end.
    faster = parse_params({**longer.model_dump(mode="json"),
                           "train": {**longer.train.model_dump(mode="json"), "workers": 1, "log_every": 5}})
    caplog.clear()
    with caplog.at_level("INFO", logger="hourglass.train.loop"):
        train(faster, tmp_path, train_set=data[0], val_set=data[1], data_fingerprint="data-2")
    assert "resuming" in caplog.text and "starting fresh" not in caplog.text


def test_the_training_seed_is_the_runs_own_and_part_of_its_fingerprint(tmp_path, caplog):
    """`seed=` (the stage's --seed) drives the run; a checkpoint of another seed is not resumed; the sweep's other
    seeds (`seeds`) are not part of a run's identity, so adding one leaves the existing runs resumable."""
    params = tiny_params(epochs=1)
    data = ToyPoses(8), ToyPoses(4, seed=1)
    first = train(params, tmp_path / "s3", train_set=data[0], val_set=data[1])  # default: the first of seeds (3)
    other = train(params, tmp_path / "s5", train_set=data[0], val_set=data[1], seed=5)
    state = load_checkpoint(tmp_path / "s5" / CHECKPOINT_NAME)
    assert state["seed"] == 5 and state["config"]["seed"] == 5 and state["config"]["seeds"] == [3]
    assert yaml.safe_load((tmp_path / "s5" / "config.yaml").read_text())["seed"] == 5
    assert load_checkpoint(tmp_path / "s3" / CHECKPOINT_NAME)["seed"] == 3
    assert any(not torch.equal(a, b) for a, b in zip(first.model.state_dict().values(),
                                                     other.model.state_dict().values(), strict=True))
    with caplog.at_level("INFO", logger="hourglass.train.loop"):
        train(params, tmp_path / "s5", train_set=data[0], val_set=data[1], seed=6)
    assert "starting fresh, not resuming" in caplog.text and "(config differs)" in caplog.text
    more_seeds = parse_params({**params.model_dump(mode="json"), "seeds": [3, 4]})
    caplog.clear()
    with caplog.at_level("INFO", logger="hourglass.train.loop"):
        train(more_seeds, tmp_path / "s3", train_set=data[0], val_set=data[1], seed=3)
    assert "resuming" in caplog.text and "starting fresh" not in caplog.text
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        train(params, tmp_path / "bad", train_set=data[0], val_set=data[1], seed=-1)


def test_code_digest_follows_the_loaded_project_sources(tmp_path):
    from hourglass.train import fingerprint

    files = fingerprint.loaded_project_files()
    assert any(f.name == "loop.py" and f.parent.name == "train" for f in files)
    copy = tmp_path / "hourglass"
    copy.mkdir()
    for f in files[:3]:
        (copy / f.name).write_bytes(f.read_bytes())
    copies = sorted(copy.iterdir())
    before = fingerprint.code_digest(copies)
    copies[0].write_text(copies[0].read_text() + "\n# edited\n")
    assert fingerprint.code_digest(copies) != before


def _nan_loss_at(params, call: int) -> Watched:
    """A criterion whose loss turns NaN on its ``call``-th computation (counted from 1, training steps and
    validation batches alike), and is the real one otherwise."""
    return Watched(params, lambda n, loss: loss * math.nan if n == call else loss)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    params = tiny_params(epochs=3)
    data = ToyPoses(8), ToyPoses(4, seed=1)
    nan_at_5 = _nan_loss_at(params, 5)  # the first call of epoch 2: epoch 1 is 2 steps + 1 validation batch
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 3.*checkpoint .* \(epoch 1\) is kept"):
        train(params, tmp_path, train_set=data[0], val_set=data[1], criterion=nan_at_5)
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize(("log_every", "bad_call", "message"), [
    # 2 steps per epoch (steps 0-1, 2-3, ...), each epoch's validation one more loss call. log_every 3: step 2 is
    # not read back, step 3 is: found there, before step 3's update (step 2's was made in memory only).
    (3, 4, r"epoch 2, step 2; it was read back at step 3 .* the update of step 2 was made in memory only"),
    # log_every 5: neither step of epoch 2 is a read-back point; the epoch's end is, before validation/checkpoint.
    (5, 5, r"epoch 2, step 3; it was read back at step 3 .* the update of step 3 was made in memory only"),
])
def test_a_non_finite_loss_between_read_backs_is_found_before_the_next_checkpoint(tmp_path, log_every,
                                                                                 bad_call, message):
    params = tiny_params(epochs=3, log_every=log_every)
    data = ToyPoses(8), ToyPoses(4, seed=1)
    with pytest.raises(NonFiniteLossError, match=message + r".*checkpoint .* \(epoch 1\) is kept"):
        train(params, tmp_path, train_set=data[0], val_set=data[1], criterion=_nan_loss_at(params, bad_call))
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["epoch"] == 1 and state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (tmp_path / "metrics.json").exists()
