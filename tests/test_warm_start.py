"""Warm start (``flows.warm_start: champion``): a retrain fine-tunes from the champion of its dataset card when the
card and the architecture match, else trains fresh and records why; an explicit ``train.init_from`` wins.

A real MLflow store holds a real champion: a tiny run trained once for the module, logged as the pose pyfunc into
the card's registered model (``hourglass.tracking.store.registered_name``) and given the ``champion`` alias.
The retrains run at a learning rate of 1e-9 with SGD for two steps, so their final weights are their first weights
to within 1e-6: what they started from is read off the network they return.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient
from toy_poses import ToyPoses, tiny_params

from hourglass.config.params_file import parse_params
from hourglass.io.checkpoint import save_checkpoint
from hourglass.io.digest import file_sha256
from hourglass.lineage import Lineage
from hourglass.model import create_model
from hourglass.tracking.store import registered_name
from hourglass.train.init_from import warm_start
from hourglass.train.loop import RESOLVED_CONFIG, TrainResult, train
from hourglass.weights.source import resolve_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

SEED = 3  # tiny_params' training seed
BASE = "hg"  # mlflow.registered_model of the retrains: their card's model is hg-<dataset>


def _params(*, dataset: str = "synthetic", features: int = 16, retrain: bool = True,
            registered_model: str | None = BASE, log_model: bool = False, init_from: str | None = None):
    """tiny_params on ``dataset`` with MLflow on; ``retrain``: warm start on, and two SGD steps at 1e-9 that leave
    the first weights in place; else a normal training run (the champion's), warm start off."""
    train = {"epochs": 1, "steps_per_epoch": 2, **({"optimizer": "sgd", "lr": 1e-9, "schedule": "constant",
                                                    "warmup_steps": 0} if retrain else {}),
             "init_from": init_from}
    raw = tiny_params(**train).model_dump(mode="json")
    raw["dataset"] = dataset
    raw["model"]["features"] = features
    raw["flows"]["warm_start"] = "champion" if retrain else "none"
    raw["mlflow"] = {**raw["mlflow"], "enabled": True, "experiment": "warm", "log_model": log_model,
                     "system_metrics": False, "sweep": None, "registered_model": registered_model}
    return parse_params(raw)


@dataclass(frozen=True)
class Champion:
    uri: str
    name: str  # the registered model the retrains of the synthetic card look up
    result: TrainResult


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory, _migrated_db: Path) -> Iterator[Champion]:
    """A store in which ``hg-synthetic@champion`` is a tiny run trained on the synthetic card (features 16): training
    registers under the card's name, ``<mlflow.registered_model>-<dataset>``."""
    root = tmp_path_factory.mktemp("warm-store")
    shutil.copy(_migrated_db, root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    name = registered_name(_params())
    assert name == f"{BASE}-synthetic"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(root)
        result = train(_params(retrain=False, registered_model=BASE, log_model=True), root / "champion",
                       train_set=ToyPoses(8), val_set=ToyPoses(4, seed=1))
    MlflowClient(tracking_uri=uri).set_registered_model_alias(name, "champion", "1")
    yield Champion(uri, name, result)


@pytest.fixture
def store(champion: Champion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Champion:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion.uri)
    monkeypatch.chdir(tmp_path)
    return champion


def _retrain(params, out: Path, joints: int = 16) -> tuple[TrainResult, dict, Lineage]:
    result = train(params, out, train_set=ToyPoses(8, joints=joints), val_set=ToyPoses(4, seed=1, joints=joints))
    config = yaml.safe_load((out / RESOLVED_CONFIG).read_text())
    lineage = Lineage.from_record(config["lineage"])
    assert lineage is not None
    return result, config, lineage


def _parameters(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in network.named_parameters()}


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)


def _fresh(params, joints: int = 16) -> dict[str, torch.Tensor]:
    """The weights a run of ``params`` starts from without a source (the loop seeds before building the network)."""
    torch.manual_seed(SEED)
    return _parameters(create_model(**params.model.network_kwargs(), joints=joints))


def test_a_retrain_of_the_same_card_and_architecture_starts_from_the_champion(store, tmp_path):
    params = _params()
    champion = {k: v.detach() for k, v in store.result.model.state_dict().items()}
    # the function itself: every tensor, buffers too, is the champion's
    network = create_model(**params.model.network_kwargs(), joints=16)
    started = warm_start(network, params, store.uri)
    assert started.report is not None and started.version == "1"
    assert started.note == f"fine-tuned from models:/{store.name}@champion (version 1)"
    assert all(torch.equal(value, champion[key]) for key, value in network.state_dict().items())

    # a training run: it starts there (not from its seed's fresh weights) and records where, as train.init_from does
    result, config, lineage = _retrain(params, tmp_path / "retrain")
    assert _close(_parameters(result.model), _parameters(store.result.model))
    assert not _close(_parameters(result.model), _fresh(params))
    with tempfile.TemporaryDirectory() as tmp:
        digest = file_sha256(resolve_checkpoint(f"models:/{store.name}/1", tmp, store.uri))
    initialised = config["initialised_from"]
    assert initialised["via"] == "flows.warm_start" and initialised["champion_version"] == "1"
    assert (initialised["source"], initialised["sha256"]) == (f"models:/{store.name}/1", digest)
    assert (lineage.init_source, lineage.init_sha256, lineage.warm_start) == (
        f"models:/{store.name}/1", digest, started.note)
    run = MlflowClient(tracking_uri=store.uri).get_run(result.mlflow_run_id)
    assert run.data.params["init.source"] == f"models:/{store.name}/1" and run.data.params["init.sha256"] == digest
    assert run.data.tags["lineage.warm_start"] == started.note


