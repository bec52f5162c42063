"""hourglass.tracking.runs: DVC files and MLflow from one helper, best-effort MLflow, nested sweeps, the logged model.

MLflow runs against a per-test copy of a pre-migrated SQLite store (stack notes §2.6), so each test costs ~0.1 s of
set-up instead of a fresh migration.
"""

from __future__ import annotations

import csv
import json
import socket
import sys
import warnings
from pathlib import Path

import cv2
import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient
from shipped import paper

from hourglass.config import MlflowConfig
from hourglass.config.params_file import parse_params
from hourglass.inference.predictor import PosePredictor
from hourglass.inference.runner import load_model
from hourglass.model import create_model
from hourglass.precision import select_precision
from hourglass.tracking.runs import (
    EPOCHS_CSV,
    METRICS_JSON,
    MLFLOW_JSON,
    PARENT_RUN_ENV,
    RunTracker,
    TrackingWarning,
    default_tracking_uri,
    ensure_parent_run,
    flatten_params,
    metric_name,
)
from hourglass.train.loop import train
from hourglass.weights.source import checkpoint_in_mlflow_model

sys.path.insert(0, str(Path(__file__).parent))
from toy_poses import ToyPoses, tiny_params  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

CFG = paper("mlflow", sweep=None, experiment="test", registered_model="hg-test", system_metrics=False)


