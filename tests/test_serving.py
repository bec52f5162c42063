"""The registered pose pyfunc (hourglass.inference.serving): `mlflow models serve` answers REST requests with real MPII
images, matching in-process prediction; `hourglass predict` takes the same model by its registry alias.

MLflow runs against a per-test copy of a pre-migrated SQLite store (stack notes §2.6); the served model is an
untrained 1-stack, 32-feature network at 64 px, run in fp32 (``HOURGLASS_PRECISION``) on both sides.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from shipped import paper, recipe_raw

from hourglass.cli import main
from hourglass.inference.inputs import as_rgb_array
from hourglass.inference.people import Person
from hourglass.inference.predictor import PosePredictor
from hourglass.io.checkpoint import CheckpointError
from hourglass.model import create_model
from hourglass.tracking.runs import PARENT_RUN_ENV, RunTracker
from hourglass.weights.source import checkpoint_in_mlflow_model

MPII_IMAGE = "mmpose/tests/data/mpii/004645041.jpg"  # 1280 x 720
NAME = "hg-serve"
BOX = [440, 160, 840, 560]


@pytest.fixture
def store(tmp_path: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh store with the pose model registered as ``hg-serve@champion``; yields its URI."""
    uri = mlflow_store
    monkeypatch.setenv("HOURGLASS_PRECISION", "fp32")
    monkeypatch.delenv(PARENT_RUN_ENV, raising=False)
    tracker = RunTracker(tmp_path / "out", paper("mlflow", sweep=None, experiment="test", registered_model=NAME,
                                                        system_metrics=False), run_name="hg", params={})
    torch.manual_seed(0)
    tracker.log_model(create_model(stacks=1, features=32).eval(), 64, NAME, config={"dataset": "mpii"})
    tracker.finish({"x": 1.0})
    MlflowClient(uri).set_registered_model_alias(NAME, "champion", "1")
    yield uri


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture
def server(store: str, tmp_path: Path) -> Iterator[int]:
    """``mlflow models serve`` of the champion on a free local port (the venv's mlflow, --env-manager local)."""
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([str(bin_dir / "mlflow"), "models", "serve", "-m", f"models:/{NAME}@champion",
                             "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow models serve exited with {proc.returncode}:\n"
                            f"{(tmp_path / 'serve.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"mlflow models serve not up in 120 s:\n{(tmp_path / 'serve.log').read_text()}")
                time.sleep(0.25)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn child, nothing else
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_rest_server_answers_with_the_in_process_keypoints(anchor_dir, store, server):
    data = (anchor_dir / MPII_IMAGE).read_bytes()
    image = as_rgb_array(data)
    small = np.ascontiguousarray(image[300:390:3, 600:720:3])  # 30 x 40 pixels, sent as nested lists
    payload = {"dataframe_split": {"columns": ["image", "box"],
                                   "data": [[base64.b64encode(data).decode(), None],
                                            [base64.b64encode(data).decode(), BOX],
                                            [small.tolist(), None]]}}
    status, answer = _post(server, payload)
    assert status == 200, answer
    predictions = answer["predictions"]
    assert len(predictions) == 3
    keypoints = np.array([p["keypoints"] for p in predictions])
    assert keypoints.shape == (3, 16, 3)

    local = PosePredictor.from_source(f"models:/{NAME}@champion", precision="fp32")
    expected = local.predict([(image, [Person.whole_image(1280, 720)]), (image, [Person.from_box(BOX, 1280, 720)]),
                              (small, [Person.whole_image(40, 30)])])
    for row in range(3):
        assert np.allclose(keypoints[row], expected[row][0].keypoints, atol=0.01)
    assert predictions[1]["center"] == [640.0, 360.0] and predictions[1]["scale"] == pytest.approx(2.5)
    side = 500  # the box's crop lies inside the image, and so do its keypoints
    assert np.all(np.abs(keypoints[1, :, :2] - [640, 360]) <= side / 2)

    status, answer = _post(server, {"dataframe_records": [{"image": base64.b64encode(b"not an image").decode()}]})
    assert status == 400 and "row 0: not a decodable image" in answer["message"]


def test_predict_command_takes_the_registered_champion(anchor_dir, store, tmp_path):
    out = tmp_path / "p.json"
    assert main(["predict", str(anchor_dir / MPII_IMAGE), "--model", f"models:/{NAME}@champion", "--precision",
                 "fp32", "--box", ",".join(map(str, BOX)), "--json", str(out), "--no-progress"]) == 0
    record = json.loads(out.read_text())
    assert record["model"].startswith(f"models:/{NAME}@champion")
    served = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    import pandas as pd

    data = (anchor_dir / MPII_IMAGE).read_bytes()
    answer = served.predict(pd.DataFrame({"image": [data, as_rgb_array(data)], "box": [BOX, BOX]}))
    assert np.allclose(record["images"][0]["people"][0]["keypoints"], answer["keypoints"][0], atol=0.01)
    assert np.allclose(answer["keypoints"][1], answer["keypoints"][0])  # pixels in, same answer as the file


def test_models_without_a_checkpoint_are_refused_by_name(store, tmp_path, capsys):
    with pytest.raises(CheckpointError, match=r"models:/old/1: the MLflow model holds no checkpoint.pt"):
        checkpoint_in_mlflow_model(tmp_path / "empty", "models:/old/1")
    image = tmp_path / "a.png"
    image.write_bytes(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    assert main(["predict", str(image), "--model", "models:/no-such-model@champion", "--no-progress"]) == 1
    assert "models:/no-such-model@champion" in capsys.readouterr().err


def test_logged_model_takes_joint_set_and_flip_test_from_the_runs_checkpoint(store, tmp_path):
    """Without an explicit config, log_model reads the training checkpoint beside its outputs (as train.py leaves
    it), so the served model keeps the run's variant, epoch and evaluation settings."""
    from hourglass.config.params_file import parse_params
    from hourglass.io.checkpoint import save_checkpoint

    out = tmp_path / "run"
    params = parse_params(recipe_raw("mpii", {"dataset": "synthetic",
                                              "model": {"stacks": 1, "features": 16, "input_res": 64},
                                              "targets": {"flip_test": False}}))
    torch.manual_seed(1)
    network = create_model(stacks=1, features=16).eval()
    save_checkpoint({"model": network.state_dict(), "config": params.model_dump(mode="json"), "variant": "hg",
                     "epoch": 3, "optimizer": {}}, out / "checkpoint.pt")
    mlflow_cfg = paper("mlflow", sweep=None, experiment="test", registered_model=NAME, system_metrics=False)
    tracker = RunTracker(out, mlflow_cfg, run_name="hg", params={})
    tracker.log_model(network, 64, NAME)
    tracker.finish({"x": 1.0})
    assert json.loads((out / "mlflow.json").read_text())["version"] == "2"
    predictor = PosePredictor.from_source(f"models:/{NAME}/2", precision="fp32")
    assert (predictor.loaded.variant, predictor.loaded.epoch, predictor.flip) == ("hg", 3, False)
    assert predictor.joints.name == "synthetic" and predictor.loaded.model_config.features == 16


def test_served_confidences_are_scaled_as_the_command_scales_them(anchor_dir, store, tmp_path):
    """The served model divides heatmap peaks by the training config's ``train.target_scale``, in the same place
    as ``hourglass predict``: a model trained with targets x10 answers a tenth of the raw peaks."""
    import pandas as pd

    from hourglass.config.params_file import parse_params
    from hourglass.io.checkpoint import save_checkpoint

    def config(target_scale: float) -> dict:
        return parse_params(recipe_raw("mpii", {"model": {"stacks": 1, "features": 16, "input_res": 64},
                                                "train": {"target_scale": target_scale}})).model_dump(mode="json")

    torch.manual_seed(2)
    network = create_model(stacks=1, features=16).eval()
    tracker = RunTracker(tmp_path / "run", paper("mlflow", sweep=None, experiment="test", registered_model=NAME,
                                                 system_metrics=False), run_name="hg", params={})
    tracker.log_model(network, 64, NAME, config=config(10.0))
    tracker.finish({"x": 1.0})
    save_checkpoint({"model": network.state_dict(), "config": config(1.0)}, tmp_path / "raw.pt")

    data = (anchor_dir / MPII_IMAGE).read_bytes()
    served = mlflow.pyfunc.load_model(f"models:/{NAME}/2").predict(pd.DataFrame({"image": [data], "box": [BOX]}))
    raw = PosePredictor.from_checkpoint(tmp_path / "raw.pt", precision="fp32").predict_image(
        as_rgb_array(data), [Person.from_box(BOX, 1280, 720)])[0].keypoints
    keypoints = np.array(served["keypoints"][0])
    assert np.allclose(keypoints[:, :2], raw[:, :2], atol=0.01)
    assert np.allclose(keypoints[:, 2] * 10.0, raw[:, 2], atol=2e-3)
    assert np.abs(raw[:, 2]).max() > 0.05  # not vacuous: the raw peaks are not all about 0
    local = PosePredictor.from_source(f"models:/{NAME}/2", precision="fp32")
    assert local.target_scale == 10.0
