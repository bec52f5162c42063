"""Per-epoch validation on a fixed subset of the people (``train.val_people``): which people, and that the scores are
those of exactly that subset."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import Subset

sys.path.insert(0, str(Path(__file__).parent))
from toy_poses import ToyPoses, tiny_params  # noqa: E402  (the shared dataset)

from hourglass.model import create_model
from hourglass.precision import Precision
from hourglass.train.criterion import build_criterion
from hourglass.train.loop import train
from hourglass.train.validation import validate, validation_people

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_subset_is_evenly_spaced_fixed_and_unique():
    chosen = validation_people(573, 192)
    assert len(chosen) == len(set(chosen)) == 192
    assert chosen == sorted(chosen) and chosen[0] == 0 and chosen[-1] >= 573 - 3
    gaps = {b - a for a, b in zip(chosen, chosen[1:], strict=False)}
    assert gaps <= {2, 3}, gaps  # 573 / 192 = 2.98: no stretch of the split is skipped
    assert chosen == validation_people(573, 192)
    assert list(validation_people(10, None)) == list(range(10))
    assert list(validation_people(10, 10)) == list(validation_people(10, 40)) == list(range(10))


def test_validation_scores_only_the_subset():
    """The metrics with ``val_people: 3`` over six people are those of validating the three chosen people alone."""
    torch.manual_seed(0)
    network = create_model(stacks=1, features=16, joints=16).eval()
    people = ToyPoses(6, seed=1)
    precision = Precision(torch.device("cpu"), "fp32", False)
    subset = tiny_params(val_people=3)
    everyone = tiny_params(val_people=None)
    criterion = build_criterion(subset.model.supervision, subset.train.target_scale)

    chosen = validation_people(len(people), 3)
    assert chosen == [0, 2, 4]
    some = validate(network, criterion, people, subset, precision)
    alone = validate(network, criterion, Subset(people, chosen), everyone, precision)
    full = validate(network, criterion, people, everyone, precision)
    assert some == alone
    assert some["val/loss"] != full["val/loss"]


def test_the_subset_changes_the_curve_only(tmp_path):
    """Per-epoch validation draws nothing from the training's random streams: the trained weights are bit for bit
    those of a run validating every person."""
    runs = {}
    for people in (2, None):
        result = train(tiny_params(epochs=2, steps_per_epoch=3, val_people=people), tmp_path / str(people),
                       train_set=ToyPoses(16), val_set=ToyPoses(6, seed=1))
        runs[people] = result
    trained, everyone = runs[2].model.state_dict(), runs[None].model.state_dict()
    assert all(torch.equal(trained[name], everyone[name]) for name in trained)
    assert runs[2].history[-1]["val/loss"] != runs[None].history[-1]["val/loss"]
