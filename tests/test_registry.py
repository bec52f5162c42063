"""The champion rule of hourglass.tracking.registry against a real MLflow SQLite registry in tmp_path: who takes the
alias, what is tagged where (the candidate only), which versions may be compared, and a version's stored score on a
split. The scores here are given; tests/test_champion_contest.py computes them with the evaluate code."""

from __future__ import annotations

from pathlib import Path

import mlflow
import mlflow.pytorch
import pytest
import torch
from mlflow import MlflowClient

from hourglass.tracking.registry import (
    Difference,
    RegistryError,
    check_same_card,
    contested_before,
    model_version,
    record_score,
    settle_contest,
    stored_predictions,
)

NAME = "hg-test"
SPLIT = "a" * 64
CARD = {"dataset_card": "0123456789ab", "keypoints": "head,neck,hand", "metric": "PCKh@0.5"}


@pytest.fixture
def client(mlflow_store: str) -> MlflowClient:
    """A fresh registry (conftest's ``mlflow_store``); the fluent API (log_model, load_model) follows it through
    ``MLFLOW_TRACKING_URI``."""
    return MlflowClient(tracking_uri=mlflow_store)


def _register(client: MlflowClient, card: dict[str, str] | None = None) -> str:
    """A model version from a finished run (no model files), tagged with ``card`` (default: CARD)."""
    run_id = client.create_run("0").info.run_id
    client.set_terminated(run_id)
    if not client.search_registered_models(filter_string=f"name = '{NAME}'"):
        client.create_registered_model(NAME)
    version = str(client.create_model_version(NAME, source=f"runs:/{run_id}/model", run_id=run_id).version)
    for key, value in (CARD if card is None else card).items():
        client.set_model_version_tag(NAME, version, key, value)
    return version


def _register_torch(bias: float) -> str:
    """A real logged model (a 1x1 Linear whose bias identifies it), registered from a run."""
    layer = torch.nn.Linear(1, 1)
    with torch.no_grad():
        layer.weight.fill_(0.0)
        layer.bias.fill_(bias)
    with mlflow.start_run():
        info = mlflow.pytorch.log_model(
            layer, name="model", serialization_format="pickle", pip_requirements=["torch"],
            registered_model_name=NAME,
        )
    return str(info.registered_model_version)


def _champion(client: MlflowClient) -> str | None:
    aliases = client.get_registered_model(NAME).aliases
    return str(aliases["champion"]) if "champion" in aliases else None


def _settle(client: MlflowClient, version: str, score: float, champion: float | None = None,
            interval: tuple[float, float] | None = None, higher: bool = True, min_improvement: float = 0.5):
    """One contest of ``version`` against whoever holds the alias, with the given scores and paired interval."""
    holder = _champion(client)
    difference = None if champion is None else Difference(score - champion, *(interval or (0.0, 0.0)), 0.95, 30)
    return settle_contest(client, NAME, model_version(client, NAME, version), score, holder, champion, difference,
                          metric="eval/pckh/Mean", alias="champion", higher_is_better=higher,
                          min_improvement=min_improvement, split_digest=SPLIT)


def _served_bias() -> float:
    model = mlflow.pytorch.load_model(f"models:/{NAME}@champion")
    return float(model(torch.zeros(1, 1)).item())


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_alias_follows_the_clearly_better_model_and_resolves_to_it(client: MlflowClient) -> None:
    first = _register_torch(bias=1.0)
    assert _settle(client, first, 50.0).promoted
    assert _served_bias() == pytest.approx(1.0)

    better = _register_torch(bias=2.0)
    decision = _settle(client, better, 60.0, 50.0, (4.0, 16.0))
    assert decision.promoted and decision.champion_version == first
    assert _champion(client) == better and _served_bias() == pytest.approx(2.0)

    noisy = _register_torch(bias=3.0)  # better on these people, but not beyond doubt
    decision = _settle(client, noisy, 62.0, 60.0, (-1.0, 5.0))
    assert not decision.promoted and decision.serving_version == better
    assert decision.reason == "not distinguishable: difference +2.00 [-1.00, 5.00] at 95 % over 30 people"
    assert _champion(client) == better and _served_bias() == pytest.approx(2.0)


def test_first_model_becomes_champion_and_the_decision_is_tagged(client: MlflowClient) -> None:
    version = _register(client)
    decision = _settle(client, version, 42.0)
    assert decision.promoted and decision.champion_version is None and decision.champion_score is None
    assert decision.candidate_score == pytest.approx(42.0) and decision.difference is None
    assert decision.reason == "no model held the alias yet" and _champion(client) == version

    mv = client.get_model_version(NAME, version)
    assert mv.tags["champion_decision"] == "promoted" and mv.tags["champion_split_digest"] == SPLIT
    assert float(mv.tags["candidate_score"]) == pytest.approx(42.0)
    assert mv.tags["champion_score"] == "none" and mv.tags["champion_difference"] == "none"
    run_tags = client.get_run(mv.run_id).data.tags
    assert run_tags["champion_decision"] == "promoted" and run_tags["champion_score"] == "none"


