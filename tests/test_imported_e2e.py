"""Released weights in the pipeline, through ``dvc repro`` in a fresh repository: ``imports.<name>`` in params.yaml
is converted (``import@<name>``), scored as a trained variant is (``evaluate_import@<name>``), logged to MLflow
beside the sweep's runs, and a training run fine-tunes from it (``train.init_from``).

The weights are the official PyTorch port's own fixture checkpoint (``shared/anchor-data/pytorch_stacked_hourglass/
checkpoint-fixture``: its file layout, a 2-stack 64-feature network), copied into the project as a user puts a
downloaded release under ``weights/``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from dvc_project import REPO, dvc, make_project, merge  # noqa: E402
from test_pipeline_e2e import TINY  # noqa: E402

FIXTURE = "pytorch_stacked_hourglass/checkpoint-fixture/checkpoint.pt"
WEIGHTS = "weights/port-fixture.pth.tar"
TINY_IMPORT = merge(TINY, {
    "sweep": ["hg_stacked_int"],
    "mlflow": {"sweep": "imports-e2e"},
    # the port's network runs at any multiple of 64 px; the release's own is 256
    "imports": {"port": {"path": WEIGHTS, "input_res": 64, "commit": "ceedc14b9b8814ba641f4a00baa5d0af153588a9"}},
})


@pytest.fixture(scope="module")
def project(anchor_dir, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("imports")
    (root / "weights").mkdir()
    shutil.copy(anchor_dir / FIXTURE, root / WEIGHTS)
    env = make_project(root, merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY_IMPORT))
    done = dvc(["repro"], root, env)
    (root / "repro.log").write_text(done.stdout + done.stderr)
    return root, env


def test_repro_imports_and_scores_the_release_beside_the_variants(project):
    root, _ = project
    log = (root / "repro.log").read_text()
    assert "Running stage 'import@port'" in log and "Running stage 'evaluate_import@port'" in log
    from hourglass.inference.runner import load_model

    loaded = load_model(root / "models" / "port")
    assert loaded.variant == "port" and loaded.config["imported_from"]["commit"].startswith("ceedc14b")
    assert (loaded.model_config.stacks, loaded.model_config.features, loaded.model_config.input_res) == (2, 64, 64)
    metrics = json.loads((root / "models" / "port" / "eval" / "metrics.json").read_text())
    trained = json.loads((root / "models" / "hg_stacked_int" / "seed-0" / "eval" / "metrics.json").read_text())
    assert metrics["variant"] == "port" and metrics["metric"] == trained["metric"] == "PCKh@0.5"
    assert metrics["num_people"] == trained["num_people"] and len(metrics["stacks"]) == 2
    # the port's 678,240 registered parameters less its 29 unused skip convolutions (one 128 wide, 28 64 wide)
    assert metrics["parameters"] == 678240 - (128 * 128 + 128) - 28 * (64 * 64 + 64)
    # the report's results table: the paper's rows, the release and the trained variant, each with its interval
    report = (root / "reports" / "results.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| **port** (released weights)"))
    assert f"`{WEIGHTS}`, imported from princeton-vl/pytorch_stacked_hourglass" in row
    assert f"{metrics['final']['Mean']:.1f}" in row
    assert "| paper: 8-stack, final |" in report and "| **hg_stacked_int** |" in report
    missing = report[report.find("Missing inputs"):] if "Missing inputs" in report else ""
    assert "models/port" not in missing  # no training files is what an imported model is, not a gap
    summary = json.loads((root / "reports" / "summary.json").read_text())
    assert summary["variants"]["port"]["final"]["Mean"] == pytest.approx(metrics["final"]["Mean"])


def test_the_release_has_an_mlflow_run_beside_the_sweeps_with_its_eval_scores(project):
    from mlflow.tracking import MlflowClient

    root, env = project
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    record = json.loads((root / "models" / "port" / "mlflow.json").read_text())
    run_ = client.get_run(record["run_id"])
    metrics = json.loads((root / "models" / "port" / "eval" / "metrics.json").read_text())
    assert run_.data.metrics["eval/pckh/Mean"] == pytest.approx(metrics["final"]["Mean"])
    assert run_.data.tags["hourglass.imported"] == "true" and run_.data.tags["variant"] == "port"
    assert run_.data.params["imported_from.sha256"] == loaded_sha(root)
    trained = json.loads((root / "models" / "hg_stacked_int" / "seed-0" / "mlflow.json").read_text())
    assert run_.data.tags["mlflow.parentRunId"] == client.get_run(trained["run_id"]).data.tags["mlflow.parentRunId"]
    assert record["registered_model"] is None and record["model_uri"]  # logged, not registered


def loaded_sha(root: Path) -> str:
    return hashlib.sha256((root / WEIGHTS).read_bytes()).hexdigest()


def test_new_weights_rerun_only_the_import_its_score_and_the_report(project):
    root, env = project
    assert json.loads(dvc(["status", "--json"], root, env).stdout) == {}
    weights = root / WEIGHTS
    original = weights.read_bytes()
    try:
        weights.write_bytes(original + b"\0")  # another file at the same path
        changed = set(json.loads(dvc(["status", "--json"], root, env).stdout))
        assert changed == {"import@port"}  # evaluate_import@port and report follow once its outputs change
    finally:
        weights.write_bytes(original)
    assert json.loads(dvc(["status", "--json"], root, env).stdout) == {}


def test_a_variant_fine_tunes_from_the_imported_release(project):
    """The README's fine-tuning path: a variant naming the imported model in ``init_from``, added to the sweep after
    ``import@port`` ran, trains from those weights through ``dvc repro``, and only it runs."""
    root, env = project
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["variants"]["port_ft"] = {"model": {"stacks": 2, "modules": 1, "features": 64, "stem_width": 128},
                                              "train": {"init_from": "models/port"}}
    params["sweep"] = [*params["sweep"], "port_ft"]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = dvc(["repro", "train@port_ft-0"], root, env)
    ran = done.stdout + done.stderr
    assert "Running stage 'train@port_ft-0'" in ran and "Running stage 'train@hg_stacked_int-0'" not in ran
    assert "initialised from models/port" in ran and "re-initialised" not in ran
    out = root / "models" / "port_ft" / "seed-0"
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["initialised_from"]["source"] == "models/port" and config["initialised_from"]["reinitialised"] == []
    converted = hashlib.sha256((root / "models" / "port" / "checkpoint.pt").read_bytes()).hexdigest()
    assert config["initialised_from"]["sha256"] == converted
    rows = (out / "epochs.csv").read_text().splitlines()
    assert len(rows) == 1 + TINY["train"]["epochs"]  # its own epochs from the start, not a resume
    from mlflow.tracking import MlflowClient

    record = json.loads((out / "mlflow.json").read_text())
    logged = MlflowClient(env["MLFLOW_TRACKING_URI"]).get_run(record["run_id"]).data.params
    assert logged["train.init_from"] == "models/port" and logged["init.sha256"] == converted
