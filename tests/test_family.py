"""The dataset family is decided once from the params and carries everything that differs between MPII and FLIC."""

from __future__ import annotations

import numpy as np
import pytest
from shipped import preset_raw

from hourglass.family import FLIC_FAMILY, MPII_FAMILY, champion_metric, family_for, family_of
from hourglass.joints import FLIC, MPII
from hourglass.params_file import parse_params


@pytest.mark.parametrize(("raw", "expected"), [
    ({"dataset": "mpii"}, MPII_FAMILY),
    ({"dataset": "flic"}, FLIC_FAMILY),
    ({"dataset": "synthetic"}, MPII_FAMILY),
    ({"dataset": "synthetic", "synthetic": {"joint_set": "flic"}}, FLIC_FAMILY),
    # a real dataset is its own family whatever the synthetic section says
    ({"dataset": "mpii", "synthetic": {"joint_set": "flic"}}, MPII_FAMILY),
])
def test_family_of_the_params(raw, expected):
    assert family_of(parse_params(preset_raw(raw))) is expected


def test_families_carry_their_joints_metric_and_headline():
    assert MPII_FAMILY.joints is MPII and FLIC_FAMILY.joints is FLIC
    assert (MPII_FAMILY.headline, FLIC_FAMILY.headline) == ("val/pckh/Mean", "val/pck/Mean")
    assert (MPII_FAMILY.threshold, FLIC_FAMILY.threshold) == (0.5, 0.2)
    with pytest.raises(ValueError, match="no dataset family 'lsp'"):
        family_for("lsp", "mpii")


def test_flic_validation_metrics_are_pck_with_the_ablation_joints():
    n = 4
    gt = np.random.default_rng(0).uniform(50, 150, (n, FLIC.count, 2))
    pred = gt.copy()
    pred[:, FLIC.index("l_wrist")] += 100.0  # far off: wrong at any threshold
    result = FLIC_FAMILY.score(pred, gt, np.ones((n, FLIC.count), bool), np.full(n, 40.0))
    metrics = FLIC_FAMILY.validation_metrics(result)
    assert metrics["val/pck/Mean"] == pytest.approx(100.0 * 10 / 11)
    assert metrics["val/pck/joint/l_wrist"] == 0.0
    assert metrics["val/figure4"] == pytest.approx(75.0)  # elbows and wrists: 3 of 4 right
    assert not any(k.startswith("val/pckh") for k in metrics)


def test_champion_metric_defaults_to_the_evaluate_stages_mean_and_must_be_logged_by_the_family():
    assert champion_metric(parse_params(preset_raw({"dataset": "flic"}))) == "eval/pck/Mean"
    assert champion_metric(parse_params(preset_raw({"dataset": "synthetic"}))) == "eval/pckh/Mean"
    assert champion_metric(parse_params(preset_raw({"flows": {"champion_metric": "val/figure4"}}))) == "val/figure4"
    wrong = parse_params(preset_raw({"dataset": "synthetic", "synthetic": {"joint_set": "flic"},
                          "flows": {"champion_metric": "val/pckh/Mean"}}))
    with pytest.raises(ValueError, match=r"flows.champion_metric: 'val/pckh/Mean' is not logged by FLIC"):
        champion_metric(wrong)
