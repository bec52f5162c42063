"""The evaluate stage end to end on a tiny synthetic set: the output contract, the flip test, per-stack scores,
agreement with the evaluator CLI, an oracle model that must score ~100 %, and clear errors for bad checkpoints.

The network is a freshly initialised 2-stack model saved in the checkpoint format (no training: the stage's
mechanics do not depend on how good the weights are); the oracle replaces its forward pass by the ground-truth
Gaussians of each input, which proves the decode / flip / un-crop chain end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from shipped import write_params

from hourglass.config.params_file import load_params
from hourglass.data.dataset import create_dataset
from hourglass.geometry import transform_points
from hourglass.heatmaps import flip_heatmaps, heatmaps_to_image
from hourglass.inference.runner import load_model, predict_dataset
from hourglass.io.annotations import read_annotations
from hourglass.io.checkpoint import save_checkpoint
from hourglass.joints import MPII
from hourglass.model import HeatmapOutputs, StackedHourglass, create_model
from hourglass.precision import select_precision
from pipeline.evaluate import main

TINY_PARAMS = """\
dataset: synthetic
seeds: [0]
model: {stacks: 2, features: 16, input_res: 64}
targets: {flip_test: %(flip)s}
synthetic: {train_images: 1, valid_images: 6, workers: 1}
preprocess: {workers: 1}
train: {steps_per_epoch: null, val_batch_size: 4, workers: 0, precision: fp32, channels_last: false,
        variants: {tiny: {}}}