@pytest.fixture
def store(mlflow_store: str, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    """A fresh store for the test (conftest's), outside any sweep parent run."""
    monkeypatch.delenv(PARENT_RUN_ENV, raising=False)
    return MlflowClient(tracking_uri=mlflow_store)


def _tracker(out: Path, cfg: MlflowConfig = CFG, **kwargs) -> RunTracker:
    return RunTracker(out, cfg, run_name="hg", params={"train": {"lr": 2.5e-4, "milestones": [1, 2]}},
                      tags={"dvc.stage": "train@hg"}, **kwargs)


def test_dvc_files_and_mlflow_hold_the_same_numbers(tmp_path, store):
    tracker = _tracker(tmp_path / "out")
    for step in range(3):
        tracker.log_step(step, 1.0 / (step + 1), 2.5e-4)
    tracker.log_epoch(1, {"val/pckh/Mean": 12.5, "val/loss": 0.1 / 3, "val/pckh/Knee": float("nan")})
    tracker.log_epoch(2, {"val/pckh/Mean": 20.25, "val/loss": 0.2 / 3, "val/pckh/Knee": 3.0})
    run_id = tracker.run_id
    tracker.finish({"val/pckh/Mean": 20.25, "val/loss": 0.2 / 3})

    run = store.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["dvc.stage"] == "train@hg"
    assert run.data.params == {"train.lr": "0.00025", "train.milestones": "[1, 2]"}
    final = json.loads((tmp_path / "out" / METRICS_JSON).read_text())
    assert {k: run.data.metrics[k] for k in final} == final
    rows = list(csv.DictReader(open(tmp_path / "out" / EPOCHS_CSV)))
    assert rows[0]["val/pckh/Knee"] == ""  # NaN: an empty cell, not sent to MLflow
    for key in ("val/pckh/Mean", "val/loss"):
        history = [m.value for m in store.get_metric_history(run_id, key)]
        assert history[:2] == [float(r[key]) for r in rows]
    assert [m.step for m in store.get_metric_history(run_id, "val/pckh/Knee")] == [2]
    assert [m.value for m in store.get_metric_history(run_id, "step/loss")] == [1.0, 0.5, 1.0 / 3]


def test_unreachable_server_warns_once_and_still_writes_dvc_files(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker = _tracker(tmp_path)
        tracker.log_step(0, 1.0, 1e-3)
        tracker.log_epoch(1, {"val/pckh/Mean": 1.0})
        assert tracker.log_model(create_model(stacks=1, features=8), 64, "hg-test") is None
        tracker.finish({"val/pckh/Mean": 1.0})
    ours = [w for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(ours) == 1 and f"127.0.0.1:{port}" in str(ours[0].message)
    assert json.loads((tmp_path / METRICS_JSON).read_text()) == {"val/pckh/Mean": 1.0}
    assert (tmp_path / EPOCHS_CSV).read_text().splitlines() == ["epoch,val/pckh/Mean", "1,1.0"]
    assert json.loads((tmp_path / MLFLOW_JSON).read_text())["model_uri"] is None


def test_sweep_runs_nest_under_one_parent(tmp_path, store, monkeypatch):
    cfg = CFG.model_copy(update={"sweep": "ablation"})
    ids = []
    for name in ("a", "b"):
        tracker = _tracker(tmp_path / name, cfg)
        ids.append(tracker.run_id)
        tracker.finish({"x": 1.0})
    parent = ensure_parent_run("test", "ablation")
    assert [store.get_run(i).data.tags["mlflow.parentRunId"] for i in ids] == [parent, parent]
    assert store.get_run(parent).info.status == "FINISHED"  # a container, not a run left 'running' in the UI
    monkeypatch.setenv(PARENT_RUN_ENV, ids[0])  # the variable wins over the sweep name
    tracker = _tracker(tmp_path / "c", cfg)
    assert store.get_run(tracker.run_id).data.tags["mlflow.parentRunId"] == ids[0]
    tracker.close()


def test_logged_model_is_registered_and_runs_on_any_batch(tmp_path, store, monkeypatch):
    """The registered pose pyfunc carries exactly the network's weights and answers any number of images with the
    keypoints the in-process predictor computes from the same network."""
    monkeypatch.setenv("HOURGLASS_PRECISION", "fp32")
    tracker = _tracker(tmp_path)
    torch.manual_seed(0)
    network = create_model(stacks=2, features=8).to(memory_format=torch.channels_last).eval()
    uri = tracker.log_model(network, 64, "hg-test", config={"dataset": "mpii"})
    tracker.finish({"x": 1.0})
    record = json.loads((tmp_path / MLFLOW_JSON).read_text())
    assert record["model_uri"] == uri and record["registered_model"] == "hg-test" and record["version"] == "1"

    local = Path(mlflow.artifacts.download_artifacts("models:/hg-test/1", dst_path=str(tmp_path / "dl")))
    served = load_model(checkpoint_in_mlflow_model(local, "models:/hg-test/1"))
    assert served.model_config.stacks == 2 and served.model_config.features == 8
    assert served.model_config.input_res == 64
    weights = network.state_dict()
    assert served.model.state_dict().keys() == weights.keys()
    assert all(torch.equal(v, weights[k]) for k, v in served.model.state_dict().items())

    loaded = mlflow.pyfunc.load_model("models:/hg-test/1")
    reference = PosePredictor(served, select_precision("fp32", torch.device("cpu")))
    rng = np.random.default_rng(0)
    for batch in (1, 5):
        images = [rng.integers(0, 256, size=(48 + 8 * i, 64, 3), dtype=np.uint8) for i in range(batch)]
        encoded = [cv2.imencode(".png", im)[1].tobytes() for im in images]
        out = loaded.predict(pd.DataFrame({"image": encoded}))
        assert len(out) == batch
        for image, keypoints in zip(images, out["keypoints"], strict=True):
            [expected] = reference.predict_image(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            assert np.array(keypoints).shape == (16, 3)
            assert np.allclose(np.array(keypoints), expected.keypoints, atol=0.01)


def test_resumed_tracker_trims_rows_beyond_the_checkpoint_and_reopens_the_run(tmp_path, store):
    first = _tracker(tmp_path)
    for epoch in (1, 2, 3):
        first.log_epoch(epoch, {"m": float(epoch)})
    run_id = first.run_id
    first.close("KILLED")
    second = _tracker(tmp_path, resume_epoch=2, run_id=run_id)
    assert second.run_id == run_id
    second.log_epoch(3, {"m": 30.0})
    second.finish({"m": 30.0})
    assert (tmp_path / EPOCHS_CSV).read_text().splitlines() == ["epoch,m", "1,1.0", "2,2.0", "3,30.0"]
    assert store.get_run(run_id).info.status == "FINISHED"


def test_metric_names_and_params_helpers(monkeypatch, tmp_path):
    assert metric_name("val/pckh/Mean_at_0.1") == "val/pckh/Mean_at_0.1"
    with pytest.raises(ValueError, match="Mean@0.1"):
        metric_name("val/pckh/Mean@0.1")
    assert flatten_params({"a": {"b": 1, "c": {}}, "d": None}) == {"a.b": "1", "a.c": "{}", "d": "None"}
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


def test_training_run_is_one_mlflow_run_with_steps_epochs_and_model(tmp_path, store):
    raw = tiny_params(epochs=2).model_dump(mode="json")
    raw["mlflow"] = {**raw["mlflow"], "enabled": True, "experiment": "test", "log_model": False,
                     "system_metrics": False, "sweep": None}  # model: test above
    params = parse_params(raw)
    result = train(params, tmp_path / "out", train_set=ToyPoses(8), val_set=ToyPoses(4, seed=1), variant=None)
    run = store.get_run(result.mlflow_run_id)
    # the run carries its training seed (tiny_params' seeds: [3], the default is the first) in name, tag and params
    assert run.data.tags["dvc.stage"] == "train@model-3" and run.data.params["model.stacks"] == "1"
    assert run.info.run_name == "model/seed-3" and run.data.tags["seed"] == "3" and run.data.params["seed"] == "3"
    assert [m.step for m in store.get_metric_history(run.info.run_id, "step/loss")] == [0, 1, 2, 3]
    rows = list(csv.DictReader(open(tmp_path / "out" / EPOCHS_CSV)))
    assert [m.value for m in store.get_metric_history(run.info.run_id, "val/figure4")] == [
        float(r["val/figure4"]) for r in rows]
    final = json.loads((tmp_path / "out" / METRICS_JSON).read_text())
    runtime = final.pop("runtime")
    assert {k: run.data.metrics[k] for k in final} == final  # MLflow's latest values are the DVC metrics
    assert [m.step for m in store.get_metric_history(run.info.run_id, "best/epoch")] == [2]
    # How it ran: the same record in metrics.json and as the run's tags.
    assert runtime["precision"] == "fp32" and runtime["device"] == "cpu" and runtime["world_size"] == 1
    assert {k: run.data.tags[f"runtime.{k}"] for k in runtime} == {k: str(v) for k, v in runtime.items()}


def test_sweep_summary_gets_each_variants_mean_and_sd_across_seeds(tmp_path, store):
    """The sweep's parent run: `<variant>/eval_mean` (the mean over its seeds) for every scored variant,
    `<variant>/eval_sd` only where several seeds give one; a registered version's tags name its seed."""
    from hourglass.tracking.store import log_sweep_summary, version_tags

    parent = ensure_parent_run("test", "sw")
    (tmp_path / "results.md").write_text("# report")
    assert log_sweep_summary("test", "sw", {"hg": 48.25, "hg_int": 40.0, "none": None}, {"report.seeds": "0, 1"},
                             [tmp_path / "results.md"], spreads={"hg": 0.75, "hg_int": None}) == parent
    run = store.get_run(parent)
    assert {k: v for k, v in run.data.metrics.items()} == {"hg/eval_mean": 48.25, "hg_int/eval_mean": 40.0,
                                                          "hg/eval_sd": 0.75}
    assert run.data.tags["report.seeds"] == "0, 1"
    tags = version_tags({"dataset": "synthetic", "seed": 1, "model": {"stacks": 2}}, "hg", 7)
    assert tags["seed"] == "1" and tags["variant"] == "hg" and tags["epochs"] == "7"
    assert "seed" not in version_tags({"dataset": "mpii", "model": {"stacks": 8}}, "port", None)  # imported: none
