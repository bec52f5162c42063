"""Fine-tuning (``train.init_from``): a run starts from another model's weights with a fresh optimiser and schedule.

The source is the official PyTorch port's own fixture checkpoint (``shared/anchor-data/pytorch_stacked_hourglass/
checkpoint-fixture``: a 2-stack, 64-feature, 16-joint PoseNet) imported with ``hourglass import``, as a user starts
from the released weights. With 16 joints every tensor is the source's; with 11 (FLIC's joint set) only the
joint-count layers start fresh; the run trains (its loss falls), records where its weights came from in its
config, checkpoint and MLflow params, and an MLflow model URI works as a source as a path does.
"""

from __future__ import annotations

import hashlib
import logging
from itertools import pairwise
from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient
from shipped import recipe_raw
from toy_poses import ToyPoses

from hourglass.cli import main
from hourglass.config.params_file import parse_params
from hourglass.io.checkpoint import CHECKPOINT_NAME, load_checkpoint
from hourglass.model import create_model
from hourglass.train.init_from import InitFromError, initialise_from
from hourglass.train.loop import RESOLVED_CONFIG, train

pytestmark = pytest.mark.usefixtures("one_thread")

FIXTURE = "pytorch_stacked_hourglass/checkpoint-fixture/checkpoint.pt"
RES = 64  # the port's network runs at any multiple of 64 px: 16 x 16 heatmaps here
ARCH = {"stacks": 2, "features": 64, "modules": 1, "stem_width": 128, "supervision": "intermediate"}
# what depends on the joint count in a 2-stack network: each stack's heatmap layer and the one remap between them
JOINT_LAYERS = ("heatmaps.0", "heatmaps.1", "remap_heatmaps.0")


