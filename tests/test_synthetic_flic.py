"""Synthetic people with FLIC's joints run the whole pipeline as FLIC: one dataset family, decided from the params,
reaches training, evaluation, the report and the champion contest (``dvc repro`` in a fresh repository)."""

from __future__ import annotations

import csv
import json
import logging
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from dvc_project import REPO, dvc, make_project, merge  # noqa: E402
from test_pipeline_e2e import TINY  # noqa: E402

from hourglass.config.params_file import load_params
from hourglass.family import champion_metric

# The end-to-end test's tiny configuration, with FLIC's joints and one variant.
TINY_FLIC = merge(TINY, {"dataset": "synthetic_flic", "mlflow": {"sweep": "flic-e2e"},
                         "sweep": ["hg_stacked_int"]})


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("flic-project")
    env = make_project(root, merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY_FLIC))
    dvc(["repro"], root, env)
    return root, env


def test_training_validates_with_flic_pck(project):
    root, _ = project
    final = json.loads((root / "models/hg_stacked_int/seed-0/metrics.json").read_text())
    assert "val/pck/Mean" in final and "val/pck/joint/nose" in final and "val/figure4" in final
    assert not any("pckh" in key for key in final)
    with open(root / "models/hg_stacked_int/seed-0/epochs.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert "val/figure4" in header  # the column dvc.yaml plots, on either family


def test_evaluation_scores_pck_at_0_2_on_eleven_joints(project):
    root, _ = project
    metrics = json.loads((root / "models/hg_stacked_int/seed-0/eval/metrics.json").read_text())
    assert metrics["metric"] == "PCK@0.2"
    assert set(metrics["per_joint"]) == {"l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
                                         "l_hip", "r_hip", "l_eye", "r_eye", "nose"}
    assert "Mean@0.1" not in metrics["final"] and "figure4" in metrics["final"]
    assert [s["stack"] for s in metrics["stacks"]] == [1, 2]


def test_report_is_in_flic_form(project):
    root, _ = project
    text = (root / "reports/results.md").read_text()
    body = text.split("## Provenance")[0]
    assert "Wrist PCK@0.2 (%)" in body and "PCKh" not in body
    assert "| 99.0 |" in body  # the paper's FLIC elbow, beside ours
    assert "scored as FLIC" in body


def test_champion_contest_compares_the_flic_headline(project):
    from hourglass.tracking.champion import decide_champion

    root, env = project
    params = load_params(root / "params.yaml")
    metric = champion_metric(params)
    assert metric == "eval/pck/Mean"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
        decision = decide_champion(root, params, logging.getLogger("test")).decision
    evaluation = json.loads((root / "models/hg_stacked_int/seed-0/eval/metrics.json").read_text())
    assert decision is not None and decision.promoted and decision.metric == "eval/pck/Mean"
    assert decision.model == "hourglass-synthetic_flic"  # its own registered model: never against MPII-style ones
    assert decision.candidate_score == pytest.approx(evaluation["final"]["Mean"])  # the flip-test score
    assert decision.split_digest == evaluation["split_digest"]


def test_mlflow_run_carries_the_evaluate_stages_scores_and_the_experiment_kind(project):
    from mlflow.tracking import MlflowClient

    root, env = project
    record = json.loads((root / "models/hg_stacked_int/seed-0/mlflow.json").read_text())
    evaluation = json.loads((root / "models/hg_stacked_int/seed-0/eval/metrics.json").read_text())
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    run = client.get_run(record["run_id"])
    assert run.data.metrics["eval/pck/Mean"] == pytest.approx(evaluation["final"]["Mean"])
    assert run.data.metrics["eval/pck/Wrist"] == pytest.approx(evaluation["final"]["Wrist"])
    assert run.data.metrics["eval/stack1/pck/Mean"] == pytest.approx(evaluation["stacks"][0]["metrics"]["Mean"])
    assert run.data.tags["eval.metric"] == "PCK@0.2, flip test (evaluate stage)"
    assert client.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    version = client.get_model_version(record["registered_model"], record["version"])
    assert version.tags["variant"] == "hg_stacked_int" and version.tags["dataset"] == "synthetic_flic"
    assert version.tags["metric"] == "PCK@0.2" and "stacks=2" in version.tags["architecture"]
    assert version.tags["keypoints"].split(",") == ["l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow",
                                                    "r_wrist", "l_hip", "r_hip", "l_eye", "r_eye", "nose"]
    assert version.tags["eval.mean"] == f"{evaluation['final']['Mean']:.2f}"
