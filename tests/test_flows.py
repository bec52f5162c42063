"""The Prefect retraining flow over a tiny real DVC repository (git + dvc init, stub stages), tmp MLflow.

The stub stages write what the real ones would (real validation data: annotations, crops table, images; an MLflow
model version with its card tags and models/<variant>/seed-<n>/mlflow.json; the evaluate stage's eval/metrics.json
and preds.h5, with predictions right on a chosen share of the people) for a matrix of two variants x two seeds, so
the flow's real path runs: `dvc repro` subprocesses, Prefect retries, the choice of the champion variant's best
seed, the contest on the validation split, the artifact and the history reports/champion.json. The stubs copy what
the test prepared (``fixtures/``), so they import nothing of the project.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun
from prefect.client.schemas.sorting import FlowRunSort
from prefect.settings import PREFECT_API_URL, temporary_settings
from shipped import write_params

from hourglass.config.params_file import load_params
from hourglass.data.preprocess import preprocess
from hourglass.data.synthetic import generate_dataset
from hourglass.evaluation.split_digest import split_digest
from hourglass.family import family_named
from hourglass.io.eval_files import read_ground_truth, write_predictions
from hourglass.report.bootstrap import PeopleBootstrap, correct_joints
from hourglass.tracking.candidate import ChampionError, choose_candidate
from hourglass.tracking.champion import decide_champion
from hourglass.tracking.champion_log import read_records
from hourglass.tracking.registry import model_version, record_score
from pipeline.dvc_stages import StageFailed, run_dvc_repro
from pipeline.flows import ARTIFACT_KEY, build_deployment, main, promote, server_problem

MODEL = "fake-hg-mpii"  # params' mlflow.registered_model `fake-hg`, dataset mpii
SHARES = {"a-0": 0.4, "a-1": 0.5, "b-0": 0.6, "b-1": 0.9}  # of the validation people each seed gets right
STAGES_PY = '''
"""Stub stages for tests/test_flows.py: they copy what the test prepared in fixtures/."""
import json, shutil, sys
from pathlib import Path

FIXTURES = Path(sys.argv[2])


def write(path, text):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


def copy(source, target):
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)


def download(attempts_file):
    attempts = Path(attempts_file)
    count = int(attempts.read_text()) + 1 if attempts.exists() else 1
    attempts.write_text(str(count))
    if count == 1:
        sys.exit("simulated network failure on attempt 1")
    copy(FIXTURES / "raw", "data/raw/mpii")


def train(variant, seed, log_metric):
    from mlflow import MlflowClient
    fixture = json.loads((FIXTURES / "fixture.json").read_text())
    score = fixture["scores"][f"{variant}-{seed}"]
    client = MlflowClient()
    run_id = client.create_run("0", run_name=f"train@{variant}-{seed}").info.run_id
    if log_metric == "yes":
        client.log_metric(run_id, "eval/pckh/Mean", float(score))
    client.set_terminated(run_id)
    if not client.search_registered_models(filter_string="name = 'fake-hg-mpii'"):
        client.create_registered_model("fake-hg-mpii")
    mv = client.create_model_version("fake-hg-mpii", source=f"runs:/{run_id}/model", run_id=run_id)
    for key, value in fixture["card"].items():
        client.set_model_version_tag("fake-hg-mpii", mv.version, key, value)
    write(f"models/{variant}/seed-{seed}/metrics.json", json.dumps({"val/pckh/Mean": float(score)}))
    write(f"models/{variant}/seed-{seed}/mlflow.json", json.dumps({
        "run_id": run_id, "model_uri": f"models:/fake-hg-mpii/{mv.version}", "registered_model": "fake-hg-mpii",
        "version": str(mv.version)}))


def evaluate(variant, seed):
    fixture = json.loads((FIXTURES / "fixture.json").read_text())
    item = f"{variant}-{seed}"
    out = Path(f"models/{variant}/seed-{seed}/eval")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / f"preds-{item}.h5", out / "preds.h5")
    write(out / "metrics.json", json.dumps({"split_digest": fixture["digest"], "final": {
        "Mean": fixture["scores"][item]}, "mlflow_metrics": {"eval/pckh/Mean": fixture["scores"][item]}}))


command, _, *args = sys.argv[1:]
if command == "download":
    download(*args)
elif command == "preprocess":
    copy(FIXTURES / "processed", "data/processed/mpii")
elif command == "train":
    train(*args)
elif command == "evaluate":
    evaluate(*args)
elif command == "report":
    write("reports/summary.md", "# report")
elif command == "broken":
    print("partial output")
    sys.exit("boom: the stage could not find its input")
'''

DVC_YAML = """
stages:
  download:
    cmd: python stages.py download {fixtures} {attempts}
    outs:
      - data/raw
  preprocess:
    cmd: python stages.py preprocess {fixtures}
    deps:
      - data/raw
    outs:
      - data/processed
  train:
    matrix:
      variant: ${{sweep}}
      seed: ${{seeds}}
    cmd: python stages.py train {fixtures} ${{item.variant}} ${{item.seed}} {log_metric}
    deps:
      - data/processed
    outs:
      - models/${{item.variant}}/seed-${{item.seed}}/mlflow.json:
          cache: false
    metrics:
      - models/${{item.variant}}/seed-${{item.seed}}/metrics.json:
          cache: false
  evaluate:
    matrix:
      variant: ${{sweep}}
      seed: ${{seeds}}
    cmd: python stages.py evaluate {fixtures} ${{item.variant}} ${{item.seed}}
    deps:
      - models/${{item.variant}}/seed-${{item.seed}}/metrics.json
    outs:
      - models/${{item.variant}}/seed-${{item.seed}}/eval
  report:
    cmd: python stages.py report {fixtures}
    deps:
      - models
    outs:
      - reports/summary.md
  broken:
    cmd: python stages.py broken {fixtures}
