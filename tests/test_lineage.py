"""Lineage (``hourglass.lineage``): every training run and registered version says which data, code and params made it.

The data hash is the one a real ``dvc repro`` wrote into ``dvc.lock`` (checked against DVC's own cache), the commit
and the dirty flag come from a real git checkout, and a tiny training run on a real MLflow store carries the same
record in ``config.yaml``, its checkpoint, its run's tags and params, its registered version's tags and
``hourglass predict``'s output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from predict_models import cli, smooth_image
from toy_poses import ToyPoses, tiny_params

from hourglass.config.params_file import parse_params
from hourglass.dataset_card import load_card
from hourglass.io.checkpoint import CHECKPOINT_NAME, load_checkpoint
from hourglass.lineage import Lineage, compute_lineage, params_digest, version_lineage
from hourglass.train.loop import RESOLVED_CONFIG, train
from hourglass.train.run_config import run_record

pytestmark = pytest.mark.usefixtures("one_thread")

ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
       "DVC_NO_ANALYTICS": "1"}


def _run(cmd: list[str], cwd: Path) -> str:
    import os

    done = subprocess.run(cmd, cwd=cwd, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


def _dvc(args: list[str], cwd: Path) -> str:
    return _run([sys.executable, "-m", "dvc", *args], cwd)


WRITE_DATA = ("import pathlib,sys; d=pathlib.Path('data/processed/synthetic'); d.mkdir(parents=True, exist_ok=True); "
              "(d/'preprocess.json').write_text(pathlib.Path('source.txt').read_text())")


def test_lineage_holds_the_hash_dvc_recorded_and_the_checkout_it_ran_in(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    _run(["git", "init", "-q"], root)
    _dvc(["init", "-q"], root)
    (root / "source.txt").write_text('{"fingerprint": "one"}')
    _dvc(["stage", "add", "-q", "-n", "preprocess", "-d", "source.txt", "-o", "data/processed/synthetic",
          f'python -c "{WRITE_DATA}"'], root)
    _dvc(["repro", "-q"], root)
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-qm", "data"], root)
    params = tiny_params()
    record = run_record(params, 3)

    def lineage() -> Lineage:
        return compute_lineage(params, record, "hg", people={"train": 24, "valid": 8}, data_fingerprint="fp",
                               root=root)

    first = lineage()
    # the hash is DVC's own: its cache holds the directory listing under that name, naming the file written
    md5 = first.dvc_md5
    assert md5 is not None and md5.endswith(".dir")
    listing = json.loads((root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).read_text())
    assert [entry["relpath"] for entry in listing] == ["preprocess.json"]
    assert first.git_commit == _run(["git", "rev-parse", "HEAD"], root).strip() and first.git_dirty is False
    assert (first.dataset, first.card_digest) == ("synthetic", load_card("synthetic").digest())
    assert (first.people_train, first.people_valid, first.data_fingerprint) == (24, 8, "fp")
    assert first.params_digest == params_digest(record, "hg") != params_digest(run_record(params, 4), "hg")

    # new data: dvc repro rewrites dvc.lock (not a dirty tree: it is the pipeline's own record), with a new hash
    (root / "source.txt").write_text('{"fingerprint": "two"}')
    _run(["git", "commit", "-qam", "more data"], root)
    _dvc(["repro", "-q"], root)
    assert "dvc.lock" in _run(["git", "status", "--porcelain"], root)
    second = lineage()
    assert second.dvc_md5 not in (None, md5) and second.git_dirty is False
    assert second.git_commit != first.git_commit
    (root / "source.txt").write_text("edited, not committed")
    assert lineage().git_dirty is True
    # outside a checkout and without a dvc.lock: unknown, not an error
    elsewhere = compute_lineage(params, record, "hg", people={}, root=tmp_path)
    assert (elsewhere.dvc_md5, elsewhere.git_commit, elsewhere.git_dirty, elsewhere.people_train) == (
        None, None, None, None)


def test_the_record_and_the_tags_give_the_same_lineage_back():
    full = Lineage(dataset="synthetic", card_digest="c" * 64, params_digest="p" * 64, data_fingerprint="f" * 64,
                   dvc_md5="d" * 32 + ".dir", people_train=24, people_valid=8, git_commit="a" * 40, git_dirty=False,
                   init_source="models:/hg-synthetic/2", init_sha256="s" * 64,
                   warm_start="fine-tuned from models:/hg-synthetic@champion (version 2)")
    sparse = Lineage(dataset="synthetic", card_digest="c" * 64, params_digest="p" * 64)
    for lineage in (full, sparse):
        assert Lineage.from_record(yaml.safe_load(yaml.safe_dump(lineage.to_record()))) == lineage
        tags = lineage.to_tags()
        assert all(k.startswith("lineage.") and isinstance(v, str) and v for k, v in tags.items())
        assert Lineage.from_tags({**tags, "variant": "hg"}) == lineage
    assert full.to_tags()["lineage.git_dirty"] == "false" and "lineage.git_commit" not in sparse.to_tags()
    assert "24 training / 8 validation people" in full.summary() and "git aaaaaaaaaaaa;" in full.summary()
    assert "random initial weights" in sparse.summary() and "git commit unknown" in sparse.summary()
    assert Lineage.from_tags({"variant": "hg"}) is None and Lineage.from_record(None) is None


REGISTERED = "hg-lineage-synthetic"  # mlflow.registered_model hg-lineage, registered per card: <name>-<dataset>


def test_a_training_run_and_its_registered_version_carry_the_lineage_to_predict(tmp_path, mlflow_store, capsys):
    raw = tiny_params(epochs=1).model_dump(mode="json")
    raw["mlflow"] = {**raw["mlflow"], "enabled": True, "experiment": "lineage", "log_model": True,
                     "system_metrics": False, "sweep": None, "registered_model": "hg-lineage"}
    params = parse_params(raw)
    out = tmp_path / "models" / "hg" / "seed-3"
    result = train(params, out, train_set=ToyPoses(8), val_set=ToyPoses(4, seed=1), variant=None,
                   data_fingerprint="f" * 64)

    recorded = yaml.safe_load((out / RESOLVED_CONFIG).read_text())["lineage"]
    lineage = Lineage.from_record(recorded)
    assert lineage is not None and load_checkpoint(out / CHECKPOINT_NAME)["config"]["lineage"] == recorded
    assert (lineage.people_train, lineage.people_valid, lineage.data_fingerprint) == (8, 4, "f" * 64)
    assert lineage.card_digest == load_card("synthetic").digest()
    assert lineage.params_digest == params_digest(run_record(params, 3), None)
    assert lineage.init_source is None and lineage.warm_start is None  # warm start off, random weights

    client = MlflowClient(tracking_uri=mlflow_store)
    run = client.get_run(result.mlflow_run_id)
    assert Lineage.from_tags(run.data.tags) == lineage
    assert run.data.params["lineage.card_digest"] == lineage.card_digest
    assert run.data.params["lineage.params_digest"] == lineage.params_digest
    assert version_lineage(mlflow_store, REGISTERED, 1) == lineage  # what the contest reads

    image = tmp_path / "a.png"
    import cv2

    cv2.imwrite(str(image), smooth_image(80, 60))
    document = tmp_path / "p.json"
    assert cli(str(image), "--model", f"models:/{REGISTERED}/1", "--json", str(document)) == 0
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("lineage: ")]
    assert line == f"lineage: {lineage.summary()}"
    assert f"card synthetic {lineage.card_digest[:12]}, preprocessed data ffffffffffff" in line
    trained_on = json.loads(document.read_text())["trained_on"]
    assert trained_on["lineage"] == recorded and trained_on["lineage_summary"] == lineage.summary()
