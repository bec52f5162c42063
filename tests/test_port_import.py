"""``hourglass import``: a checkpoint of princeton-vl/pytorch_stacked_hourglass becomes one of ours.

The golden bar (issue 15): the port's own fixture checkpoint (``shared/anchor-data/pytorch_stacked_hourglass/
checkpoint-fixture``, a 2-stack 64-feature PoseNet written by that repository's code, see SOURCES.md), once imported,
makes our network reproduce that network's own heatmaps of ``io.npz`` at every stack to float32 rounding. A file
with a missing, a left-over or a mis-shaped tensor is refused with the tensor named and nothing written, and
``hourglass predict`` runs the imported model on the five real MPII images.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hourglass.cli import build_parser, main
from hourglass.config import PORT_PROJECT
from hourglass.inference.predictor import PosePredictor
from hourglass.inference.runner import load_model
from hourglass.inference.trained_on import TrainedOn
from hourglass.io.checkpoint import CheckpointError
from hourglass.model import count_parameters
from hourglass.supervision import final_heatmaps
from hourglass.weights.port import PortImportError, import_port_checkpoint, read_port_state
from hourglass.weights.port_keys import PortArchitecture, port_key_map

pytestmark = pytest.mark.usefixtures("one_thread")

FIXTURE = "pytorch_stacked_hourglass/checkpoint-fixture"
MPII_IMAGES = "mmpose/tests/data/mpii"
FIXTURE_ARCH = PortArchitecture(stacks=2, features=64, joints=16, stem_width=128)
# unused skip_layers of a 2-stack PoseNet: pre.3 (128 -> 128), then per stack 13 hourglass residuals + 1 head
UNUSED_SKIP_LAYERS = 1 + 2 * (13 + 1)


@pytest.fixture(scope="module")
def fixture_dir(anchor_dir: Path) -> Path:
    return anchor_dir / FIXTURE


@pytest.fixture(scope="module")
def imported(fixture_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture imported through the console script, as a user runs it: ``models/port_fixture``."""
    out = tmp_path_factory.mktemp("import") / "models" / "port_fixture"
    assert main(["import", str(fixture_dir / "checkpoint.pt"), "--out", str(out),
                 "--source-commit", "ceedc14b9b8814ba641f4a00baa5d0af153588a9"]) == 0
    return out


def test_imported_network_reproduces_the_ports_heatmaps(fixture_dir, imported):
    loaded = load_model(imported)
    model = loaded.model
    assert not model.training
    io = np.load(fixture_dir / "io.npz")
    expected = io["heatmaps"]
    assert expected.shape == (2, 2, 16, 64, 64)
    images = torch.from_numpy(io["input_nhwc"]).permute(0, 3, 1, 2).contiguous()  # the port's NHWC -> our NCHW
    assert images.dtype == torch.float32 and images.shape == (2, 3, 256, 256)
    with torch.no_grad():
        out = model(images).stacks.numpy()
        final = final_heatmaps(model(images).stacks, model.config.supervision).numpy()
    assert out.shape == expected.shape and out.dtype == np.float32
    for stack in range(2):
        diff = float(np.abs(out[:, stack] - expected[:, stack]).max())
        print(f"stack {stack + 1}: max abs difference {diff:.3e}")
        assert diff < 1e-4, f"stack {stack + 1}: max abs difference {diff}"
    # what the model predicts with (supervision intermediate: the last stack)
    assert np.abs(final - expected[:, -1]).max() < 1e-4


def test_imported_checkpoint_records_its_source_and_loads_everywhere(fixture_dir, imported):
    state = torch.load(imported / "checkpoint.pt", map_location="cpu", weights_only=True)
    config = state["config"]
    assert config["dataset"] == "mpii"
    assert config["model"] == {"stacks": 2, "features": 64, "modules": 1, "supervision": "intermediate",
                               "stem_width": 128, "input_res": 256}
    source = config["imported_from"]
    digest = hashlib.sha256((fixture_dir / "checkpoint.pt").read_bytes()).hexdigest()
    assert source["sha256"] == digest and source["project"] == PORT_PROJECT
    assert source["commit"] == "ceedc14b9b8814ba641f4a00baa5d0af153588a9" and source["epoch"] == 7
    assert Path(source["path"]) == (fixture_dir / "checkpoint.pt").resolve()
    assert source["dropped_unused_skip_layers"] == UNUSED_SKIP_LAYERS
    assert source["dropped_tensors"] == 2 * UNUSED_SKIP_LAYERS
    assert state["variant"] == "port_fixture" and state["epoch"] == 7
    loaded = load_model(imported)
    # the port registers 678,240 parameters (SOURCES.md), of which the unused 1x1 skips hold 16,512 + 28 x 4,160
    assert count_parameters(loaded.model) == 678_240 - (128 * 128 + 128) - 28 * (64 * 64 + 64)
    assert len(state["model"]) == 742 - 2 * UNUSED_SKIP_LAYERS
    trained = TrainedOn.from_checkpoint(state, imported)
    assert trained.dataset == "mpii" and trained.joint_set == "mpii" and trained.epoch == 7
    assert trained.score is None and trained.target_scale == 1.0
    predictor = PosePredictor.from_checkpoint(imported, device="cpu", precision="fp32")
    assert predictor.flip and predictor.input_res == 256 and predictor.joints.count == 16