"""

PARAMS_YAML = """
dataset: mpii
sweep: [a, b]
seeds: [0, 1]
train:
  variants: {a: {}, b: {}}
mlflow:
  registered_model: fake-hg
synthetic: {train_images: 1, valid_images: 6, workers: 1}
preprocess: {workers: 1}
flows:
  champion_variant: b
  champion_metric: null
  download_retries: 2
  download_retry_delay: 0
"""

EXPECTED_TASKS = [
    "check-sources", "fetch-data-download", "repro-preprocess", "repro-train@a-0", "repro-evaluate@a-0",
    "repro-train@a-1", "repro-evaluate@a-1", "repro-train@b-0", "repro-evaluate@b-0", "repro-train@b-1",
    "repro-evaluate@b-1", "repro-report", "promote-b",
]


@pytest.fixture
def mlflow_uri(mlflow_store: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """conftest's fresh MLflow store; its ``MLFLOW_TRACKING_URI`` reaches the stub training stages through
    ``dvc repro``."""
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    return mlflow_store


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the stub stages copy: synthetic people with MPII's joints, preprocessed with the test's params; per
    seed a preds.h5 right on ``SHARES`` of the people and its Mean; the split digest; the card tags of a version."""
    root = tmp_path_factory.mktemp("flow-fixtures")
    params = load_params(write_params(root / "params.yaml", PARAMS_YAML))
    generate_dataset(params.synthetic, root / "raw", progress=False)
    preprocess(root / "raw", root / "processed", params, progress=False)
    gt = read_ground_truth(root / "raw" / "annot" / "valid.h5")
    family = family_named("mpii")
    boot = PeopleBootstrap(family, gt.annotated)
    scores = {}
    for item, share in SHARES.items():
        preds = gt.joints.copy()
        preds[round(share * len(gt)):] += 1000.0  # far off: wrong
        write_predictions(root / f"preds-{item}.h5", preds)
        scores[item] = boot.add(item, correct_joints(preds, gt.joints, gt.annotated, gt.normalize,
                                                     family.threshold))["Mean"]
    card = {"dataset_card": family.card.digest()[:12], "keypoints": ",".join(family.joints.names),
            "metric": family.metric}
    digest = split_digest(root / "processed", root / "raw" / "annot" / "valid.h5", params)
    (root / "fixture.json").write_text(json.dumps({"scores": scores, "digest": digest, "card": card}))
    return root


