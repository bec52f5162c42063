"""Shared fixtures: where the golden anchor data lives, and test isolation for tracking tools."""

from __future__ import annotations

import os
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