def test_mapping_pairs_every_tensor_of_both_networks_once(fixture_dir, imported):
    port, prefix, epoch = read_port_state(fixture_dir / "checkpoint.pt")
    assert prefix == "model.module." and epoch == 7 and len(port) == 742
    mapping, unused = port_key_map(FIXTURE_ARCH)
    ours = load_model(imported).model.state_dict()
    assert set(mapping) == set(ours)
    assert sorted([*mapping.values(), *unused]) == sorted(port)
    assert all(key.endswith((".skip_layer.conv.weight", ".skip_layer.conv.bias")) for key in unused)
    # the used skips are exactly the stem's width changes: 64 -> 128 and 128 -> 64 features
    assert sorted(k for k in mapping.values() if "skip_layer" in k) == [
        "pre.1.skip_layer.conv.bias", "pre.1.skip_layer.conv.weight",
        "pre.4.skip_layer.conv.bias", "pre.4.skip_layer.conv.weight"]
    weights = torch.load(imported / "checkpoint.pt", weights_only=True)["model"]
    for key, source in mapping.items():
        assert torch.equal(weights[key], port[source]), key


@pytest.mark.parametrize("form", ["bare-with-prefix", "bare-without-prefix"])
def test_bare_state_dicts_import_the_same(fixture_dir, imported, tmp_path, form):
    state = torch.load(fixture_dir / "checkpoint.pt", map_location="cpu", weights_only=True)["state_dict"]
    if form == "bare-without-prefix":
        state = {key.removeprefix("model.module."): value for key, value in state.items()}
    path = tmp_path / "bare.pt"
    torch.save(state, path)
    result = import_port_checkpoint(path, tmp_path / "bare")
    assert result.epoch is None and result.dropped_layers == UNUSED_SKIP_LAYERS and not result.filled
    assert result.prefix == ("model.module." if form == "bare-with-prefix" else "")
    mine = torch.load(result.path, weights_only=True)["model"]
    reference = torch.load(imported / "checkpoint.pt", weights_only=True)["model"]
    assert mine.keys() == reference.keys() and all(torch.equal(mine[k], reference[k]) for k in mine)


