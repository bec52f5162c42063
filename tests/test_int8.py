"""``hourglass export --int8`` (issue 27, item 4): calibrated on the model's own training crops, the accuracy drop on
the validation split measured and recorded, refused (writing nothing) above ``--max-drop``.

The model is a 2-stack, 16-feature network at 64 px trained for a few steps on a handful of synthetic people: its
scores are low, but they are real scores of a trained network, and what is checked is the mechanics.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from shipped import write_params

from hourglass.cli import main
from hourglass.export.metadata import PREFIX

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
pytestmark = pytest.mark.usefixtures("one_thread")

TINY_TRAIN_PARAMS = """\
dataset: synthetic
seeds: [0]
model: {stacks: 2, features: 16, input_res: 64}
targets: {flip_test: true}
synthetic: {train_images: 6, valid_images: 4, workers: 1}
preprocess: {workers: 1}
train: {epochs: 1, steps_per_epoch: 3, batch_size: 4, val_batch_size: 8, workers: 0, precision: fp32,
        channels_last: false, optimizer: adam, lr: 0.001, variants: {tiny: {}}}
mlflow: {enabled: false}
"""
CALIBRATION = 6


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project directory: data/processed/synthetic and models/tiny/seed-0 trained on it for three steps."""
    from hourglass.config.params_file import load_params
    from hourglass.data.dataset import create_dataset
    from hourglass.data.preprocess import preprocess
    from hourglass.data.synthetic import generate_dataset
    from hourglass.train.loop import train

    root = tmp_path_factory.mktemp("int8-project")
    write_params(root / "params.yaml", TINY_TRAIN_PARAMS)
    params = load_params(root / "params.yaml")
    generate_dataset(params.synthetic, root / "data" / "raw" / "synthetic", progress=False)
    processed = root / "data" / "processed" / "synthetic"
    summary = preprocess(root / "data" / "raw" / "synthetic", processed, params, progress=False)
    train(params, root / "models" / "tiny" / "seed-0", variant="tiny",
          train_set=create_dataset(processed, "train", params, train=True),
          val_set=create_dataset(processed, "valid", params, train=False),
          data_fingerprint=summary["fingerprint"], data_dir=processed)
    return root


def _props(path: Path) -> tuple[object, dict]:
    import onnx

    proto = onnx.load(str(path))
    return proto, {p.key: json.loads(p.value) for p in proto.metadata_props}


@pytest.fixture(scope="module")
def int8_export(project: Path) -> tuple[Path, str]:
    """``hourglass export --int8`` of the model as ONNX, run in the project without --data; (directory, stderr)."""
    import contextlib
    import io
    import os

    err = io.StringIO()
    cwd = Path.cwd()
    os.chdir(project)  # no --data: data/processed/synthetic, as the model's config and lineage say
    try:
        with contextlib.redirect_stderr(err):
            assert main(["export", "models/tiny/seed-0", "--format", "onnx", "--int8", "--calibration",
                         str(CALIBRATION), "--max-drop", "100", "--out", "exports/int8"]) == 0
    finally:
        os.chdir(cwd)
    return project / "exports" / "int8", err.getvalue()


def test_int8_onnx_records_its_calibration_and_measured_drop(project, int8_export):
    from hourglass.data.table import TABLE_NAME
    from hourglass.export.accuracy import validation_score
    from hourglass.export.calibration import load_calibration
    from hourglass.family import family_named
    from hourglass.inference.predictor import PosePredictor
    from hourglass.inference.runner import load_model
    from hourglass.inference.runtimes import TorchRuntime
    from hourglass.io.digest import file_sha256
    from hourglass.precision import select_precision

    out, err = int8_export
    assert "int8: calibrated on 6 training crops" in err and "drop" in err
    proto, props = _props(out / "model.onnx")
    ops = [node.op_type for node in proto.graph.node]
    assert ops.count("QuantizeLinear") > 10 and ops.count("DequantizeLinear") > 10  # QDQ
    initialisers = {t.name for t in proto.graph.initializer}
    weight_dq = [n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in initialisers]
    assert any(a.name == "axis" for n in weight_dq for a in n.attribute)  # per-channel weights

    record = props[f"{PREFIX}quantization"]
    assert record["format"] == "QDQ" and "per output channel" in record["weights"]
    calib = record["calibration"]
    data = project / "data" / "processed" / "synthetic"
    assert calib["file"] == TABLE_NAME and calib["file_sha256"] == file_sha256(data / TABLE_NAME)
    assert calib["split"] == "train" and calib["crops"] == CALIBRATION == len(calib["rows"])
    loaded = load_model(project / "models" / "tiny" / "seed-0")
    family = family_named("synthetic")
    again = load_calibration(data, 64, family.joints, CALIBRATION)
    assert again.digest() == calib["crops_sha256"] and again.rows == calib["rows"]

    check = record["validation"]
    print(f"int8 drop on {check['people']} validation people: {check['fp32']:.2f} -> {check['int8']:.2f}")
    assert check["metric"] == "PCKh@0.5 Mean" and check["flip_test"] is True and check["runtime"] == "onnxruntime"
    assert check["drop"] == pytest.approx(check["fp32"] - check["int8"], abs=1e-3)
    torch_score = validation_score(loaded, family, data,
                                   TorchRuntime(loaded.model, select_precision("fp32", torch.device("cpu"), False)))
    assert abs(torch_score.score - check["fp32"]) <= 0.05 and torch_score.people == check["people"] > 0

    # The int8 file runs where an export runs, and its keypoints stay near fp32's on the validation crops.
    predictor = PosePredictor.from_source(str(out), runtime="onnxruntime")
    assert predictor.runtime.metadata.quantization == record
    crops = again.images[:2]
    heatmaps = predictor.runtime(torch.from_numpy(crops))
    assert heatmaps.shape == (2, 2, family.joints.count, 16, 16) and np.isfinite(heatmaps.numpy()).all()


