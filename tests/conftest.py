"""Shared fixtures: where the golden anchor data lives, and test isolation for tracking tools."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _find_anchor_dir() -> Path | None:
    env = os.environ.get("HOURGLASS_ANCHOR_DATA")
    if env:
        return Path(env)
    for parent in REPO.parents:
        candidate = parent / "shared" / "anchor-data"
        if candidate.is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def anchor_dir() -> Path:
    """``shared/anchor-data``: real annotation files and the authors' predictions.

    Skips when absent on a developer machine; under CI (``CI`` set) a missing directory is a failure, so the golden
    tests can never silently stop running.
    """
    found = _find_anchor_dir()
    if found is None or not found.is_dir():
        if os.environ.get("CI"):
            pytest.fail("shared/anchor-data not found (set HOURGLASS_ANCHOR_DATA); golden tests must run under CI")
        pytest.skip("shared/anchor-data not available")
    return found


@pytest.fixture(scope="session")
def _migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its schema already migrated: copying it per test is ~20x faster than migrating.
    Created from inside its own directory, since the store's Default experiment keeps its artifacts under the working
    directory of the store's creation (``mlruns/0``): runs logged there land beside the template, not in the checkout.
    """
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("mlflow-template") / "template.db"
    cwd = Path.cwd()
    os.chdir(db.parent)
    try:
        MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    finally:
        os.chdir(cwd)
    return db


@pytest.fixture
def mlflow_store(tmp_path: Path, _migrated_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh MLflow SQLite store for one test, its URI returned: ``MLFLOW_TRACKING_URI`` points at it (restored
    afterwards; the project never sets MLflow's global URI, so the fluent API follows the variable), artifacts land
    beside it (the test runs in ``tmp_path``), and a run the test left active is ended."""
    import shutil

    import mlflow

    db = tmp_path / "mlflow.db"
    shutil.copy(_migrated_db, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    yield uri
    mlflow.end_run()


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One temporary Prefect server (a real one, in a subprocess) for the session's flow runs: its start-up is the
    expensive part. A run held back by a deployment's concurrency limit is retried after 1 s (Prefect: 30 s)."""
    from prefect.settings import (
        PREFECT_HOME,
        PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    quiet = {
        PREFECT_HOME: str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED: False,
        PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore",  # the promote task is also called on its own
        "server.deployments.concurrency_slot_wait_seconds": 1,
    }
    with temporary_settings(updates=quiet):
        with prefect_test_harness(server_startup_timeout=120):
            yield


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread for tests of tiny networks: they gain nothing from more, and CI has two cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
