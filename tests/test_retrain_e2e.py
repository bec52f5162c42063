"""Scheduled retraining a team can trust, end to end: the real pipeline on a COCO export in a folder outside the
repo, run by the retrain flow on a real Prefect server with a real MLflow store.

Run 1 trains and promotes. Labelled images are added to the folder (some land in validation): run 2 sees the change,
brings them in, fine-tunes from the champion, re-scores the champion on the grown validation split and records both
scores and the split's digest. More labels arrive and the served deployment is triggered twice at once: the runs go
in turn, the first trains and holds a contest, the second finds nothing new, holds no contest and changes no tag. A
rollback restores the earlier version. The webhook receives the promotion.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from coco_growth import grow_export
from dvc_project import REPO, make_project, merge, run
from mlflow import MlflowClient
from prefect.client.orchestration import get_client
from test_flow_ops import Webhook, serve_and_trigger

from hourglass.tracking.champion_log import read_records

pytestmark = [pytest.mark.anchor, pytest.mark.slow]

TINY = {
    "preprocess": {"workers": 1},
    "model": {"features": 16, "input_res": 64},
    "train": {"epochs": 2, "steps_per_epoch": None, "batch_size": 4, "val_batch_size": 8, "workers": 0,
              "log_every": 1, "optimizer": "adam", "lr": 1e-3, "precision": "fp32"},
    "mlflow": {"system_metrics": False, "sweep": None, "registered_model": "hg"},
    "report": {"examples": 2},
    "sweep": ["hg_stacked_int"],
    "flows": {"champion_variant": "hg_stacked_int", "warm_start": "champion", "min_improvement": 0.0,
              "download_retries": 0},
}


def _tags(client: MlflowClient, name: str) -> dict[str, dict[str, str]]:
    return {mv.version: dict(mv.tags) for mv in client.search_model_versions(f"name = '{name}'")}


def _flow(root: Path) -> str:
    from pipeline.flows import main

    assert main(["run", "--repo", str(root)]) == 0
    return read_records(root)[-1]["kind"]


def test_retraining_picks_up_new_labels_compares_fairly_and_rolls_back(
        prefect_server: None, anchor_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    export = tmp_path / "export"
    shutil.copytree(anchor_dir / "mmpose/tests/data/coco", export)
    root = tmp_path / "project"
    root.mkdir()
    hook = Webhook()
    try:
        params = merge(yaml.safe_load((REPO / "params.yaml").read_text()),
                       merge(TINY, {"dataset": "people", "flows": {"notify_url": hook.url}}))
        env = make_project(root, merge(params, {"dataset": "synthetic"}))
        run([sys.executable, "-m", "pipeline.dataset", "add", "people", "--coco", str(export / "test_coco.json"),
             "--images", str(export), "--valid-fraction", "0.5"], root, env)
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run(["git", "add", "-A"], root, env)
        run(["git", "commit", "-qm", "people"], root, env)
        uri = env["MLFLOW_TRACKING_URI"]
        for key in ("MLFLOW_TRACKING_URI", "PATH", "OMP_NUM_THREADS"):
            monkeypatch.setenv(key, env[key])
        client = MlflowClient(tracking_uri=uri)
        model = "hg-people"

        # run 1: trains and promotes
        assert _flow(root) == "contest"
        first = read_records(root)[-1]
        assert first["promoted"] and first["champion_version"] is None and first["model"] == model
        assert str(client.get_model_version_by_alias(model, "champion").version) == first["candidate_version"]
        assert [m["event"] for m in hook.messages] == ["promotion"]

        # labelled images arrive in the export folder; some land in validation
        valid_before = json.loads((root / "data/raw/people/annot/valid.json").read_text())
        grow_export(export, 8)
        assert _flow(root) == "contest"
        second = read_records(root)[-1]
        valid_after = json.loads((root / "data/raw/people/annot/valid.json").read_text())
        assert len(valid_after["annotations"]) > len(valid_before["annotations"])
        assert second["champion_version"] == first["candidate_version"] and second["champion_rescored"]
        assert second["split_digest"] != first["split_digest"]
        assert "card people" in second["candidate_lineage"] and "card people" in second["champion_lineage"]
        run_cfg = yaml.safe_load((root / "models/hg_stacked_int/seed-0/config.yaml").read_text())
        started = run_cfg.get("initialised_from") or {}
        assert started.get("champion_version") == first["candidate_version"], started  # fine-tuned from run 1
        # both recorded scores are what the evaluator gives for both versions on the grown split
        evaluation = json.loads((root / "models/hg_stacked_int/seed-0/eval/metrics.json").read_text())
        assert second["candidate_score"] == pytest.approx(evaluation["final"]["Mean"])
        champion = client.get_model_version(model, first["candidate_version"])
        assert champion.tags["contest.split_digest"] == second["split_digest"]
        stored = Path(client.download_artifacts(champion.run_id, champion.tags["contest.preds"], str(tmp_path)))
        scored = subprocess.run([sys.executable, "-m", "hourglass.evaluation", str(stored), "--gt",
                                 str(root / "data/raw/people/annot/valid.h5"), "--dataset", "people", "--json"],
                                cwd=root, env={**os.environ, **env}, capture_output=True, text=True, check=True)
        assert second["champion_score"] == pytest.approx(json.loads(scored.stdout)["Mean"])
        scored = subprocess.run([sys.executable, "-m", "hourglass.evaluation",
                                 str(root / "models/hg_stacked_int/seed-0/eval/preds.h5"), "--gt",
                                 str(root / "data/raw/people/annot/valid.h5"), "--dataset", "people", "--json"],
                                cwd=root, env={**os.environ, **env}, capture_output=True, text=True, check=True)
        assert second["candidate_score"] == pytest.approx(json.loads(scored.stdout)["Mean"])

        # runs 3 and 4: more labels arrive and the served deployment is triggered twice at once; the runs go in
        # turn (the second waits for the slot, then finds nothing new: no contest, every tag as the first left it)
        grow_export(export, 4, start=8)
        runs, output = serve_and_trigger(root, dict(os.environ), count=2, timeout=600)
        assert all(r.state is not None and r.state.is_completed() for r in runs), output[-3000:]
        third, fourth = sorted(runs, key=lambda r: r.start_time)
        assert third.end_time <= fourth.start_time
        with get_client(sync_client=True) as prefect:
            assert "AwaitingConcurrencySlot" in [st.name for st in prefect.read_flow_run_states(fourth.id)]
        kinds = [r["kind"] for r in read_records(root)]
        assert kinds[-2:] == ["contest", "nothing new"], kinds
        assert read_records(root)[-2]["split_digest"] != second["split_digest"]  # run 3 scored the grown split
        before = _tags(client, model)
        holder = str(client.get_model_version_by_alias(model, "champion").version)
        assert _flow(root) == "nothing new"  # and once more by hand: still nothing changes
        assert _tags(client, model) == before
        assert str(client.get_model_version_by_alias(model, "champion").version) == holder

        # rollback restores run 1's version (when run 2 did not win, first put run 2's version up by hand)
        from pipeline.flows import main

        if holder == first["candidate_version"]:
            assert main(["rollback", "--repo", str(root), "--to", second["candidate_version"]]) == 0
        assert main(["rollback", "--repo", str(root)]) == 0
        assert str(client.get_model_version_by_alias(model, "champion").version) == first["candidate_version"]
        assert read_records(root)[-1]["kind"] == "rollback"
        assert "rollback" in [m["event"] for m in hook.messages]
    finally:
        hook.close()
