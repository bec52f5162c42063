"""``hourglass export`` and the exported runtimes (issue 27, items 1-3 and 6): ONNX and OpenVINO files that carry
their metadata, reproduce torch's heatmaps on real MPII crops to 1e-4 and its keypoints to 0.1 px, score the
synthetic validation split as torch does, run under ``hourglass predict --runtime`` and the served model
(``HOURGLASS_RUNTIME``), and name the missing package when the export extra is not installed.

The network is a seeded, untrained 2-stack, 16-feature model at 128 px whose BatchNorms have random statistics and
affine parameters (folding fresh BatchNorms, mean 0 and variance 1, would prove little). Each export costs ~10 s on
two busy cores, so the files are made once per module.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from shipped import paper, recipe_raw, write_params

from hourglass.cli import main
from hourglass.config.params_file import parse_params
from hourglass.export.deps import MissingPackageError
from hourglass.export.exporter import export_model
from hourglass.export.metadata import PREFIX, MetadataError
from hourglass.inference.inputs import read_image
from hourglass.inference.people import Person
from hourglass.inference.predictor import PosePredictor
from hourglass.inference.runtimes import OnnxRuntime, OpenVinoRuntime, RuntimeChoiceError
from hourglass.io.checkpoint import save_checkpoint
from hourglass.io.digest import file_sha256
from hourglass.joints import MPII
from hourglass.model import create_model

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
pytestmark = pytest.mark.usefixtures("one_thread")

MPII_PEOPLE = "mmpose/tests/data/mpii/test_mpii.json"  # five validation people: image, objpos, scale
RES = 128
HEATMAP_TOL = 1e-4  # max abs difference of fp32 heatmaps, issue 27's bar
PIXEL_TOL = 0.1  # keypoints, original-image pixels


def tiny_network(seed: int = 0) -> torch.nn.Module:
    """The module's network, its BatchNorms given random running statistics and affine parameters."""
    torch.manual_seed(seed)
    network = create_model(stacks=2, features=16, joints=16)
    generator = torch.Generator().manual_seed(seed)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) * 0.4 - 0.2)
            module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) * 0.6 + 0.7)
            module.bias.data.copy_(torch.rand(n, generator=generator) * 0.2 - 0.1)
    return network.eval()


def tiny_params(overrides: dict | None = None):
    return parse_params(recipe_raw("mpii", {"model": {"stacks": 2, "features": 16, "input_res": RES},
                                            **(overrides or {})}))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export-model") / "tiny" / "checkpoint.pt"
    save_checkpoint({"model": tiny_network().state_dict(), "config": tiny_params().model_dump(mode="json"),
                     "variant": "tiny", "epoch": 3}, path)
    return path


