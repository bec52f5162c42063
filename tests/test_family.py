"""The dataset family is built once from the run's dataset card and carries everything that differs between
datasets: keypoints, flip permutation, metric, headline names."""

from __future__ import annotations

import numpy as np
import pytest
from shipped import preset_raw

from hourglass.config.params_file import ConfigError, parse_params
from hourglass.dataset_card import CardError
from hourglass.family import champion_metric, family_named, family_of
from hourglass.joints import FLIC, MPII


@pytest.mark.parametrize(("dataset", "joints", "metric"), [
    ("mpii", MPII, "PCKh@0.5"),
    ("flic", FLIC, "PCK@0.2"),
    ("synthetic", MPII, "PCKh@0.5"),
    ("synthetic_flic", FLIC, "PCK@0.2"),
])
def test_family_of_the_params_is_its_cards(dataset, joints, metric):
    family = family_of(parse_params(preset_raw({"dataset": dataset})))
    assert family.name == dataset and family.metric == metric
    # the shipped cards describe exactly the joint orders, flip permutations and limbs the code always had
    assert (family.joints.names, family.joints.flip, family.joints.limbs) == (joints.names, joints.flip, joints.limbs)
    assert family.joints.observer == joints.observer


def test_families_carry_their_headline_threshold_and_means():
    mpii, flic = family_named("mpii"), family_named("flic")
    assert (mpii.headline, flic.headline) == ("val/pckh/Mean", "val/pck/Mean")
    assert (mpii.threshold, flic.threshold) == (0.5, 0.2)
    assert [mpii.joints.names[j] for j in range(16) if j not in mpii.mean_joints] == ["pelvis", "thorax"]
    assert mpii.mean_at_0_1 and not flic.mean_at_0_1
    assert len(mpii.curve_thresholds) == 51 and len(flic.curve_thresholds) == 21
    assert mpii.figure4_words == ("wrist", "elbow", "knee", "ankle")


def test_an_unknown_dataset_is_an_error_naming_it_and_the_known_cards():
    with pytest.raises(ConfigError, match=r"dataset: Value error, dataset 'lsp': no card found .*'mpii'"):
        parse_params(preset_raw({"dataset": "lsp"}))
    with pytest.raises(CardError, match="lsp"):
        family_named("lsp")


def test_flic_validation_metrics_are_pck_with_the_ablation_joints():
    family = family_named("flic")
    n = 4
    gt = np.random.default_rng(0).uniform(50, 150, (n, FLIC.count, 2))
    pred = gt.copy()
    pred[:, FLIC.index("l_wrist")] += 100.0  # far off: wrong at any threshold
    result = family.score(pred, gt, np.ones((n, FLIC.count), bool), np.full(n, 40.0))
    metrics = family.validation_metrics(result)
    assert metrics["val/pck/Mean"] == pytest.approx(100.0 * 10 / 11)
    assert metrics["val/pck/joint/l_wrist"] == 0.0
    assert metrics["val/figure4"] == pytest.approx(75.0)  # elbows and wrists: 3 of 4 right
    assert not any(k.startswith("val/pckh") for k in metrics)


def test_champion_metric_defaults_to_the_evaluate_stages_mean_and_must_be_logged_by_the_family():
    assert champion_metric(parse_params(preset_raw({"dataset": "flic"}))) == "eval/pck/Mean"
    assert champion_metric(parse_params(preset_raw({"dataset": "synthetic"}))) == "eval/pckh/Mean"
    assert champion_metric(parse_params(preset_raw({"flows": {"champion_metric": "val/figure4"}}))) == "val/figure4"
    wrong = parse_params(preset_raw({"dataset": "synthetic_flic", "flows": {"champion_metric": "val/pckh/Mean"}}))
    with pytest.raises(ValueError, match=r"flows.champion_metric: 'val/pckh/Mean' is not logged by runs on "
                                         r"'synthetic_flic'"):
        champion_metric(wrong)