@pytest.fixture(scope="module")
def imported(anchor_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The port's fixture after ``hourglass import``: ``models/port_fixture/``."""
    out = tmp_path_factory.mktemp("init") / "models" / "port_fixture"
    assert main(["import", str(anchor_dir / FIXTURE), "--out", str(out)]) == 0
    return out


def _network(joints: int, **model) -> torch.nn.Module:
    kwargs = {**ARCH, **model}
    return create_model(stacks=kwargs["stacks"], features=kwargs["features"], modules=kwargs["modules"],
                        supervision=kwargs["supervision"], stem_width=kwargs["stem_width"], joints=joints)


def _source(imported: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(imported / CHECKPOINT_NAME)["model"]


def test_same_joints_take_every_tensor_from_the_source(imported):
    network = _network(16)
    report = initialise_from(network, imported)
    source = _source(imported)
    assert report.reinitialised == () and report.dropped == () and report.loaded == len(source)
    assert all(torch.equal(value, source[key]) for key, value in network.state_dict().items())
    assert report.sha256 == hashlib.sha256((imported / CHECKPOINT_NAME).read_bytes()).hexdigest()


def test_other_joint_count_reinitialises_only_the_heads(imported):
    torch.manual_seed(5)
    network = _network(11)
    fresh = {k: v.clone() for k, v in network.state_dict().items()}
    report = initialise_from(network, imported)
    source = _source(imported)
    assert report.reinitialised == JOINT_LAYERS and (report.source_joints, report.joints) == (16, 11)
    assert "re-initialised heatmaps.0, heatmaps.1, remap_heatmaps.0 (the source predicts 16 joints, this data 11)" \
        in report.describe()
    for key, value in network.state_dict().items():
        if key.rsplit(".", 1)[0] in JOINT_LAYERS:
            assert torch.equal(value, fresh[key]), key  # the whole layer, its bias too (remap_heatmaps.0.bias fits)
        else:
            assert torch.equal(value, source[key]), key
    assert report.loaded == len(source) - sum(1 for k in source if k.rsplit(".", 1)[0] in JOINT_LAYERS)


def test_training_only_heads_start_fresh_when_the_source_has_none(imported):
    network = _network(16, supervision="resolutions")  # HG-Int's heads at 1/2, 1/4, 1/8 of the output
    report = initialise_from(network, imported)
    assert report.reinitialised == ("auxiliary_heatmaps.0", "auxiliary_heatmaps.1", "auxiliary_heatmaps.2")
    assert "the source has no such layers" in report.describe()


@pytest.mark.parametrize(("model", "named"), [
    ({"features": 32}, "'stem.6.body.2.weight' is (32, 128, 1, 1), this network's is (16, 128, 1, 1)"),
    ({"stacks": 1}, "'hourglasses.1.up1.0.body.0.weight' has no place"),
    ({"stacks": 3}, "has no tensor 'hourglasses.2.")])
def test_another_architecture_is_refused_naming_the_tensor(imported, model, named):
    network = _network(16, **model)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    with pytest.raises(InitFromError, match="train.init_from") as err:
        initialise_from(network, imported)
    assert named in str(err.value)
    assert all(torch.equal(v, before[k]) for k, v in network.state_dict().items())  # nothing half-loaded


def test_a_port_file_is_refused_with_the_import_command(anchor_dir):
    with pytest.raises(InitFromError, match="hourglass import FILE --out models/<name>"):
        initialise_from(_network(16), anchor_dir / FIXTURE)
    with pytest.raises(InitFromError, match="not found"):
        initialise_from(_network(16), anchor_dir / "no-such-checkpoint.pt")


def _finetune_params(source: str, epochs: int = 4):
    """The FLIC recipe at test size on the synthetic joint set: 11 joints, so the heads start fresh."""
    return parse_params(recipe_raw("flic", {
        "dataset": "synthetic_flic", "seeds": [1],
        "model": {**ARCH, "input_res": RES},
        "train": {"batch_size": 4, "epochs": epochs, "steps_per_epoch": 6, "val_batch_size": 8, "workers": 0,
                  "precision": "fp32", "deterministic": True, "log_every": 1, "optimizer": "adam", "lr": 1e-3,
                  "schedule": "constant", "warmup_steps": 0, "target_scale": 10.0, "init_from": source},
        "mlflow": {"enabled": True, "experiment": "finetune", "log_model": False, "system_metrics": False,
                   "sweep": None, "registered_model": None}}))


@pytest.fixture
def store(mlflow_store: str) -> str:
    return mlflow_store


def test_finetuning_from_the_imported_port_trains_and_records_its_source(imported, tmp_path, store, caplog):
    params = _finetune_params(str(imported))
    out = tmp_path / "models" / "finetuned"
    with caplog.at_level(logging.INFO, logger="hourglass.train.loop"):
        result = train(params, out, train_set=ToyPoses(24, joints=11), val_set=ToyPoses(8, seed=1, joints=11),
                       variant=None)
    assert "re-initialised heatmaps.0, heatmaps.1, remap_heatmaps.0" in caplog.text
    assert "resuming" not in caplog.text
    # not a resume: the run trains its own epochs from step 0, and its loss falls
    assert result.epochs == 4 and result.steps == 4 * 6
    losses = [h["train/loss"] for h in result.history]
    assert all(b < a for a, b in pairwise(losses)) and losses[-1] < 0.9 * losses[0], losses
    digest = hashlib.sha256((imported / CHECKPOINT_NAME).read_bytes()).hexdigest()
    recorded = yaml.safe_load((out / RESOLVED_CONFIG).read_text())["initialised_from"]
    assert recorded["source"] == str(imported) and recorded["sha256"] == digest
    assert list(recorded["reinitialised"]) == list(JOINT_LAYERS)
    assert load_checkpoint(out / CHECKPOINT_NAME)["initialised_from"] == recorded
    run = MlflowClient(tracking_uri=store).get_run(result.mlflow_run_id)
    assert run.data.params["train.init_from"] == str(imported)
    assert run.data.params["init.sha256"] == digest
    assert run.data.params["init.reinitialised"] == ",".join(JOINT_LAYERS)
    assert run.data.params["init.source_joints"] == "16"


def test_a_registered_model_uri_is_a_source_too(anchor_dir, imported, tmp_path, store):
    assert main(["import", str(anchor_dir / FIXTURE), "--out", str(tmp_path / "models" / "port_reg"),
                 "--register", "hg-port", "--tracking-uri", store]) == 0
    network = _network(16)
    report = initialise_from(network, "models:/hg-port/1", store)
    assert report.source == "models:/hg-port/1" and report.reinitialised == ()
    source = _source(imported)
    assert all(torch.equal(value, source[key]) for key, value in network.state_dict().items())