def test_a_file_without_batchnorm_counters_imports_with_them_set_to_zero(fixture_dir, imported, tmp_path):
    """PyTorch before 0.4.1 saved no ``num_batches_tracked`` (the port's README: tested with 0.4); eval ignores it."""
    raw = torch.load(fixture_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    counters = [k for k in raw["state_dict"] if k.endswith(".num_batches_tracked")]
    raw["state_dict"] = {k: v for k, v in raw["state_dict"].items() if k not in counters}
    torch.save(raw, tmp_path / "old.pt")
    result = import_port_checkpoint(tmp_path / "old.pt", tmp_path / "old")
    assert len(result.filled) == len(counters) > 0 and "num_batches_tracked set to 0" in result.summary()
    mine = torch.load(result.path, weights_only=True)
    assert mine["config"]["imported_from"]["filled_num_batches_tracked"] == len(counters)
    reference = torch.load(imported / "checkpoint.pt", weights_only=True)["model"]
    for key, value in mine["model"].items():
        expected = torch.zeros_like(value) if key in result.filled else reference[key]
        assert torch.equal(value, expected), key


def _broken(fixture_dir: Path, tmp_path: Path, kind: str) -> tuple[Path, str]:
    raw = torch.load(fixture_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    state = raw["state_dict"]
    if kind == "missing":
        key = "model.module.hgs.1.0.low2.low2.up1.conv2.conv.weight"
        del state[key]
    elif kind == "extra":
        key = "model.module.features.1.2.conv.weight"
        state[key] = torch.zeros(64, 64, 1, 1)
    else:
        key = "model.module.merge_preds.0.conv.conv.weight"
        state[key] = torch.zeros(64, 17, 1, 1)
    path = tmp_path / f"{kind}.pt"
    torch.save(raw, path)
    return path, key


@pytest.mark.parametrize("kind", ["missing", "extra", "misshaped"])
def test_a_checkpoint_that_does_not_fit_is_refused_naming_the_tensor(fixture_dir, tmp_path, kind, capsys):
    path, named = _broken(fixture_dir, tmp_path, kind)
    out = tmp_path / "models" / kind
    message = {"missing": "missing tensor", "extra": "left-over tensor", "misshaped": r"has shape \(64, 17, 1, 1\)"}
    with pytest.raises(PortImportError, match=rf"{message[kind]}.*{re.escape(named)}|{re.escape(named)}.*"
                                              rf"{message[kind]}") as err:
        import_port_checkpoint(path, out)
    assert isinstance(err.value, CheckpointError)
    assert main(["import", str(path), "--out", str(out)]) == 1
    assert named in capsys.readouterr().err
    assert not (tmp_path / "models").exists()  # nothing written, not even the directory
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_existing_checkpoint_is_kept_unless_forced_and_foreign_files_are_named(fixture_dir, imported, tmp_path):
    out = tmp_path / "port"
    shutil.copytree(imported, out)
    before = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(PortImportError, match="already exists"):
        import_port_checkpoint(fixture_dir / "checkpoint.pt", out)
    assert (out / "checkpoint.pt").read_bytes() == before
    import_port_checkpoint(fixture_dir / "checkpoint.pt", out, overwrite=True, variant="port")
    assert torch.load(out / "checkpoint.pt", weights_only=True)["variant"] == "port"
    with pytest.raises(PortImportError, match="already a stacked-hourglass checkpoint"):
        import_port_checkpoint(out / "checkpoint.pt", tmp_path / "again")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(PortImportError, match="junk.pt: not a readable checkpoint"):
        import_port_checkpoint(junk, tmp_path / "junk")
    assert not (tmp_path / "again").exists() and not (tmp_path / "junk").exists()


def test_predict_runs_the_imported_model_on_the_real_mpii_images(anchor_dir, imported, tmp_path, capsys):
    images = sorted((anchor_dir / MPII_IMAGES).glob("*.jpg"))
    assert len(images) == 5
    out = tmp_path / "poses.json"
    rc = main(["predict", *map(str, images), "--model", str(imported), "--json", str(out), "--precision", "fp32",
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "trained on: mpii (real photos), variant port_fixture, epoch 7" in err
    document = json.loads(out.read_text())
    assert document["trained_on"]["dataset"] == "mpii" and document["trained_on"]["score"] is None
    assert [Path(r["image"]).name for r in document["images"]] == [p.name for p in images]
    for record in document["images"]:
        [person] = record["people"]
        keypoints = np.array(person["keypoints"])
        assert keypoints.shape == (16, 3) and np.isfinite(keypoints).all()


def test_import_options_are_explained():
    port = build_parser()._subparsers._group_actions[0].choices["import"]
    for action in port._actions:
        assert action.help, f"option {action.option_strings or action.dest} has no help"


def test_register_logs_the_imported_model_tagged_with_its_source(fixture_dir, tmp_path, mlflow_store):
    import mlflow
    from mlflow import MlflowClient

    from hourglass.weights.source import checkpoint_in_mlflow_model

    uri = mlflow_store
    out = tmp_path / "models" / "port_reg"
    try:
        assert main(["import", str(fixture_dir / "checkpoint.pt"), "--out", str(out), "--register", "hg-port",
                     "--tracking-uri", uri]) == 0
        client = MlflowClient(tracking_uri=uri)
        version = client.get_model_version("hg-port", "1")
        digest = hashlib.sha256((fixture_dir / "checkpoint.pt").read_bytes()).hexdigest()
        assert version.tags["source.sha256"] == digest and version.tags["source.project"] == PORT_PROJECT
        assert version.tags["variant"] == "port_reg" and version.tags["dataset"] == "mpii"
        local = Path(mlflow.artifacts.download_artifacts("models:/hg-port/1", dst_path=str(tmp_path / "dl"),
                                                         tracking_uri=uri))
        served = load_model(checkpoint_in_mlflow_model(local, "models:/hg-port/1"))
        assert served.config["imported_from"]["sha256"] == digest
        written = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
        assert all(torch.equal(v, written[k]) for k, v in served.model.state_dict().items())
    finally:
        mlflow.end_run()