mlflow: {enabled: false}
"""


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """params files (flip on/off), raw + processed synthetic data, and a 2-stack checkpoint."""
    from hourglass.data.preprocess import preprocess
    from hourglass.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("eval-stage")
    write_params(root / "params.yaml", TINY_PARAMS % {"flip": "true"})
    write_params(root / "params-noflip.yaml", TINY_PARAMS % {"flip": "false"})
    params = load_params(root / "params.yaml")
    generate_dataset(params.synthetic, root / "raw", progress=False)
    preprocess(root / "raw", root / "processed", params, progress=False)
    torch.manual_seed(0)
    model = create_model(stacks=2, features=16, joints=16)
    save_checkpoint({"model": model.state_dict(), "config": params.model_dump(mode="json"), "variant": "tiny",
                     "epoch": 1}, root / "models" / "tiny" / "checkpoint.pt")
    return {"root": root, "params": root / "params.yaml", "noflip": root / "params-noflip.yaml",
            "raw": root / "raw", "data": root / "processed", "model": root / "models" / "tiny",
            "gt": root / "raw" / "annot" / "valid.h5"}


def run(setup: dict[str, Path], out: Path, params: str = "params", model: Path | None = None) -> int:
    return main(["--variant", "tiny", "--model", str(model or setup["model"]), "--params", str(setup[params]),
                 "--data", str(setup["data"]), "--gt", str(setup["gt"]), "--out", str(out), "--no-progress"])


@pytest.fixture(scope="module")
def flip_on(setup, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("flip-on")
    assert run(setup, out) == 0
    return out


def test_outputs_follow_the_contract(setup, flip_on):
    gt = read_annotations(setup["gt"])
    n, joints = len(gt), gt.num_joints
    metrics = json.loads((flip_on / "metrics.json").read_text())
    assert metrics["variant"] == "tiny" and metrics["dataset"] == "synthetic" and metrics["metric"] == "PCKh@0.5"
    assert metrics["flip_test"] is True  # targets.flip_test is on by default
    assert metrics["num_people"] == n and metrics["people_missing"] == 0
    assert metrics["parameters"] == sum(p.numel() for p in create_model(stacks=2, features=16).parameters())
    assert set(metrics["final"]) >= {"Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean",
                                     "Mean_unweighted", "Mean@0.1", "figure4"}
    assert list(metrics["per_joint"]) == list(MPII.names)
    assert [s["stack"] for s in metrics["stacks"]] == [1, 2]
    assert all(set(s) == {"stack", "metrics", "per_joint"} and len(s["per_joint"]) == joints
               for s in metrics["stacks"])
    # intermediate supervision: the final prediction is the last stack's
    assert metrics["stacks"][-1]["metrics"] == metrics["final"]
    assert metrics["seconds"] > 0 and metrics["images_per_s"] > 0
    with h5py.File(flip_on / "preds.h5") as h5:
        assert h5["preds"].shape == (n, joints, 2) and h5["stack_preds"].shape == (n, 2, joints, 2)
        assert h5["maxvals"].shape == (n, joints) and h5["stack_maxvals"].shape == (n, 2, joints)
        np.testing.assert_array_equal(h5["rows"][()], np.arange(n))
        np.testing.assert_array_equal(h5["preds"][()], h5["stack_preds"][:, -1])
        assert np.isfinite(h5["preds"][()]).all()


def test_cli_scores_preds_h5_as_the_stage_did(setup, flip_on, capsys):
    from hourglass.cli.score import main as evaluate_cli

    assert evaluate_cli([str(flip_on / "preds.h5"), "--gt", str(setup["gt"]), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    metrics = json.loads((flip_on / "metrics.json").read_text())
    assert cli["Mean"] == pytest.approx(metrics["final"]["Mean"], abs=1e-9)
    assert cli["Mean_unweighted"] == pytest.approx(metrics["final"]["Mean_unweighted"], abs=1e-9)


def test_flip_test_changes_the_predictions(setup, flip_on, tmp_path):
    assert run(setup, tmp_path, params="noflip") == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["flip_test"] is False
    with h5py.File(flip_on / "preds.h5") as on, h5py.File(tmp_path / "preds.h5") as off:
        assert not np.allclose(on["maxvals"][()], off["maxvals"][()])
        assert not np.array_equal(on["stack_preds"][()], off["stack_preds"][()])


def test_a_variants_targets_override_reaches_the_stage(setup, tmp_path):
    """``train.variants.tiny.targets.flip_test: false`` under a params file with the flip test on: the stage scores
    as the no-flip params do."""
    text = (TINY_PARAMS % {"flip": "true"}).replace("variants: {tiny: {}}",
                                                    "variants: {tiny: {targets: {flip_test: false}}}")
    write_params(tmp_path / "params-variant.yaml", text)
    with_variant = {**setup, "variant": tmp_path / "params-variant.yaml"}
    assert run(with_variant, tmp_path / "variant", params="variant") == 0
    assert run(setup, tmp_path / "noflip", params="noflip") == 0
    with h5py.File(tmp_path / "variant" / "preds.h5") as by_variant, \
            h5py.File(tmp_path / "noflip" / "preds.h5") as off:
        assert np.array_equal(by_variant["preds"][()], off["preds"][()])
    assert json.loads((tmp_path / "variant" / "metrics.json").read_text())["flip_test"] is False


def test_ground_truth_heatmaps_score_about_100(setup, tmp_path, monkeypatch):
    """An oracle whose heatmaps are the targets of its input (mirrored for the mirrored input)."""
    params = load_params(setup["params"])
    dataset = create_dataset(setup["data"], "valid", params, train=False)
    samples = [dataset[i] for i in range(len(dataset))]
    images = torch.stack([s["image"] for s in samples])
    targets = torch.stack([s["target"] for s in samples])
    perm = dataset.joint_set.flip

    def oracle(self: StackedHourglass, batch: torch.Tensor) -> HeatmapOutputs:
        maps = []
        for image in batch:
            direct = (images == image).flatten(1).all(1)
            mirrored = (images.flip(-1) == image).flatten(1).all(1)
            if direct.any():
                maps.append(targets[int(direct.nonzero()[0])])
            else:
                assert mirrored.any(), "the oracle got an image that is not a validation crop or its mirror"
                maps.append(flip_heatmaps(targets[int(mirrored.nonzero()[0])], perm))
        return HeatmapOutputs(torch.stack(maps)[:, None].expand(-1, self.stacks, -1, -1, -1)
                              + 0 * self.heatmaps[0].bias.sum())

    monkeypatch.setattr(StackedHourglass, "forward", oracle)
    assert run(setup, tmp_path) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["final"]["Mean"] >= 99.0, metrics["final"]
    assert all(s["metrics"]["Mean"] == metrics["final"]["Mean"] for s in metrics["stacks"])
    # Exactly the nearest heatmap pixel of every joint, mapped back to the image, in 1-based preds.h5: the targets
    # peak on that pixel, its neighbours tie (no quarter step), and the mirrored pass mirrors back onto it.
    gt = read_annotations(setup["gt"])
    hm_res = params.model.input_res // 4
    on_map = transform_points(gt.joints, gt.center, gt.scale, hm_res)
    expected = heatmaps_to_image(np.floor(on_map + 0.5), gt.center, gt.scale, hm_res)
    with h5py.File(tmp_path / "preds.h5") as h5:
        preds = h5["preds"][()] - 1.0
    tie = (np.abs(on_map - np.floor(on_map) - 0.5) < 1e-6).any(axis=2)  # rounding could go either way
    nearest = np.floor(on_map + 0.5)
    inside = ((nearest >= 0) & (nearest <= hm_res - 1)).all(axis=2)  # outside, the target's peak is cut off
    check = gt.annotated & ~tie & inside
    assert check.sum() > 0.9 * gt.annotated.sum()
    np.testing.assert_allclose(preds[check], expected[check], atol=1e-6)


def test_library_flip_average_of_a_mirror_symmetric_pair(setup):
    """predict_dataset with and without the flip test on the real network: same people, rows, shapes; the flip-off
    final heatmaps are the last stack's decoded in the image (checked against the stack entries)."""
    params = load_params(setup["params"])
    loaded = load_model(setup["model"])
    assert loaded.variant == "tiny" and loaded.model.stacks == 2 and not loaded.model.training
    dataset = create_dataset(setup["data"], "valid", params, train=False)
    precision = select_precision("fp32", torch.device("cpu"), False)
    off = predict_dataset(loaded.model, dataset, precision, batch_size=4)
    on = predict_dataset(loaded.model, dataset, precision, flip_perm=dataset.joint_set.flip, batch_size=4)
    np.testing.assert_array_equal(off.rows, on.rows)
    np.testing.assert_array_equal(off.coords, off.stack_coords[:, -1])
    assert off.coords.shape == (len(dataset), 16, 2) and off.stack_coords.shape == (len(dataset), 2, 16, 2)
    assert not np.allclose(on.maxvals, off.maxvals)