def test_a_kept_candidate_is_tagged_and_the_serving_version_is_not(client: MlflowClient) -> None:
    champion = _register(client)
    _settle(client, champion, 80.0)
    serving_tags = client.get_model_version(NAME, champion).tags
    candidate = _register(client)
    decision = _settle(client, candidate, 70.0, 80.0, (-14.0, -6.0))

    assert not decision.promoted and decision.reason.startswith("worse than the champion: difference -10.00")
    assert (decision.candidate_score, decision.champion_score) == pytest.approx((70.0, 80.0))
    assert decision.champion_version == champion and _champion(client) == champion
    mv = client.get_model_version(NAME, candidate)
    assert mv.tags["champion_decision"] == "kept" and mv.tags["champion_version"] == champion
    assert float(mv.tags["champion_score"]) == pytest.approx(80.0)
    assert mv.tags["champion_difference"] == "-10.00 [-14.00, -6.00] at 95 %"
    assert client.get_run(mv.run_id).data.tags["champion_decision"] == "kept"
    assert client.get_model_version(NAME, champion).tags == serving_tags  # "promoted" stays on the serving version


def test_ties_and_small_gains_keep_the_champion(client: MlflowClient) -> None:
    champion = _register(client)
    _settle(client, champion, 75.0)
    tie = _settle(client, _register(client), 75.0, 75.0, (-1.0, 1.0))
    assert not tie.promoted and "ties keep the champion" in tie.reason
    small = _settle(client, _register(client), 75.3, 75.0, (0.1, 0.5))
    assert not small.promoted and small.reason.startswith("gain 0.30 below flows.min_improvement 0.5")
    assert _champion(client) == champion
    assert _settle(client, _register(client), 75.3, 75.0, (0.1, 0.5), min_improvement=0.0).promoted


@pytest.mark.parametrize(("candidate", "interval", "promoted"), [(0.9, (-0.15, -0.05), True),
                                                                  (1.1, (0.05, 0.15), False),
                                                                  (0.9, (-0.15, 0.02), False)])
def test_lower_is_better_metrics(client: MlflowClient, candidate: float, interval: tuple, promoted: bool) -> None:
    champion = _register(client)
    _settle(client, champion, 1.0, higher=False)
    version = _register(client)
    decision = _settle(client, version, candidate, 1.0, interval, higher=False, min_improvement=0.05)
    assert decision.promoted is promoted
    assert _champion(client) == (version if promoted else champion)


def test_non_finite_candidate_never_wins(client: MlflowClient) -> None:
    decision = _settle(client, _register(client), float("nan"))
    assert not decision.promoted and _champion(client) is None and "not a finite number" in decision.reason


def test_versions_of_different_cards_are_never_compared(client: MlflowClient) -> None:
    mine = model_version(client, NAME, _register(client))
    check_same_card(NAME, mine, model_version(client, NAME, _register(client)))  # same card: fine
    other = model_version(client, NAME, _register(client, {**CARD, "dataset_card": "ba9876543210",
                                                           "keypoints": "a,b", "metric": "PCK@0.2"}))
    with pytest.raises(RegistryError, match=r"'hg-test' candidate version 1 \(card 0123456789ab, 3 keypoints, "
                                            r"PCKh@0.5\) and champion version 3 \(card ba9876543210, 2 keypoints, "
                                            r"PCK@0.2\) are not compared: their dataset_card, keypoints, metric "
                                            r"differ"):
        check_same_card(NAME, mine, other)
    untagged = model_version(client, NAME, _register(client, {}))
    with pytest.raises(RegistryError, match="version 4 records no dataset_card/keypoints/metric tags"):
        check_same_card(NAME, mine, untagged)


def test_a_candidate_that_competed_on_this_split_needs_no_new_contest(client: MlflowClient) -> None:
    champion = _register(client)
    _settle(client, champion, 80.0)
    candidate = _register(client)
    assert contested_before(model_version(client, NAME, candidate), champion, SPLIT) is None
    _settle(client, candidate, 70.0, 80.0, (-14.0, -6.0))
    mv = model_version(client, NAME, candidate)
    assert contested_before(mv, champion, SPLIT).startswith(
        f"version {candidate} already competed against version {champion} on this split (kept: worse")
    assert contested_before(mv, champion, "b" * 64) is None  # another split: a new contest
    assert contested_before(mv, "9", SPLIT) is None  # another champion: a new contest


def test_a_score_on_a_split_is_kept_with_the_run_and_found_again(client: MlflowClient, mlflow_store: str,
                                                                  tmp_path: Path) -> None:
    version = _register(client)
    mv = model_version(client, NAME, version)
    assert stored_predictions(client, mlflow_store, mv, SPLIT, tmp_path / "none") is None
    preds = tmp_path / "preds.h5"
    preds.write_bytes(b"predictions")
    record_score(client, NAME, mv, SPLIT, preds, "eval/pckh/Mean", 61.5)
    mv = model_version(client, NAME, version)
    assert mv.tags["contest.split_digest"] == SPLIT and float(mv.tags["contest.score"]) == 61.5
    assert mv.tags["contest.preds"] == f"contest/{SPLIT[:16]}/preds.h5"
    found = stored_predictions(client, mlflow_store, mv, SPLIT, tmp_path / "found")
    assert found is not None and found.read_bytes() == b"predictions"
    assert stored_predictions(client, mlflow_store, mv, "b" * 64, tmp_path / "other") is None
    assert "champion_decision" not in mv.tags  # a score is not a decision


def test_unknown_version_names_model_and_version(client: MlflowClient) -> None:
    _register(client)
    with pytest.raises(RegistryError, match=r"'hg-test' version 7 does not exist"):
        model_version(client, NAME, 7)
