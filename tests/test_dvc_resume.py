"""``dvc repro`` killed with SIGKILL resumes where it stopped: training from its last epoch checkpoint (to the
weights of an uninterrupted run), a download from the bytes it had.

Both go through ``dvc repro`` itself in a fresh git + DVC repository: DVC keeps the persistent outputs
(``persist: true`` in dvc.yaml) and the stage code takes them up (hourglass.train.fingerprint, hourglass.data.download).
"""

from __future__ import annotations

import hashlib
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from dvc_project import REPO, dvc, make_project, merge, run  # noqa: E402
from shipped import recipe_raw  # noqa: E402

TINY_TRAINING = {
    "synthetic": {"train_images": 10, "valid_images": 4, "workers": 1},
    "preprocess": {"workers": 1},
    "model": {"features": 16, "input_res": 64},
    "train": {"epochs": 4, "steps_per_epoch": 12, "batch_size": 4, "val_batch_size": 8, "workers": 0,
              "optimizer": "adam", "lr": 1e-3, "precision": "fp32", "deterministic": True, "warmup_steps": 0},
    "mlflow": {"system_metrics": False, "sweep": None},
    "sweep": ["hg"],
    "flows": {"champion_variant": "hg"},
}


def _repro_until(root: Path, env: dict[str, str], ready: Callable[[], bool], timeout: float = 300) -> None:
    """Start ``dvc repro`` and SIGKILL its whole process group as soon as ``ready()`` holds."""
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, "dvc repro ended before the point to kill it"
            assert time.monotonic() < deadline, "dvc repro did not reach the point to kill it"
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _checkpoint_epoch(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except (OSError, RuntimeError, KeyError, EOFError):
        return 0


def test_killed_training_resumes_under_dvc_repro_to_the_uninterrupted_weights(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    env = make_project(root, merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY_TRAINING))
    ckpt = root / "models" / "hg" / "seed-0" / "checkpoint.pt"
    _repro_until(root, env, lambda: ckpt.is_file() and _checkpoint_epoch(ckpt) >= 1)
    killed_at = _checkpoint_epoch(ckpt)
    assert 1 <= killed_at < TINY_TRAINING["train"]["epochs"]

    done = dvc(["repro"], root, env)
    log = done.stdout + done.stderr
    assert f"resuming models/hg/seed-0/checkpoint.pt from epoch {killed_at}" in log
    assert json_status(root, env) == {}

    # The same stage command, uninterrupted, in another output directory.
    run([sys.executable, "-m", "pipeline.train", "--variant", "hg", "--seed", "0", "--out", "uninterrupted"], root,
        env)
    resumed = torch.load(ckpt, weights_only=True)
    reference = torch.load(root / "uninterrupted" / "checkpoint.pt", weights_only=True)
    assert resumed["epoch"] == reference["epoch"] == TINY_TRAINING["train"]["epochs"]
    for name, value in reference["model"].items():
        assert torch.equal(resumed["model"][name], value), name
    rows = (root / "models" / "hg" / "seed-0" / "epochs.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]


def json_status(root: Path, env: dict[str, str]) -> dict:
    import json

    return json.loads(dvc(["status", "--json"], root, env).stdout)


# -- a download killed half-way -----------------------------------------------------------------------------------
class _SlowRangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` slowly (so a test can kill the client half-way), honouring ``Range: bytes=N-``."""

    files: dict[str, bytes] = {}
    ranges: list[tuple[str, str | None]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = self.files.get(self.path)
        self.ranges.append((self.path, self.headers.get("Range")))
        if body is None:
            self.send_error(404)
            return
        start = 0
        wanted = self.headers.get("Range")
        if wanted and wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[6:-1])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest()[:16] + '"')
        self.end_headers()
        try:
            for offset in range(start, len(body), 8192):
                self.wfile.write(body[offset:offset + 8192])
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def slow_server() -> Iterator[tuple[type[_SlowRangeHandler], str]]:
    handler = type("Handler", (_SlowRangeHandler,), {"files": {}, "ranges": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_killed_download_continues_from_its_bytes_under_dvc_repro(tmp_path, slow_server, anchor_dir):
    from test_rehearsal import build_flic_mirror, mirror_card

    handler, base_url = slow_server
    mirror = tmp_path / "mirror" / "flic"
    build_flic_mirror(mirror, anchor_dir)
    for path in mirror.iterdir():
        handler.files[f"/flic/{path.name}"] = path.read_bytes()
    shipped = recipe_raw("flic")
    params = merge(shipped, {"download": {"chunk_bytes": 4096}})
    root = tmp_path / "project"
    root.mkdir()
    env = make_project(root, params, cards=mirror_card("flic", mirror, base_url))
    part = root / "data" / "raw" / "flic" / "archives" / "FLIC.zip.part"
    zip_size = len(handler.files["/flic/FLIC.zip"])
    _repro_until(root, env, lambda: part.is_file() and part.stat().st_size > 64 * 1024)
    had = part.stat().st_size
    assert had < zip_size

    dvc(["repro", "download"], root, env)
    archive_requests = [r for path, r in handler.ranges if path == "/flic/FLIC.zip"]
    assert archive_requests[0] is None and len(archive_requests) == 2
    resumed_from = int(archive_requests[1][len("bytes="):-1])
    assert had <= resumed_from < zip_size  # the bytes it had (and any that landed before the kill) are kept
    got = (root / "data" / "raw" / "flic" / "archives" / "FLIC.zip").read_bytes()
    assert got == handler.files["/flic/FLIC.zip"]
    assert (root / "data" / "raw" / "flic" / "images").is_dir()