def make_repo(root: Path, fixtures: Path, *, log_metric: bool = True, download_fails_once: bool = True) -> Path:
    """A git + DVC repository whose stages are the stubs above."""
    repo = root / "repo"
    repo.mkdir()
    attempts = root / "download-attempts"
    if not download_fails_once:
        attempts.write_text("1")
    (repo / "stages.py").write_text(STAGES_PY)
    (repo / "dvc.yaml").write_text(
        DVC_YAML.format(attempts=attempts, log_metric="yes" if log_metric else "no", fixtures=fixtures)
    )
    write_params(repo / "params.yaml", PARAMS_YAML)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    return repo


def _task_runs(flow_run_id: str, expected: int) -> list[TaskRun]:
    """The flow run's task runs by start time; task states reach the API as events, so wait for them all."""
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:
            by_flow_run = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            runs = client.read_task_runs(flow_run_filter=by_flow_run)
            done = [run for run in runs if run.state is not None and run.state.is_final()]
            if len(done) >= expected or time.monotonic() > deadline:
                return sorted(runs, key=lambda run: run.start_time or run.expected_start_time)
            time.sleep(0.5)


def test_failed_stage_reports_stage_and_stderr_tail(tmp_path: Path, fixtures: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    repo = make_repo(tmp_path, fixtures)
    log = logging.getLogger("test-flows")
    with caplog.at_level(logging.INFO, logger="test-flows"):
        with pytest.raises(StageFailed) as failure:
            run_dvc_repro("broken", repo, log)
    assert failure.value.stage == "broken" and failure.value.returncode != 0
    assert "'broken'" in str(failure.value)
    assert any("boom: the stage could not find its input" in line for line in failure.value.stderr_tail)
    assert "partial output" in caplog.text  # stdout streamed into the logger as it came


def _latest_flow_run_id() -> str:
    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["retrain"])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=1,
        )
    return str(run.id)


def _all_tags(client: MlflowClient) -> dict:
    """Every version's and run's tags and the aliases: what a run with nothing new must leave as they were."""
    versions = client.search_model_versions(f"name = '{MODEL}'")
    return {"aliases": dict(client.get_registered_model(MODEL).aliases),
            **{mv.version: (dict(mv.tags), dict(client.get_run(mv.run_id).data.tags)) for mv in versions}}


