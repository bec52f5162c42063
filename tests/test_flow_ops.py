"""Running the retraining flow as a team would: rollback, one run at a time, a webhook, syncing with the remotes.

Real parts throughout: the MLflow SQLite store (conftest), the Prefect server (conftest's ``prefect_server``), the
stub DVC repository of tests/test_flows.py (its ``make_repo``: git + DVC, stub stages), ``dvc`` holding its own lock
in a second process, a bare git remote and a local DVC remote, and an HTTP server on 127.0.0.1 as the webhook.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import ConcurrencyLimitStrategy, FlowRun
from prefect.deployments import run_deployment
from prefect.settings import get_current_settings
from shipped import REPO, merge, write_params
from test_flows import PARAMS_YAML, _latest_flow_run_id, _task_runs, fixtures, make_repo  # noqa: F401 (a fixture)

from hourglass.family import family_named
from hourglass.notify import post_json
from hourglass.tracking.champion_log import append_record, read_records
from hourglass.tracking.rollback import RollbackError, previous_holder, roll_back
from pipeline.dvc_stages import DvcLockTimeout, SyncFailed, dvc_sync, git_pull, run_dvc_repro
from pipeline.flows import DEPLOYMENT_NAME, build_deployment, main, retrain

MPII_KEYPOINTS = ",".join(family_named("mpii").joints.names)


# --------------------------------------------------------------------------------------------- a webhook


class Webhook:
    """An HTTP server on 127.0.0.1 that records every JSON body POSTed to it and answers with the next status of
    ``statuses`` (200 once they run out)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.messages: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.messages.append(json.loads(body))
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[str]:
        return [message["event"] for message in self.messages]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def test_webhook_delivery_retries_then_gives_up_without_raising(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test-notify")
    hook = Webhook([503, 500])  # down twice, then up
    try:
        with caplog.at_level(logging.INFO, logger="test-notify"):
            assert post_json(hook.url, {"event": "promotion", "score": float("nan")}, log, sleep=lambda _: None)
        assert hook.events() == ["promotion"] * 3 and hook.messages[0]["score"] is None  # NaN goes out as null
        hook.statuses = [500, 500, 500]
        assert not post_json(hook.url, {"event": "failure"}, log, sleep=lambda _: None)
        assert len(hook.messages) == 6 and "could not notify" in caplog.text and "HTTP 500" in caplog.text
        hook.statuses = [404]  # a wrong URL is not retried
        assert not post_json(hook.url, {"event": "rollback"}, log, sleep=lambda _: None)
        assert len(hook.messages) == 7
        url = hook.url
    finally:
        hook.close()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="test-notify"):  # nothing listens there any more
        assert not post_json(url, {"event": "failure"}, log, timeout=1, attempts=2, sleep=lambda _: None)
    assert "after 2 attempt(s) (URLError: [Errno 111] Connection refused)" in caplog.text


# --------------------------------------------------------------------------------------------- rollback


def _rollback_project(root: Path, notify_url: str | None) -> Path:
    write_params(root / "params.yaml", {"mlflow": {"registered_model": "hg"}, "flows": {"notify_url": notify_url}})
    return root


def _versions(client: MlflowClient, name: str, datasets: list[str]) -> None:
    client.create_registered_model(name)
    for dataset in datasets:
        run_id = client.create_run("0").info.run_id
        version = client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id).version
        client.set_model_version_tag(name, version, "dataset", dataset)
        client.set_model_version_tag(name, version, "keypoints", MPII_KEYPOINTS)


def _contest(model: str, before: str | None, after: str, promoted: bool = True) -> dict[str, Any]:
    """A contest record as hourglass.tracking.champion writes it (the fields a rollback reads, and a few others)."""
    return {"kind": "contest", "decision": "promoted" if promoted else "kept", "model": model, "alias": "champion",
            "promoted": promoted, "candidate_version": after, "champion_version": before,
            "serving_version": after if promoted else before, "reason": "test",
            "decided_at": "2026-12-07T00:00:00+00:00"}