def test_another_architecture_trains_fresh_and_says_why(store, tmp_path):
    params = _params(features=8)
    result, config, lineage = _retrain(params, tmp_path / "narrow")
    assert _close(_parameters(result.model), _fresh(params))
    assert "initialised_from" not in config and lineage.init_source is None
    assert lineage.warm_start == (
        f"trained fresh: another architecture: models:/{store.name}@champion (version 1) is stacks=1, modules=1, "
        "features=16, supervision=intermediate, stem_width=128, input_res=64, this run's model section is "
        "stacks=1, modules=1, features=8, supervision=intermediate, stem_width=128, input_res=64")
    run = MlflowClient(tracking_uri=store.uri).get_run(result.mlflow_run_id)
    assert run.data.tags["lineage.warm_start"] == lineage.warm_start and "init.source" not in run.data.params


def test_a_champion_of_another_card_is_not_a_starting_point(store, tmp_path):
    # the synthetic card's model registered, by mistake, where the synthetic_flic card's champion is looked up
    params = _params(dataset="synthetic_flic")
    name = registered_name(params)
    client = MlflowClient(tracking_uri=store.uri)
    logged = client.get_model_version(store.name, "1")
    client.create_registered_model(name)
    version = client.create_model_version(name, logged.source, logged.run_id, tags=logged.tags).version
    client.set_registered_model_alias(name, "champion", version)
    result, config, lineage = _retrain(params, tmp_path / "flic", joints=11)
    assert _close(_parameters(result.model), _fresh(params, joints=11)) and "initialised_from" not in config
    assert lineage.warm_start is not None
    assert lineage.warm_start.startswith(f"trained fresh: another card: models:/{name}@champion (version 1) "
                                         f"records card synthetic {logged.tags['lineage.card_digest'][:12]}, "
                                         f"this run's is card synthetic_flic {lineage.card_digest[:12]}")


def test_an_explicit_init_from_wins_over_the_warm_start(store, tmp_path):
    source = tmp_path / "other.pt"
    torch.manual_seed(11)
    other = create_model(stacks=1, features=16, joints=16)
    save_checkpoint({"model": other.state_dict()}, source)
    result, config, lineage = _retrain(_params(init_from=str(source)), tmp_path / "explicit")
    assert _close(_parameters(result.model), _parameters(other))
    assert config["initialised_from"]["via"] == "train.init_from" and lineage.init_source == str(source)
    assert lineage.warm_start == f"not used: train.init_from ({source}) is set, and wins"


def test_no_champion_yet_trains_fresh(mlflow_store, tmp_path):
    params = _params()
    network = create_model(**params.model.network_kwargs(), joints=16)
    before = _parameters(network)
    started = warm_start(network, params, mlflow_store)
    assert started.report is None and _close(_parameters(network), before)
    assert started.note == (f"trained fresh: no champion yet (models:/{BASE}-synthetic@champion does not exist in "
                            f"{mlflow_store})")
    MlflowClient(tracking_uri=mlflow_store).create_registered_model(f"{BASE}-synthetic")  # a name, no alias yet
    assert warm_start(network, params, mlflow_store).note == started.note
    result, config, lineage = _retrain(params, tmp_path / "first")
    assert _close(_parameters(result.model), _fresh(params)) and lineage.warm_start == started.note
    assert warm_start(network, _params(registered_model=None), mlflow_store).note == (
        "trained fresh: mlflow.registered_model is null, so there is no champion to start from")


def test_a_resumed_warm_start_keeps_its_record_and_turning_it_off_starts_fresh(store, tmp_path, caplog):
    out = tmp_path / "resumed"
    _, first, lineage = _retrain(_params(), out)
    with caplog.at_level("INFO", logger="hourglass.train"):
        _, again, resumed = _retrain(_params(), out)  # the checkpoint is this run's: resumed, no second warm start
    assert "resuming" in caplog.text and "flows.warm_start=champion" not in caplog.text
    assert again["initialised_from"] == first["initialised_from"] and resumed.warm_start == lineage.warm_start
    caplog.clear()
    off = _params().model_dump(mode="json")
    off["flows"]["warm_start"] = "none"
    with caplog.at_level("INFO", logger="hourglass.train"):
        result, config, fresh = _retrain(parse_params(off), out)  # another configuration: not resumed
    assert "starting fresh, not resuming" in caplog.text and "config differs" in caplog.text
    assert "initialised_from" not in config and fresh.warm_start is None
    assert _close(_parameters(result.model), _fresh(parse_params(off)))
