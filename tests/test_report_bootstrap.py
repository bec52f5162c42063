"""The bootstrap over validation people (hourglass.report.bootstrap): hand-built cases with known answers, and the
vectorised resampling against the real metric recomputed on every resampled set of people."""

from __future__ import annotations

import numpy as np
import pytest

from hourglass.family import family_named
from hourglass.metrics import MPII_MEAN_JOINTS
from hourglass.report.bootstrap import Interval, PeopleBootstrap, correct_joints, mean_joints, resample_weights

MPII_FAMILY = family_named("mpii")
FLIC_FAMILY = family_named("flic")
FAMILIES = {"mpii": MPII_FAMILY, "flic": FLIC_FAMILY}


def _bootstrap_people(family, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground truth (n, J, 2) with some joints and one whole person unannotated, and normalisers."""
    rng = np.random.default_rng(seed)
    joints = rng.uniform(0, 200, (n, family.joints.count, 2))
    annotated = rng.random((n, family.joints.count)) > 0.2
    annotated[3] = False  # a person without any annotated joint is not one of the scored people
    joints[~annotated] = np.nan
    return joints, annotated, rng.uniform(5.0, 15.0, n)


def _bootstrap_predictions(joints: np.ndarray, normalize: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pred = np.nan_to_num(joints, nan=50.0) + rng.normal(0, sigma, joints.shape) * normalize[:, None, None]
    pred[1] = np.nan  # a missed person: every joint wrong
    return pred


def test_two_people_one_right_one_wrong_gives_the_binomial_answer() -> None:
    """Resampling 2 people: both the good one (Mean 100) with probability 1/4, both the bad one (0) with 1/4,
    one of each (50) otherwise; the 95 % interval therefore spans 0 to 100 around the estimate 50."""
    count = MPII_FAMILY.joints.count
    annotated = np.ones((2, count), bool)
    correct = np.zeros((2, count), bool)
    correct[0] = True
    boot = PeopleBootstrap(MPII_FAMILY, annotated, resamples=4000, seed=1)
    boot.add("a", correct)
    for statistic in ("Mean", "figure4"):
        interval = boot.interval("a", statistic)
        assert (interval.estimate, interval.low, interval.high) == (50.0, 0.0, 100.0)
        values, frequency = np.unique(boot.draws["a"][statistic], return_counts=True)
        assert values.tolist() == [0.0, 50.0, 100.0]
        np.testing.assert_allclose(frequency / 4000, [0.25, 0.5, 0.25], atol=0.03)


def test_all_correct_and_identical_variants() -> None:
    annotated = np.ones((5, FLIC_FAMILY.joints.count), bool)
    boot = PeopleBootstrap(FLIC_FAMILY, annotated, resamples=50)
    boot.add("a", annotated)
    boot.add("b", annotated)
    assert boot.interval("a", "Mean") == Interval(100.0, 100.0, 100.0)
    same = boot.difference("a", "b", "figure4")
    assert same == Interval(0.0, 0.0, 0.0) and not same.excludes_zero
    boot.add("c", np.zeros_like(annotated))
    worse = boot.difference("c", "a", "Mean")
    assert worse == Interval(-100.0, -100.0, -100.0) and worse.excludes_zero


def test_pooled_mean_weights_by_joint_count_and_skips_pelvis_and_thorax() -> None:
    """One person with only the pelvis and thorax wrong scores Mean 100 on MPII; a person with one annotated
    (correct) joint counts once in the pooled Mean but as a whole joint's accuracy in the Figure-4 average."""
    count = MPII_FAMILY.joints.count
    names = MPII_FAMILY.joints.names
    annotated = np.ones((2, count), bool)
    annotated[1] = False
    annotated[1, names.index("l_wrist")] = True
    correct = annotated.copy()
    correct[0, [names.index("pelvis"), names.index("thorax")]] = False
    correct[0, names.index("l_wrist")] = False
    boot = PeopleBootstrap(MPII_FAMILY, annotated, resamples=10)
    estimates = boot.add("a", correct)
    assert estimates["Mean"] == pytest.approx(100.0 * 14 / 15)  # 15 pooled joints, the first wrist wrong
    assert estimates["figure4"] == pytest.approx((50.0 + 7 * 100.0) / 8)  # l_wrist: 1 of 2 people


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_intervals_match_the_metric_recomputed_on_each_resample(name: str) -> None:
    """The module's contract (resample b = row b of default_rng(seed).integers(0, people, (resamples, people)) over
    the people with an annotated joint, numpy.percentile at 2.5 and 97.5), recomputed with the family's own
    scorer on the resampled rows, one resample at a time."""
    family = FAMILIES[name]
    joints, annotated, normalize = _bootstrap_people(family, 30, seed=3)
    pred_a = _bootstrap_predictions(joints, normalize, 0.25 if name == "mpii" else 0.1, seed=4)
    pred_b = _bootstrap_predictions(joints, normalize, 0.3 if name == "mpii" else 0.12, seed=5)
    resamples, seed = 300, 7
    boot = PeopleBootstrap(family, annotated, resamples=resamples, seed=seed)
    for label, pred in (("a", pred_a), ("b", pred_b)):
        boot.add(label, correct_joints(pred, joints, annotated, normalize, family.threshold))

    scored = np.flatnonzero(annotated.any(axis=1))
    assert boot.people == len(scored) == 29
    draws = np.random.default_rng(seed).integers(0, len(scored), size=(resamples, len(scored)))
    stats = {"a": {"Mean": [], "figure4": []}, "b": {"Mean": [], "figure4": []}}
    for rows in scored[draws]:
        for label, pred in (("a", pred_a), ("b", pred_b)):
            result = family.score(pred[rows], joints[rows], annotated[rows], normalize[rows])
            stats[label]["Mean"].append(result.mean)
            stats[label]["figure4"].append(family.figure4(result))
    full = {label: family.score(pred, joints, annotated, normalize) for label, pred in (("a", pred_a),
                                                                                       ("b", pred_b))}
    for statistic in ("Mean", "figure4"):
        interval = boot.interval("a", statistic)
        low, high = np.percentile(stats["a"][statistic], [2.5, 97.5])
        estimate = full["a"].mean if statistic == "Mean" else family.figure4(full["a"])
        assert (interval.estimate, interval.low, interval.high) == pytest.approx((estimate, low, high), abs=1e-9)
        paired = np.subtract(stats["b"][statistic], stats["a"][statistic])
        diff = boot.difference("b", "a", statistic)
        assert (diff.low, diff.high) == pytest.approx(tuple(np.percentile(paired, [2.5, 97.5])), abs=1e-9)
    assert 0 < boot.interval("a", "Mean").low < boot.interval("a", "Mean").high < 100


def test_resample_weights_follow_the_documented_draws() -> None:
    weights = resample_weights(7, 5, seed=11)
    draws = np.random.default_rng(11).integers(0, 7, size=(5, 7))
    assert weights.shape == (5, 7) and (weights.sum(axis=1) == 7).all()
    for row, drawn in zip(weights, draws, strict=True):
        assert row.tolist() == np.bincount(drawn, minlength=7).tolist()
    with pytest.raises(ValueError, match="at least one person"):
        resample_weights(0, 5, seed=0)


def test_mean_joints_are_the_scorers() -> None:
    assert mean_joints(MPII_FAMILY) == MPII_MEAN_JOINTS
    assert mean_joints(FLIC_FAMILY) == tuple(range(FLIC_FAMILY.joints.count))


def test_bad_shapes_are_refused() -> None:
    annotated = np.ones((4, MPII_FAMILY.joints.count), bool)
    with pytest.raises(ValueError, match=r"\(N, 11\)"):
        PeopleBootstrap(FLIC_FAMILY, annotated)
    boot = PeopleBootstrap(MPII_FAMILY, annotated, resamples=10)
    with pytest.raises(ValueError, match="ground truth's people"):
        boot.add("a", annotated[:3])
    with pytest.raises(ValueError, match="no validation person"):
        PeopleBootstrap(MPII_FAMILY, np.zeros_like(annotated))
