"""The champion rule of hourglass.registry against a real MLflow SQLite registry in tmp_path."""

from __future__ import annotations

import mlflow
import mlflow.pytorch
import pytest
import torch
from mlflow import MlflowClient

from hourglass.registry import RegistryError, promote_if_better

NAME = "hg-test"


@pytest.fixture
def client(mlflow_store: str) -> MlflowClient:
    """A fresh registry (conftest's ``mlflow_store``); the fluent API (log_model, load_model) follows it through
    ``MLFLOW_TRACKING_URI``."""
    return MlflowClient(tracking_uri=mlflow_store)


def _register(client: MlflowClient, score: float | None, metric: str = "pckh_mean") -> str:
    """A model version from a run that logged ``metric`` = ``score`` (nothing if None); no model files."""
    run_id = client.create_run("0").info.run_id
    if score is not None:
        client.log_metric(run_id, metric, score)
    client.set_terminated(run_id)
    if not client.search_registered_models(filter_string=f"name = '{NAME}'"):
        client.create_registered_model(NAME)
    return str(client.create_model_version(NAME, source=f"runs:/{run_id}/model", run_id=run_id).version)


def _register_torch(score: float, bias: float) -> str:
    """A real logged model (a 1x1 Linear whose bias identifies it), registered from a run with ``score``."""
    layer = torch.nn.Linear(1, 1)
    with torch.no_grad():
        layer.weight.fill_(0.0)
        layer.bias.fill_(bias)
    with mlflow.start_run():
        mlflow.log_metric("pckh_mean", score)
        info = mlflow.pytorch.log_model(
            layer, name="model", serialization_format="pickle", pip_requirements=["torch"],
            registered_model_name=NAME,
        )
    return str(info.registered_model_version)


def _champion(client: MlflowClient) -> str | None:
    aliases = client.get_registered_model(NAME).aliases
    return str(aliases["champion"]) if "champion" in aliases else None


def _served_bias() -> float:
    model = mlflow.pytorch.load_model(f"models:/{NAME}@champion")
    return float(model(torch.zeros(1, 1)).item())


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_alias_follows_the_better_model_and_resolves_to_it(client: MlflowClient) -> None:
    first = _register_torch(0.50, bias=1.0)
    assert promote_if_better(client, NAME, first, "pckh_mean").promoted
    assert _served_bias() == pytest.approx(1.0)

    better = _register_torch(0.60, bias=2.0)
    decision = promote_if_better(client, NAME, better, "pckh_mean")
    assert decision.promoted and decision.champion_version == first
    assert _champion(client) == better and _served_bias() == pytest.approx(2.0)

    worse = _register_torch(0.55, bias=3.0)
    decision = promote_if_better(client, NAME, worse, "pckh_mean")
    assert not decision.promoted and decision.serving_version == better
    assert _champion(client) == better and _served_bias() == pytest.approx(2.0)


def test_first_model_becomes_champion_and_the_decision_is_tagged(client: MlflowClient) -> None:
    version = _register(client, 0.42)
    decision = promote_if_better(client, NAME, version, "pckh_mean")
    assert decision.promoted and decision.champion_version is None and decision.champion_score is None
    assert decision.candidate_score == pytest.approx(0.42)
    assert "no model held the alias" in decision.reason
    assert _champion(client) == version

    mv = client.get_model_version(NAME, version)
    assert mv.tags["champion_decision"] == "promoted"
    assert float(mv.tags["candidate_score"]) == pytest.approx(0.42)
    assert mv.tags["champion_score"] == "none"
    run_tags = client.get_run(mv.run_id).data.tags
    assert run_tags["champion_decision"] == "promoted" and run_tags["champion_score"] == "none"


def test_worse_candidate_keeps_champion_and_records_both_scores(client: MlflowClient) -> None:
    champion = _register(client, 0.80)
    promote_if_better(client, NAME, champion, "pckh_mean")
    candidate = _register(client, 0.70)
    decision = promote_if_better(client, NAME, candidate, "pckh_mean")

    assert not decision.promoted
    assert (decision.candidate_score, decision.champion_score) == pytest.approx((0.70, 0.80))
    assert decision.champion_version == champion and _champion(client) == champion
    mv = client.get_model_version(NAME, candidate)
    assert mv.tags["champion_decision"] == "kept"
    assert float(mv.tags["champion_score"]) == pytest.approx(0.80)
    assert float(mv.tags["candidate_score"]) == pytest.approx(0.70)
    assert mv.tags["champion_version"] == champion
    assert client.get_run(mv.run_id).data.tags["champion_decision"] == "kept"


def test_tie_keeps_the_champion(client: MlflowClient) -> None:
    champion = _register(client, 0.75)
    promote_if_better(client, NAME, champion, "pckh_mean")
    decision = promote_if_better(client, NAME, _register(client, 0.75), "pckh_mean")
    assert not decision.promoted and "tie" in decision.reason
    assert _champion(client) == champion


@pytest.mark.parametrize(("candidate", "promoted"), [(0.9, True), (1.1, False)])
def test_lower_is_better_metrics(client: MlflowClient, candidate: float, promoted: bool) -> None:
    champion = _register(client, 1.0, metric="val_loss")
    promote_if_better(client, NAME, champion, "val_loss", higher_is_better=False)
    version = _register(client, candidate, metric="val_loss")
    decision = promote_if_better(client, NAME, version, "val_loss", higher_is_better=False)
    assert decision.promoted is promoted
    assert _champion(client) == (version if promoted else champion)


def test_rerun_of_the_champion_is_not_a_promotion(client: MlflowClient) -> None:
    version = _register(client, 0.6)
    promote_if_better(client, NAME, version, "pckh_mean")
    decision = promote_if_better(client, NAME, version, "pckh_mean")
    assert not decision.promoted and "already holds" in decision.reason
    assert decision.serving_version == version


def test_non_finite_candidate_never_wins(client: MlflowClient) -> None:
    decision = promote_if_better(client, NAME, _register(client, float("nan")), "pckh_mean")
    assert not decision.promoted and _champion(client) is None


def test_missing_metric_is_an_error_unless_a_score_is_given(client: MlflowClient) -> None:
    version = _register(client, None)
    with pytest.raises(RegistryError, match="logged no 'pckh_mean' metric"):
        promote_if_better(client, NAME, version, "pckh_mean")
    assert promote_if_better(client, NAME, version, "pckh_mean", candidate_score=0.3).promoted


def test_champion_without_run_metric_falls_back_to_its_recorded_score(client: MlflowClient) -> None:
    champion = _register(client, None)
    promote_if_better(client, NAME, champion, "pckh_mean", candidate_score=0.65)  # tags candidate_score=0.65
    decision = promote_if_better(client, NAME, _register(client, 0.6), "pckh_mean")
    assert not decision.promoted and decision.champion_score == pytest.approx(0.65)

    with pytest.raises(RegistryError, match="cannot be compared"):
        promote_if_better(client, NAME, _register(client, 0.6, metric="pck"), "pck")


def test_unknown_version_names_model_and_version(client: MlflowClient) -> None:
    _register(client, 0.5)
    with pytest.raises(RegistryError, match=r"'hg-test' version 7 does not exist"):
        promote_if_better(client, NAME, 7, "pckh_mean")