def test_cli_run_reproduces_in_order_retries_download_and_promotes(
    prefect_server: None, tmp_path: Path, fixtures: Path, mlflow_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path, fixtures)
    assert main(["run", "--repo", str(repo)]) == 0
    assert "promoted v4" in capsys.readouterr().out

    runs = _task_runs(_latest_flow_run_id(), len(EXPECTED_TASKS))
    assert [run.name for run in runs] == EXPECTED_TASKS  # `broken` is in dvc.yaml but not in the flow
    assert runs[0].name == "check-sources"  # the sources outside the project first
    fetch = runs[1]
    assert fetch.run_count == 2 and fetch.state is not None and fetch.state.is_completed()
    assert (tmp_path / "download-attempts").read_text() == "2"

    # b is the champion variant; its seed 1 (registered fourth: version 4) beats its seed 0 (version 3) and
    # competes; nobody held the alias.
    scores = json.loads((fixtures / "fixture.json").read_text())["scores"]
    client = MlflowClient(tracking_uri=mlflow_uri)
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "4"
    assert client.get_model_version(MODEL, "4").tags["champion_decision"] == "promoted"
    assert "champion_decision" not in client.get_model_version(MODEL, "3").tags
    (record,) = read_records(repo)
    assert record["kind"] == "contest" and record["promoted"] is True and record["candidate_version"] == "4"
    assert record["champion_version"] is None and record["model"] == MODEL
    assert record["candidate_score"] == pytest.approx(scores["b-1"]) and record["variant"] == "b"
    assert record["seed"] == 1 and record["seed_scores"] == {"0": pytest.approx(scores["b-0"]),
                                                             "1": pytest.approx(scores["b-1"])}
    assert record["split_digest"] == json.loads((fixtures / "fixture.json").read_text())["digest"]
    artifact = Artifact.get(ARTIFACT_KEY)
    assert artifact is not None and "promoted" in artifact.data and f"{scores['b-1']:.4f}" in artifact.data
    assert "candidate (`b` seed 1)" in artifact.data
    assert f"seed 0: {scores['b-0']:.4f}, seed 1: {scores['b-1']:.4f}" in artifact.data
    assert f"run `{record['run_id']}`" in artifact.data and f"models:/{MODEL}/4" in artifact.data
    assert all(run.state.name == "Completed" for run in runs[:-1])  # every stage ran: nothing was up to date

    # Nothing changed: DVC skips every stage, the task runs say so, and no contest is held: no tag changes, the
    # history gains a note.
    before = _all_tags(client)
    assert main(["run", "--repo", str(repo)]) == 0
    assert "nothing new, no contest (version 4 already holds @champion)" in capsys.readouterr().out
    again = _task_runs(_latest_flow_run_id(), len(EXPECTED_TASKS))
    assert again[0].name == "check-sources" and again[0].state.name == "Completed"  # checked, nothing changed
    assert [run.state.name for run in again[1:-1]] == ["Skipped"] * (len(EXPECTED_TASKS) - 2)
    assert again[-1].name == "promote-b" and again[-1].state.is_completed()
    assert _all_tags(client) == before
    assert [r["kind"] for r in read_records(repo)] == ["contest", "nothing new"] and read_records(repo)[0] == record
    artifact = Artifact.get(ARTIFACT_KEY)
    assert artifact is not None and "nothing new, no contest" in artifact.data