@pytest.mark.parametrize("content", [None, b"not a checkpoint", b""])
def test_missing_or_corrupt_checkpoint_is_a_clear_error(setup, tmp_path, capsys, content):
    path = tmp_path / "model" / "checkpoint.pt"
    if content is not None:
        path.parent.mkdir()
        path.write_bytes(content)
    assert run(setup, tmp_path / "out", model=path) == 1
    err = capsys.readouterr().err
    assert str(path) in err and ("not found" in err or "not a readable checkpoint" in err)
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_checkpoint_of_another_variant_is_refused(setup, tmp_path, capsys):
    state = torch.load(setup["model"] / "checkpoint.pt", weights_only=True)
    save_checkpoint({k: v for k, v in state.items() if k != "format_version"} | {"variant": "other"},
                    tmp_path / "checkpoint.pt")
    assert run(setup, tmp_path / "out", model=tmp_path) == 1
    assert "'other'" in capsys.readouterr().err


def test_seed_picks_the_model_directory_and_must_match_the_checkpoint(setup, tmp_path, monkeypatch, capsys):
    """`--seed N` scores models/<variant>/seed-N/ into its eval/ (the dvc.yaml layout); a checkpoint trained from
    another seed is refused, naming both."""
    state = torch.load(setup["model"] / "checkpoint.pt", weights_only=True)
    state = {k: v for k, v in state.items() if k != "format_version"}
    for seed in (1, 2):
        config = {**state["config"], "seed": seed}
        save_checkpoint({**state, "config": config}, tmp_path / "models" / "tiny" / f"seed-{seed}" / "checkpoint.pt")
    monkeypatch.chdir(tmp_path)
    common = ["--variant", "tiny", "--params", str(setup["params"]), "--data", str(setup["data"]), "--gt",
              str(setup["gt"]), "--no-progress"]
    assert main([*common, "--seed", "2"]) == 0
    assert "evaluate@tiny-2: PCKh@0.5 Mean" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "models" / "tiny" / "seed-2" / "eval" / "metrics.json").read_text())
    assert metrics["seed"] == 2 and metrics["checkpoint"].endswith("seed-2/checkpoint.pt")
    assert not (tmp_path / "models" / "tiny" / "seed-1" / "eval").exists()
    assert main([*common, "--seed", "1", "--model", "models/tiny/seed-2"]) == 1
    assert "trained from seed 2, not 1" in capsys.readouterr().err
    assert main([*common, "--seed", "0"]) == 1  # no models/tiny/seed-0
    assert "seed-0" in capsys.readouterr().err