@pytest.fixture(scope="module")
def exports(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The checkpoint exported by the command, as ONNX and as OpenVINO IR."""
    root = tmp_path_factory.mktemp("exports")
    for fmt in ("onnx", "openvino"):
        assert main(["export", str(checkpoint.parent), "--format", fmt, "--out", str(root / fmt)]) == 0
    return {"onnx": root / "onnx", "openvino": root / "openvino"}


@pytest.fixture(scope="module")
def real_crops(anchor_dir: Path, checkpoint: Path) -> tuple[np.ndarray, list[Person]]:
    """The five MPII people cropped as ``hourglass predict --center --scale`` crops them."""
    torch_predictor = PosePredictor.from_checkpoint(checkpoint, precision="fp32")
    crops, people = [], []
    for record in json.loads((anchor_dir / MPII_PEOPLE).read_text()):
        image = read_image(anchor_dir / Path(MPII_PEOPLE).parent / record["image"])
        person = Person.from_mpii(record["center"], record["scale"], image.shape[1], image.shape[0])
        crops.append(torch_predictor.crop(image, person))
        people.append(person)
    return np.stack(crops), people


def test_export_carries_the_metadata_and_folds_batchnorm(checkpoint, exports):
    import onnx

    proto = onnx.load(str(exports["onnx"] / "model.onnx"))
    props = {p.key: json.loads(p.value) for p in proto.metadata_props}
    params = tiny_params()
    assert props[f"{PREFIX}input_res"] == RES and props[f"{PREFIX}output_res"] == RES // 4
    assert props[f"{PREFIX}keypoints"] == list(MPII.names)
    assert props[f"{PREFIX}flip_perm"] == list(MPII.flip)
    assert props[f"{PREFIX}target_scale"] == params.train.target_scale
    assert props[f"{PREFIX}dataset_card"] == "mpii"
    assert props[f"{PREFIX}dataset_card_digest"] == params.card().digest()
    assert (props[f"{PREFIX}variant"], props[f"{PREFIX}epoch"]) == ("tiny", 3)
    assert props[f"{PREFIX}checkpoint_sha256"] == file_sha256(checkpoint)
    assert props[f"{PREFIX}network"]["stacks"] == 2

    [image] = proto.graph.input
    assert image.name == "images" and image.type.tensor_type.shape.dim[0].dim_param  # a symbolic batch
    assert [d.dim_value for d in image.type.tensor_type.shape.dim[1:]] == [3, RES, RES]
    # Folded: no BatchNorm reads a convolution's output; the pre-activation ones (3 per residual less the 2
    # that follow a convolution) remain, one per residual module.
    producers = {out: node.op_type for node in proto.graph.node for out in node.output}
    norms = [node for node in proto.graph.node if node.op_type == "BatchNormalization"]
    assert norms and all(producers.get(node.input[0]) != "Conv" for node in norms)
    residuals = sum(type(m).__name__ == "Residual" for m in create_model(stacks=2, features=16).modules())
    assert len(norms) == residuals

    ov = OpenVinoRuntime(exports["openvino"] / "model.xml")
    assert ov.metadata == OnnxRuntime(exports["onnx"] / "model.onnx").metadata
    assert sorted(p.name for p in exports["openvino"].iterdir()) == ["model.bin", "model.xml"]  # no staging left


@pytest.mark.anchor
def test_heatmaps_and_keypoints_match_torch_on_real_crops(checkpoint, exports, real_crops):
    crops, people = real_crops
    torch_predictor = PosePredictor.from_checkpoint(checkpoint, precision="fp32")
    images = torch.from_numpy(crops)
    reference = torch_predictor.runtime(images)
    assert reference.shape == (5, 2, 16, RES // 4, RES // 4) and float(reference.abs().max()) > 0.1
    expected = torch_predictor.predict_crops(crops, people)
    runs = [("onnxruntime", exports["onnx"]), ("openvino", exports["openvino"]), ("openvino", exports["onnx"])]
    for runtime, where in runs:
        exported = PosePredictor.from_source(str(where), runtime=runtime)
        heatmaps = exported.runtime(images)
        diff = float((heatmaps - reference).abs().max())
        one = float((exported.runtime(images[2:3]) - reference[2:3]).abs().max())  # the batch is dynamic
        keypoints = exported.predict_crops(crops, people)
        pixels = float(np.abs(keypoints[..., :2] - expected[..., :2]).max())
        print(f"{runtime} on {where.name}: heatmaps max abs {diff:.2e} (batch 1: {one:.2e}), keypoints max "
              f"{pixels:.2e} px, confidence max {np.abs(keypoints[..., 2] - expected[..., 2]).max():.2e}")
        assert diff <= HEATMAP_TOL and one <= HEATMAP_TOL
        assert pixels <= PIXEL_TOL
        assert np.abs(keypoints[..., 2] - expected[..., 2]).max() <= HEATMAP_TOL / exported.target_scale
        assert exported.flip and exported.joints.names == MPII.names


@pytest.mark.anchor
def test_predict_command_runs_every_runtime_alike(anchor_dir, checkpoint, exports, tmp_path, capsys):
    image = anchor_dir / "mmpose/tests/data/mpii/004645041.jpg"
    answers = {}
    for runtime, model in (("torch", checkpoint.parent), ("onnxruntime", exports["onnx"]),
                           ("openvino", exports["openvino"])):
        out = tmp_path / f"{runtime}.json"
        assert main(["predict", str(image), "--model", str(model), "--runtime", runtime, "--precision", "fp32",
                     "--box", "440,160,840,560", "--json", str(out), "--no-progress"]) == 0
        document = json.loads(out.read_text())
        answers[runtime] = np.array(document["images"][0]["people"][0]["keypoints"])
        if runtime != "torch":
            assert f"{runtime} cpu fp32" in document["model"]
            assert document["trained_on"]["variant"] == "tiny" and document["trained_on"]["epoch"] == 3
    for runtime in ("onnxruntime", "openvino"):
        assert np.abs(answers[runtime][:, :2] - answers["torch"][:, :2]).max() <= PIXEL_TOL
    capsys.readouterr()
    # An export is not a checkpoint: torch refuses it by name; exported runtimes run fp32 on the CPU only.
    assert main(["predict", str(image), "--model", str(exports["onnx"]), "--no-progress"]) == 1
    assert "an exported model; run it with --runtime onnxruntime or openvino" in capsys.readouterr().err
    assert main(["predict", str(image), "--model", str(exports["onnx"]), "--runtime", "onnxruntime",
                 "--precision", "bf16", "--no-progress"]) == 1
    assert "--runtime onnxruntime runs fp32" in capsys.readouterr().err
    with pytest.raises(RuntimeChoiceError, match="model.xml, which --runtime onnxruntime does not run"):
        PosePredictor.from_source(str(exports["openvino"]), runtime="onnxruntime")


def test_a_foreign_onnx_file_is_refused_naming_the_missing_key(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["heatmaps"])], "g",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, [1, 3, 4, 4])])
    onnx.save(helper.make_model(graph), str(tmp_path / "model.onnx"))
    with pytest.raises(MetadataError, match=r"model.onnx: no 'hourglass.format_version' in the model's metadata"):
        PosePredictor.from_source(str(tmp_path), runtime="onnxruntime")


@pytest.mark.parametrize("missing", ["onnx", "onnxscript", "openvino"])
def test_export_without_its_packages_names_the_missing_one(checkpoint, tmp_path, monkeypatch, capsys, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # `import <missing>` now raises ImportError
    fmt = "openvino" if missing == "openvino" else "onnx"
    assert main(["export", str(checkpoint), "--format", fmt, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"needs the Python package '{missing}'" in err and "make install" in err
    assert not (tmp_path / "out" / ("model.xml" if fmt == "openvino" else "model.onnx")).exists()
    with pytest.raises(MissingPackageError, match=missing):
        export_model(checkpoint, fmt, tmp_path / "again")


def test_runtime_without_its_package_names_it(exports, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingPackageError, match=r"--runtime onnxruntime needs the Python package 'onnxruntime'"):
        PosePredictor.from_source(str(exports["onnx"]), runtime="onnxruntime")


TINY_EVAL_PARAMS = """\
dataset: synthetic
seeds: [0]
model: {stacks: 2, features: 16, input_res: 64}
targets: {flip_test: true}
synthetic: {train_images: 1, valid_images: 6, workers: 1}
preprocess: {workers: 1}
train: {steps_per_epoch: null, val_batch_size: 4, workers: 0, precision: fp32, channels_last: false,
        variants: {tiny: {}}}
mlflow: {enabled: false}
"""


def test_evaluate_scores_every_runtime_alike(tmp_path):
    """The evaluate stage on the synthetic validation split: the same score (to 0.05 points) and the same
    predictions (to 0.1 px) on ONNX Runtime and OpenVINO as in torch."""
    import h5py

    from hourglass.config.params_file import load_params
    from hourglass.data.preprocess import preprocess
    from hourglass.data.synthetic import generate_dataset
    from hourglass.evaluation.score import score
    from hourglass.evaluation.stage import evaluate
    from hourglass.io.eval_files import read_ground_truth

    write_params(tmp_path / "params.yaml", TINY_EVAL_PARAMS)
    params = load_params(tmp_path / "params.yaml")
    generate_dataset(params.synthetic, tmp_path / "raw", progress=False)
    preprocess(tmp_path / "raw", tmp_path / "processed", params, progress=False)
    torch.manual_seed(0)
    model = tmp_path / "models" / "tiny"
    save_checkpoint({"model": tiny_network(1).state_dict(), "config": params.model_dump(mode="json"),
                     "variant": "tiny", "epoch": 1}, model / "checkpoint.pt")
    gt_path = tmp_path / "raw" / "annot" / "valid.h5"
    gt = read_ground_truth(gt_path)
    scores, generous, preds = {}, {}, {}
    for runtime in ("torch", "onnxruntime", "openvino"):
        out = tmp_path / "eval" / runtime
        metrics = evaluate(params, "tiny", model, tmp_path / "processed", gt_path, out, progress=False,
                           submission=False, runtime=runtime)
        assert metrics["runtime"] == runtime
        scores[runtime] = metrics["final"]["Mean"]
        with h5py.File(out / "preds.h5") as h5:
            preds[runtime] = h5["stack_preds"][()]
            # An untrained network scores ~0 at the card's threshold; at 3 head sizes its score is not degenerate.
            generous[runtime] = score(h5["preds"][()] - 1.0, gt, threshold=3.0, dataset="synthetic").mean
    assert 5.0 < generous["torch"] < 95.0
    for runtime in ("onnxruntime", "openvino"):
        pixels = float(np.nanmax(np.abs(preds[runtime] - preds["torch"])))
        print(f"evaluate on {runtime}: Mean {scores[runtime]} vs torch {scores['torch']} (at 3 head sizes "
              f"{generous[runtime]:.4f} vs {generous['torch']:.4f}), every stack's predictions within {pixels:.2e} px")
        assert abs(scores[runtime] - scores["torch"]) <= 0.05
        assert abs(generous[runtime] - generous["torch"]) <= 0.05
        assert pixels <= PIXEL_TOL


def test_served_model_runs_its_onnx_artifact_on_the_runtime_the_environment_names(anchor_dir, mlflow_store,
                                                                                    tmp_path, monkeypatch):
    """``mlflow.log_onnx``: the logged model carries model.onnx; ``HOURGLASS_RUNTIME`` picks what serves it."""
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    from hourglass.tracking.runs import PARENT_RUN_ENV, RunTracker

    monkeypatch.setenv("HOURGLASS_PRECISION", "fp32")
    monkeypatch.delenv(PARENT_RUN_ENV, raising=False)
    tracker = RunTracker(tmp_path / "out", paper("mlflow", sweep=None, experiment="test", registered_model="hg-onnx",
                                                 system_metrics=False), run_name="hg", params={})
    tracker.log_model(tiny_network(), RES, "hg-onnx", config=tiny_params().model_dump(mode="json"), variant="tiny",
                      epoch=3, log_onnx=True)
    tracker.finish({"x": 1.0})
    artifacts = [a.path for a in MlflowClient(mlflow_store).list_artifacts(tracker_run(tmp_path), "model/artifacts")]
    assert "model/artifacts/model.onnx" in artifacts and "model/artifacts/checkpoint.pt" in artifacts

    data = (anchor_dir / "mmpose/tests/data/mpii/004645041.jpg").read_bytes()
    request = pd.DataFrame({"image": [data, data], "box": [[440, 160, 840, 560], None]})
    answers = {}
    for runtime in ("torch", "onnxruntime", "openvino"):
        monkeypatch.setenv("HOURGLASS_RUNTIME", runtime)
        served = mlflow.pyfunc.load_model("models:/hg-onnx/1")
        answers[runtime] = np.array(served.predict(request)["keypoints"].tolist())
        if runtime != "torch":
            assert served.unwrap_python_model().predictor.runtime.name == runtime
    for runtime in ("onnxruntime", "openvino"):
        assert np.abs(answers[runtime][..., :2] - answers["torch"][..., :2]).max() <= PIXEL_TOL
    monkeypatch.setenv("HOURGLASS_RUNTIME", "tensorrt")
    with pytest.raises(Exception, match="runtime 'tensorrt': expected one of torch, onnxruntime, openvino"):
        mlflow.pyfunc.load_model("models:/hg-onnx/1")


def tracker_run(out: Path) -> str:
    return json.loads((out / "out" / "mlflow.json").read_text())["run_id"]


def test_every_export_option_is_explained():
    import argparse

    from hourglass.cli import build_parser

    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    export = sub.choices["export"]
    for action in export._actions:
        assert action.help, action.dest
    text = export.format_help()
    assert "--format {onnx,openvino}" in text and "dynamic batch" in text and "make install" in text
    predict_help = sub.choices["predict"].format_help()
    assert "--runtime {torch,onnxruntime,openvino}" in predict_help