def test_flows_parallel_trains_every_seed_at_once_then_evaluates_one_by_one(
    prefect_server: None, tmp_path: Path, fixtures: Path, mlflow_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``flows.parallel: 2``: the trainings run on a local Dask cluster of two workers (pipeline.sweep), each
    committed to DVC, in one task; the evaluations and the report follow as DVC stages; DVC is clean after it."""
    repo = make_repo(tmp_path, fixtures, download_fails_once=False)
    write_params(repo / "params.yaml", PARAMS_YAML + "  parallel: 2\n")
    MlflowClient(tracking_uri=mlflow_uri).create_registered_model(MODEL)  # two stubs at once would race to
    assert main(["run", "--repo", str(repo)]) == 0
    assert "promoted" in capsys.readouterr().out
    expected = ["check-sources", "fetch-data-download", "repro-preprocess", "train-sweep-2", "repro-evaluate@a-0",
                "repro-evaluate@a-1", "repro-evaluate@b-0", "repro-evaluate@b-1", "repro-report", "promote-b"]
    runs = _task_runs(_latest_flow_run_id(), len(expected))
    assert [run.name for run in runs] == expected
    assert all(run.state.name == "Completed" for run in runs)
    (record,) = read_records(repo)
    assert record["promoted"] is True and record["variant"] == "b" and record["seed"] == 1
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=repo, capture_output=True,
                            text=True, check=True)
    assert json.loads(status.stdout) == {"broken": ["always changed"]}  # the stub stage the flow never runs


def _seed_files(root: Path, fixtures: Path, item: str, run_id: str, version: str) -> None:
    """models/b/seed-0 as training and the evaluate stage leave it, with ``item``'s predictions."""
    fixture = json.loads((fixtures / "fixture.json").read_text())
    model_dir = root / "models" / "b" / "seed-0"
    (model_dir / "eval").mkdir(parents=True)
    (model_dir / "mlflow.json").write_text(json.dumps(
        {"run_id": run_id, "model_uri": f"models:/{MODEL}/{version}", "registered_model": MODEL, "version": version}))
    shutil.copy(fixtures / f"preds-{item}.h5", model_dir / "eval" / "preds.h5")
    score = fixture["scores"][item]
    (model_dir / "eval" / "metrics.json").write_text(json.dumps(
        {"split_digest": fixture["digest"], "final": {"Mean": score}, "mlflow_metrics": {"eval/pckh/Mean": score}}))


def test_promote_task_keeps_a_better_champion_on_its_stored_score(
    prefect_server: None, tmp_path: Path, fixtures: Path, mlflow_uri: str
) -> None:
    """The champion's predictions on this split were stored by its own contest: reused, not evaluated again (it has
    no model to evaluate); the candidate's run logged no metric, so its eval/metrics.json gives its seed score."""
    fixture = json.loads((fixtures / "fixture.json").read_text())
    for kind in ("raw", "processed"):
        shutil.copytree(fixtures / kind, tmp_path / "data" / kind / "mpii")
    write_params(tmp_path / "params.yaml", PARAMS_YAML)
    client = MlflowClient(tracking_uri=mlflow_uri)
    client.create_registered_model(MODEL)
    runs = []
    for _ in range(2):  # v1: the champion; v2: the candidate
        runs.append(client.create_run("0").info.run_id)
        version = client.create_model_version(MODEL, source=f"runs:/{runs[-1]}/model", run_id=runs[-1]).version
        for key, value in fixture["card"].items():
            client.set_model_version_tag(MODEL, version, key, value)
    client.set_registered_model_alias(MODEL, "champion", "1")
    record_score(client, MODEL, model_version(client, MODEL, "1"), fixture["digest"], fixtures / "preds-b-1.h5",
                 "eval/pckh/Mean", fixture["scores"]["b-1"])
    champion_tags = client.get_model_version(MODEL, "1").tags
    _seed_files(tmp_path, fixtures, "a-0", runs[1], "2")

    record = promote(str(tmp_path), "params.yaml", "b", [0])
    assert record["promoted"] is False and record["serving_version"] == "1" and record["champion_rescored"] is False
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
    tags = client.get_model_version(MODEL, "2").tags
    assert tags["champion_decision"] == "kept" and tags["champion_reason"].startswith("worse than the champion")
    assert float(tags["candidate_score"]) == pytest.approx(fixture["scores"]["a-0"])
    assert float(tags["champion_score"]) == pytest.approx(fixture["scores"]["b-1"])
    assert client.get_model_version(MODEL, "1").tags == champion_tags
    assert read_records(tmp_path) == [record]
    assert record == {**record, "kind": "contest", "variant": "b", "seed": 0, "run_id": runs[1],
                      "seed_scores": {"0": pytest.approx(fixture["scores"]["a-0"])}, "champion_run_id": runs[0]}
    artifact = Artifact.get(ARTIFACT_KEY)
    assert artifact is not None and "kept the current champion" in artifact.data
    assert f"{fixture['scores']['b-1']:.4f}" in artifact.data and "its stored score on this split" in artifact.data


def test_missing_metric_everywhere_is_a_clear_error(tmp_path: Path, mlflow_uri: str) -> None:
    client = MlflowClient(tracking_uri=mlflow_uri)
    client.create_registered_model(MODEL)
    run_id = client.create_run("0").info.run_id
    client.create_model_version(MODEL, source=f"runs:/{run_id}/model", run_id=run_id)
    model_dir = tmp_path / "models" / "b" / "seed-0"
    model_dir.mkdir(parents=True)
    (model_dir / "mlflow.json").write_text(json.dumps(
        {"run_id": run_id, "model_uri": f"models:/{MODEL}/1", "registered_model": MODEL, "version": 1}
    ))
    params = load_params(write_params(tmp_path / "params.yaml", PARAMS_YAML))
    with pytest.raises(ChampionError, match=r"'eval/pckh/Mean' \(params flows.champion_metric\) is neither"):
        decide_champion(tmp_path, params, logging.getLogger("test-flows"), [0])
    assert not (tmp_path / "reports" / "champion.json").exists()


def test_a_metric_the_contest_cannot_compare_is_refused_before_training(tmp_path: Path) -> None:
    write_params(tmp_path / "params.yaml", PARAMS_YAML.replace("champion_metric: null",
                                                               "champion_metric: val/pckh/Mean"))
    with pytest.raises(ChampionError, match=r"flows.champion_metric 'val/pckh/Mean': the contest scores"):
        build_deployment(Path("params.yaml"), tmp_path)


def test_the_best_seed_competes_ties_keep_the_first(tmp_path: Path, mlflow_uri: str) -> None:
    """choose_candidate: the seed with the best metric (lower is better when so configured), the first of `seeds`
    on a tie, a non-finite score never chosen; a seed without its mlflow.json is an error naming the file."""
    client = MlflowClient(tracking_uri=mlflow_uri)
    client.create_registered_model(MODEL)
    for seed, score in ((3, 0.5), (1, 0.9), (2, 0.9), (4, None)):  # None: metrics.json holds null (NaN)
        run_id = client.create_run("0").info.run_id
        version = client.create_model_version(MODEL, source=f"runs:/{run_id}/model", run_id=run_id).version
        model_dir = tmp_path / "models" / "b" / f"seed-{seed}"
        model_dir.mkdir(parents=True)
        (model_dir / "metrics.json").write_text(json.dumps({"val/pckh/Mean": score}))
        (model_dir / "mlflow.json").write_text(json.dumps(
            {"run_id": run_id, "model_uri": f"models:/{MODEL}/{version}", "registered_model": MODEL,
             "version": str(version)}))
    log = logging.getLogger("test-flows")
    chosen = choose_candidate(tmp_path, "b", [4, 3, 1, 2], "val/pckh/Mean", True, log)
    assert chosen.seed == 1 and chosen.score == pytest.approx(0.9) and chosen.record.version == "2"
    assert list(chosen.seed_scores) == [4, 3, 1, 2] and math.isnan(chosen.seed_scores[4])
    assert choose_candidate(tmp_path, "b", [2, 1], "val/pckh/Mean", True, log).seed == 2  # a tie keeps the first
    assert choose_candidate(tmp_path, "b", [1, 3, 4], "val/pckh/Mean", False, log).seed == 3
    with pytest.raises(ChampionError, match=r"seed-7/mlflow.json: not found"):
        choose_candidate(tmp_path, "b", [1, 7], "val/pckh/Mean", True, log)


def test_serve_refuses_without_a_server(prefect_server: None, tmp_path: Path, capsys) -> None:
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert "PREFECT_API_URL is not set" in (server_problem() or "")
        assert main(["serve", "--repo", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "python -m pipeline.flows server" in err and "export PREFECT_API_URL=" in err


def test_deployment_schedule_comes_from_params(tmp_path: Path) -> None:
    write_params(tmp_path / "params.yaml", "flows:\n  cron: '15 2 * * 1'\n  timezone: Europe/Berlin\n")
    deployment = build_deployment(Path("params.yaml"), tmp_path)
    assert deployment.name == "scheduled-retrain" and deployment.flow_name == "retrain"
    assert deployment.entrypoint == "pipeline.flows.retrain"
    (schedule,) = deployment.schedules
    assert schedule.schedule.cron == "15 2 * * 1" and schedule.schedule.timezone == "Europe/Berlin"
    assert deployment.parameters == {"params_path": str(tmp_path / "params.yaml"), "repo": str(tmp_path)}
    override = build_deployment(tmp_path / "params.yaml", tmp_path, cron="* * * * *")
    assert override.schedules[0].schedule.cron == "* * * * *"


def test_server_command_gives_a_ui_that_calls_its_own_api(tmp_path: Path) -> None:
    """README's Prefect server: its UI settings must name the API it serves (not the default port 4200)."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.flows", "server", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, settings = time.monotonic() + 90, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ui-settings", timeout=2) as response:
                    settings = json.loads(response.read())
                break
            except OSError:
                time.sleep(0.5)
        assert settings is not None, f"no Prefect server on port {port}: {proc.poll()}"
        assert settings["api_url"] == f"http://127.0.0.1:{port}/api"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as response:
            assert json.loads(response.read()) is True
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    # the command is the server: terminating it leaves nothing listening on the port (no orphaned child)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                break
        time.sleep(0.5)
    else:
        raise AssertionError(f"a Prefect server still listens on port {port} after the command was terminated")