def test_int8_openvino_is_written_with_its_record(project, capsys):
    from hourglass.inference.runtimes import OpenVinoRuntime

    out = project / "exports" / "int8-ov"
    assert main(["export", str(project / "models" / "tiny" / "seed-0"), "--format", "openvino", "--int8",
                 "--calibration", str(CALIBRATION), "--max-drop", "100", "--data",
                 str(project / "data" / "processed" / "synthetic"), "--out", str(out)]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["model.bin", "model.xml"]
    engine = OpenVinoRuntime(out / "model.xml")
    assert engine.metadata.quantization["validation"]["runtime"] == "openvino"
    assert engine.metadata.quantization["calibration"]["crops"] == CALIBRATION


def test_a_drop_above_max_drop_is_refused_and_writes_nothing(project, capsys):
    out = project / "exports" / "refused"
    out.mkdir(parents=True)
    (out / "model.onnx").write_bytes(b"the previous export")
    assert main(["export", str(project / "models" / "tiny" / "seed-0"), "--format", "onnx", "--int8",
                 "--calibration", "2", "--max-drop", "-100", "--data",
                 str(project / "data" / "processed" / "synthetic"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "int8 onnx export refused: PCKh@0.5 Mean" in err and "in fp32 and" in err and "in int8" in err
    assert "> --max-drop -100; nothing written" in err
    assert [p.name for p in out.iterdir()] == ["model.onnx"]  # no temporary file left either
    assert (out / "model.onnx").read_bytes() == b"the previous export"


def test_int8_options_need_int8_and_the_data(project, tmp_path, monkeypatch, capsys):
    model = str(project / "models" / "tiny" / "seed-0")
    assert main(["export", model, "--format", "onnx", "--calibration", "5", "--out", str(tmp_path / "a")]) == 1
    assert "--calibration is an option of --int8" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # no data/processed/synthetic here
    assert main(["export", model, "--format", "onnx", "--int8", "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "data/processed/synthetic/preprocess.json (dataset 'synthetic' of its config) is not there" in err
    assert "give --data DIR" in err
    assert main(["export", model, "--format", "onnx", "--int8", "--data", str(tmp_path), "--out",
                 str(tmp_path / "c")]) == 1
    assert f"--data {tmp_path}: no preprocess.json there" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_the_side_by_side_benchmark_times_and_scores_the_given_int8_export(project, int8_export, tmp_path, capsys):
    """``python -m hourglass.bench predict --runtime all --int8 DIR --data DIR``: every runtime, the given export's
    rows, each one's validation score; the fp32 exports score as torch eager does and the int8 row as recorded."""
    from hourglass.bench.__main__ import main as bench

    out, _ = int8_export
    data = project / "data" / "processed" / "synthetic"
    assert bench(["predict", "--runtime", "all", "--checkpoint", str(project / "models" / "tiny" / "seed-0"),
                  "--int8", str(out), "--data", str(data), "--batch", "2", "--iters", "1", "--warmup", "0",
                  "--height", "96", "--width", "128", "--json", str(tmp_path / "bench.json")]) == 0
    stdout = capsys.readouterr().out
    result = json.loads(stdout.strip().splitlines()[-1])
    assert json.loads((tmp_path / "bench.json").read_text()) == result
    rows = {row["engine"]: row for row in result["rows"]}
    assert list(rows) == ["torch eager fp32", "torch fast path", "onnxruntime fp32", "openvino fp32",
                          "onnxruntime int8", "openvino int8"]
    assert rows["torch eager fp32"]["batched_vs_torch_eager"] == 1.0
    for name in ("onnxruntime fp32", "openvino fp32"):
        assert abs(rows[name]["score"] - rows["torch eager fp32"]["score"]) <= 0.05
    recorded = _props(out / "model.onnx")[1][f"{PREFIX}quantization"]["validation"]
    assert rows["onnxruntime int8"]["score"] == pytest.approx(recorded["int8"], abs=1e-3)
    assert "| onnxruntime int8 | int8 |" in stdout and "load average" in stdout and "hourglass.bench peer" in stdout
    assert result["cpu_isa"] and result["peer_a"] is None and len(result["load_average"]["before"]) == 3


def test_the_side_by_side_benchmark_runs_every_runtime_on_random_weights(tmp_path, capsys):
    """No checkpoint, no data: random weights, int8 quantised on the benchmark's own crops, no scores."""
    from hourglass.bench.__main__ import main as bench

    assert bench(["predict", "--runtime", "all", "--stacks", "1", "--features", "16", "--res", "64", "--batch", "2",
                  "--iters", "1", "--warmup", "0", "--height", "96", "--width", "128", "--no-flip"]) == 0
    stdout = capsys.readouterr().out
    result = json.loads(stdout.strip().splitlines()[-1])
    assert [row["engine"] for row in result["rows"]][-2:] == ["onnxruntime int8", "openvino int8"]
    assert all(row["score"] is None and row["batched_img_s"] > 0 for row in result["rows"])
    assert "calibrated on the benchmark's 2 crops: speed only" in stdout and result["flip_test"] is False