def test_previous_holder_follows_the_log() -> None:
    log = [_contest("m", None, "1"), _contest("m", "1", "2", promoted=False), _contest("other", None, "7"),
           _contest("m", "1", "3"), {"model": "m", "alias": "champion", "champion_version": "3", "serving_version": "1",
                                      "kind": "rollback"}, _contest("m", "1", "4")]
    assert previous_holder(log, "m", "4") == "1"
    assert previous_holder(log, "m", "1") == "3"  # 1 took the alias last from 3 (the rollback)
    assert previous_holder(log, "m", "9") == "4"  # moved by hand: the last holder the log saw
    with pytest.raises(RollbackError, match=r"names no version that held the alias before version 1"):
        previous_holder(log[:3], "m", "1")
    with pytest.raises(RollbackError, match=r"holders in the log: none"):
        previous_holder(log, "hg-mpii", "2")


def test_rollback_cli_restores_the_previous_holder_and_records_it(
    tmp_path: Path, mlflow_store: str, webhook: Webhook, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _rollback_project(tmp_path, webhook.url)
    client = MlflowClient(tracking_uri=mlflow_store)
    name = "hg-mpii"
    _versions(client, name, ["mpii", "mpii", "mpii", "synthetic"])
    client.set_model_version_tag(name, "2", "champion_decision", "promoted")  # the tags of the contest it won
    client.set_registered_model_alias(name, "champion", "3")
    old_form = {**_contest(name, "2", "3"), "metric": "eval/pckh/Mean"}  # reports/champion.json before the log
    (root / "reports").mkdir()
    (root / "reports" / "champion.json").write_text(json.dumps(old_form))

    assert main(["rollback", "--repo", str(root)]) == 0
    assert "hg-mpii@champion: rolled back from v3 to v2" in capsys.readouterr().out
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    tags = client.get_model_version(name, "2").tags
    assert tags["rollback_decision"] == "rolled back" and tags["rollback_from_version"] == "3"
    assert "from version 3 to version 2 (the previous holder)" in tags["rollback_reason"]
    assert tags["champion_decision"] == "promoted"  # the contest it once won is still on record
    records = read_records(root)
    assert records[0] == old_form and len(records) == 2  # the old single decision became the log's first record
    assert records[1]["decision"] == "rolled back" and records[1]["from_version"] == "3"
    assert records[1]["to_version"] == "2" == records[1]["serving_version"] and records[1]["by"]
    assert json.loads((root / "reports" / "champion.json").read_text())["contests"] == records
    (message,) = webhook.messages
    assert message["event"] == "rollback" and message["model"] == name
    assert message["versions"] == {"from": "3", "to": "2", "serving": "2"} and message["reason"] == tags[
        "rollback_reason"]

    # --to, with the reason given; then the refusals, each naming what is wrong (exit 1, nothing moves)
    assert main(["rollback", "--repo", str(root), "--to", "1", "--reason", "v2 drifts on night shots"]) == 0
    assert client.get_model_version(name, "1").tags["rollback_reason"] == "v2 drifts on night shots"
    capsys.readouterr()
    for args, error in ((["--to", "99"], "'hg-mpii' has no version 99 (its versions: 1, 2, 3, 4)"),
                        (["--to", "4"], "trained on card 'synthetic' (its 'dataset' tag), not 'mpii'"),
                        (["--to", "1"], "version 1 already holds the alias")):
        assert main(["rollback", "--repo", str(root), *args]) == 1
        assert error in capsys.readouterr().err
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert len(read_records(root)) == 3 and webhook.events() == ["rollback", "rollback"]


def test_rollback_without_an_earlier_holder_or_model_is_refused(tmp_path: Path, mlflow_store: str) -> None:
    client = MlflowClient(tracking_uri=mlflow_store)
    keypoints = MPII_KEYPOINTS.split(",")
    with pytest.raises(RollbackError, match=r"no registered model 'hg-mpii'"):
        roll_back(tmp_path, client, "hg-mpii", "mpii", keypoints)
    _versions(client, "hg-mpii", ["mpii", "mpii"])
    with pytest.raises(RollbackError, match=r"no version holds the alias"):
        roll_back(tmp_path, client, "hg-mpii", "mpii", keypoints)
    client.set_registered_model_alias("hg-mpii", "champion", "2")
    append_record(tmp_path, _contest("hg-mpii", None, "2"))
    with pytest.raises(RollbackError, match=r"before version 2 \(holders in the log: 2\); name the version"):
        roll_back(tmp_path, client, "hg-mpii", "mpii", keypoints)
    client.set_model_version_tag("hg-mpii", "1", "keypoints", "a,b")
    with pytest.raises(RollbackError, match=r"outputs keypoints a,b"):
        roll_back(tmp_path, client, "hg-mpii", "mpii", keypoints, to="1")
    assert str(client.get_model_version_by_alias("hg-mpii", "champion").version) == "2"
    assert read_records(tmp_path) == [_contest("hg-mpii", None, "2")]


# --------------------------------------------------------------------------------------------- DVC's lock

HOLD_STAGES = """
  quick:
    cmd: python -c "import pathlib; pathlib.Path('shared.txt').write_text('x'); print('quick ran')"
    always_changed: true
    outs:
      - shared.txt:
          cache: false
  hold:
    cmd: python -c "import pathlib, time; pathlib.Path('holding').touch(); time.sleep(6)"
    deps:
      - shared.txt
"""
# A second process holding DVC's repository lock, as any dvc command does while it reads and writes DVC's state.
HOLD_REPO_LOCK = ("import pathlib, time; from dvc.repo import Repo; repo = Repo('.')\n"
                  "with repo.lock:\n    pathlib.Path('holding').touch(); time.sleep(6)")


def _holder(repo: Path, cmd: list[str]) -> subprocess.Popen:
    """Start ``cmd`` in ``repo``; returns once it holds its lock (it touches `holding` then)."""
    (repo / "holding").unlink(missing_ok=True)
    proc = subprocess.Popen(cmd, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (repo / "holding").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the lock holder did not start"
        time.sleep(0.1)
    return proc


def test_a_stage_waits_for_dvcs_locks_then_gives_up_after_lock_wait(
    fixtures: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stage meets a second `dvc repro` whose running stage reads its output (DVC's read/write lock): it waits
    and runs once that ends. A process that keeps DVC's repository lock past flows.lock_wait fails the stage with
    the lock's name and the wait."""
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    repo = make_repo(tmp_path, fixtures)
    with (repo / "dvc.yaml").open("a") as fh:
        fh.write(HOLD_STAGES)
    log = logging.getLogger("test-lock")
    assert run_dvc_repro("quick", repo, log) is True

    holder = _holder(repo, [sys.executable, "-m", "dvc", "repro", "--single-item", "hold"])
    try:
        with caplog.at_level(logging.INFO, logger="test-lock"):
            assert run_dvc_repro("quick", repo, log, lock_wait=60) is True
        assert holder.poll() == 0  # it ran only once the holder had finished
    finally:
        holder.kill()
        holder.wait()
    rwlock = f"DVC's lock on '{repo / 'shared.txt'}' ({repo / '.dvc' / 'tmp' / 'rwlock'})"
    assert f"{rwlock} is held by another process" in caplog.text
    assert "retrying in" in caplog.text

    holder = _holder(repo, [sys.executable, "-c", HOLD_REPO_LOCK])
    try:
        start = time.monotonic()
        with pytest.raises(DvcLockTimeout) as timeout:
            run_dvc_repro("quick", repo, log, lock_wait=1)
        assert time.monotonic() - start < 15 and holder.poll() is None
    finally:
        holder.kill()
        holder.wait()
    message = str(timeout.value)
    assert f"DVC stage 'quick': DVC's repository lock ({repo / '.dvc' / 'tmp' / 'lock'}) stayed held" in message
    assert "flows.lock_wait is 1 s" in message and "Unable to acquire lock" in message


# --------------------------------------------------------------------------------------------- flow runs


def _flow_params(repo: Path, **flows: Any) -> None:
    """The stub repository with one variant and one seed (a short run), and these ``flows`` keys."""
    base = yaml.safe_load(PARAMS_YAML)
    write_params(repo / "params.yaml", merge(base, {"sweep": ["b"], "seeds": [0], "train": {"variants": {"b": {}}},
                                                    "mlflow": {"registered_model": "fake-hg"},
                                                    "flows": {"download_retries": 0, "lock_wait": 60, **flows}}))


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def _dvc(repo: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, f"dvc {' '.join(args)}: {done.stdout}{done.stderr}"


@pytest.fixture
def git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in (("GIT_AUTHOR_NAME", "t"), ("GIT_AUTHOR_EMAIL", "t@t"), ("GIT_COMMITTER_NAME", "t"),
                       ("GIT_COMMITTER_EMAIL", "t@t"), ("DVC_NO_ANALYTICS", "1")):
        monkeypatch.setenv(key, value)


def test_a_failed_run_is_posted_with_its_error(
    prefect_server: None, fixtures: Path, tmp_path: Path, mlflow_store: str, webhook: Webhook, git_identity: None
) -> None:
    """flows.git_pull on a checkout that tracks no remote branch: the git-pull task fails the run with git's own
    words, and the failure hook posts them."""
    repo = make_repo(tmp_path, fixtures, download_fails_once=False)
    _flow_params(repo, git_pull=True, notify_url=webhook.url)
    with pytest.raises(SyncFailed, match=r"`git pull --ff-only` failed"):
        retrain(params_path="params.yaml", repo=str(repo))
    (message,) = webhook.messages
    assert message["event"] == "failure" and message["state"] == "Failed" and message["model"] == "fake-hg-mpii"
    assert "git pull --ff-only" in message["error"] and "no tracking information" in message["error"]
    assert message["flow_run"]["id"] and message["flow_run"]["name"]
    assert not (repo / "data").exists()  # nothing ran after the failed pull


def test_sync_pulls_what_the_team_pushed_and_pushes_what_it_built(
    prefect_server: None, fixtures: Path, tmp_path: Path, mlflow_store: str, git_identity: None
) -> None:
    """A teammate's checkout commits and pushes (git: a bare remote; DVC: a local remote) the data stages' results;
    the scheduled checkout, cloned before that, pulls both and so skips those stages, then pushes its own outputs."""
    origin, storage = tmp_path / "origin.git", tmp_path / "dvc-storage"
    _git(tmp_path, "init", "-q", "--bare", str(origin))
    (tmp_path / "team").mkdir()
    team = make_repo(tmp_path / "team", fixtures, download_fails_once=False)
    _flow_params(team, git_pull=True, dvc_pull=True, dvc_push=True)
    _dvc(team, "remote", "add", "-d", "local", str(storage))
    _git(team, "add", "-A")
    _git(team, "commit", "-qm", "project")
    _git(team, "remote", "add", "origin", str(origin))
    _git(team, "push", "-q", "-u", "origin", "HEAD")
    scheduled = tmp_path / "scheduled"
    _git(tmp_path, "clone", "-q", str(origin), str(scheduled))

    for stage in ("download", "preprocess"):
        _dvc(team, "repro", "--single-item", stage)
    _dvc(team, "push")
    _git(team, "add", "-A")
    _git(team, "commit", "-qm", "data")
    _git(team, "push", "-q")
    assert not (scheduled / "dvc.lock").exists()

    decision = retrain(params_path="params.yaml", repo=str(scheduled))
    assert decision["promoted"] is True
    assert _git(scheduled, "rev-parse", "HEAD") == _git(team, "rev-parse", "HEAD")  # git pull --ff-only
    assert (scheduled / "data" / "raw" / "mpii" / "annot" / "valid.h5").is_file()  # dvc pull
    runs = _task_runs(_latest_flow_run_id(), 10)
    states = {run.name: run.state.name for run in runs if run.state is not None}
    assert list(states) == ["git-pull", "dvc-pull", "check-sources", "fetch-data-download", "repro-preprocess",
                            "repro-train@b-0", "repro-evaluate@b-0", "repro-report", "dvc-push", "promote-b"]
    assert states["git-pull"] == states["dvc-pull"] == states["dvc-push"] == "Completed"
    assert states["fetch-data-download"] == states["repro-preprocess"] == "Skipped"  # pulled, not recomputed
    assert states["repro-train@b-0"] == "Completed"
    lock = yaml.safe_load((scheduled / "dvc.lock").read_text())
    (summary,) = lock["stages"]["report"]["outs"]
    pushed = storage / "files" / "md5" / summary["md5"][:2] / summary["md5"][2:]
    assert pushed.is_file() and pushed.read_text() == "# report"  # dvc push: the scheduled run's own output


def test_sync_failures_carry_the_commands_output(fixtures: Path, tmp_path: Path, git_identity: None) -> None:
    repo = make_repo(tmp_path, fixtures)
    log = logging.getLogger("test-sync")
    with pytest.raises(SyncFailed, match=r"`dvc push` failed \(exit code \d+\); output tail:\n(.|\n)*remote"):
        dvc_sync("push", repo, log)
    _git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    with pytest.raises(SyncFailed, match=r"no tracking information"):
        git_pull(repo, log)


def test_the_deployment_runs_one_retrain_at_a_time(
    prefect_server: None, fixtures: Path, tmp_path: Path, mlflow_store: str, webhook: Webhook, git_identity: None
) -> None:
    """Two runs of the served deployment triggered together run one after the other, although the serving process
    would take both at once: the deployment's concurrency limit holds the second back. The first run promotes and
    the webhook hears of it; the second (nothing changed) keeps the champion and posts nothing.

    About a minute: two served runs, each a fresh Python process with a few `dvc repro` subprocesses."""
    repo = make_repo(tmp_path, fixtures, download_fails_once=False)
    _flow_params(repo, notify_url=webhook.url)
    deployment = build_deployment(Path("params.yaml"), repo)
    assert deployment.concurrency_limit == 1
    assert deployment.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.ENQUEUE

    runs, output = serve_and_trigger(repo, dict(os.environ), count=2, timeout=240)
    assert all(run.state is not None and run.state.is_completed() for run in runs), output[-3000:]
    first, second = sorted(runs, key=lambda run: run.start_time)
    assert first.end_time <= second.start_time  # one after the other: their spans do not overlap
    with get_client(sync_client=True) as client:
        held = [state.name for state in client.read_flow_run_states(second.id)]
    assert "AwaitingConcurrencySlot" in held  # held back by the deployment's limit, not by chance

    (message,) = webhook.messages
    assert message["event"] == "promotion" and message["model"] == "fake-hg-mpii"
    assert message["versions"] == {"candidate": "1", "champion_before": None, "serving": "1"}
    contest = next(r for r in read_records(repo) if r["kind"] == "contest")  # the first run's, as recorded
    assert message["scores"]["candidate"] == pytest.approx(contest["candidate_score"])
    assert message["flow_run"]["id"] == str(first.id)
    assert message["flow_run"]["name"] == first.name


def serve_and_trigger(repo: Path, env: dict[str, str], count: int, timeout: float) -> tuple[list[FlowRun], str]:
    """Serve the repo's retrain deployment as `python -m pipeline.flows serve` builds it, in a runner that would run
    two at once, trigger it ``count`` times together and wait for every run to end; returns the runs and the
    serving process's output."""
    env = {**env, "PREFECT_API_URL": str(get_current_settings().api.url), "PREFECT_RUNNER_POLL_FREQUENCY": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    code = ("import sys; from pathlib import Path; from prefect import serve; "
            "from pipeline.flows import build_deployment; "
            "serve(build_deployment(Path('params.yaml'), Path(sys.argv[1])), limit=2)")
    server = subprocess.Popen([sys.executable, "-c", code, str(repo)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        name = f"retrain/{DEPLOYMENT_NAME}"
        deadline = time.monotonic() + 120
        with get_client(sync_client=True) as client:
            while True:
                try:
                    client.read_deployment_by_name(name)
                    break
                except Exception:
                    assert server.poll() is None and time.monotonic() < deadline, "the deployment was not served"
                    time.sleep(0.5)
        triggered = [run_deployment(name, timeout=0) for _ in range(count)]
        runs = _wait_final([run.id for run in triggered], server, deadline=time.monotonic() + timeout)
    finally:
        server.terminate()
        try:
            output = server.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            server.kill()
            output = server.communicate()[0]
    return runs, output


def _wait_final(ids: list[Any], server: subprocess.Popen, deadline: float) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        while True:
            runs = [client.read_flow_run(run_id) for run_id in ids]
            if all(run.state is not None and run.state.is_final() for run in runs):
                return runs
            assert server.poll() is None, "the serving process ended"
            assert time.monotonic() < deadline, f"runs not finished: {[run.state.name for run in runs]}"
            time.sleep(1)
