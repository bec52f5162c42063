"""The download stage against a local HTTP server on 127.0.0.1: resume, retry, verify, extract (the archive
checks themselves: ``test_archive.py``)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from archive_files import leftovers, make_tar
from shipped import paper, recipe
from shipped import write_params as write_full_params

from hourglass.config import DownloadConfig, ExtractConfig, SourceConfig
from hourglass.config.params_file import load_params
from hourglass.data.archive import UnsafeArchiveError
from hourglass.data.download import download_dataset
from hourglass.data.fetch import DownloadError, Expected, HttpSettings, fetch, file_digests, git_blob_id
from hourglass.dataset_card import load_card
from pipeline.download import main

FAST = HttpSettings(retries=2, backoff=0.01, timeout=5.0, chunk_bytes=4096, progress=False)
VALID_BLOB = "b9e088439064a351a24d0b2ecfc58fc86e5afe86"


# ------------------------------------------------------------------------------------------------- the server
@dataclass
class ServerState:
    """What the fixture server serves and how it misbehaves; every request is logged for assertions."""

    files: dict[str, bytes] = field(default_factory=dict)
    etags: dict[str, str] = field(default_factory=dict)
    drop_after: dict[str, list[int]] = field(default_factory=dict)  # path -> bytes sent by dying responses
    fail_with: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses returned before serving
    stall: dict[str, list[float]] = field(default_factory=dict)  # path -> seconds to sit silent mid-body
    honor_range: bool = True
    requests: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    base: str = ""

    def add(self, path: str, body: bytes) -> str:
        self.files[path] = body
        self.etags[path] = '"' + hashlib.md5(body).hexdigest() + '"'
        return self.base + path


class Handler(BaseHTTPRequestHandler):
    """GET with Range/If-Range (206/200/416), 404 for unknown paths, scripted failures, dropped links."""

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        state.requests.append((self.path, self.headers.get("Range"), self.headers.get("If-Range")))
        failures = state.fail_with.get(self.path)
        if failures:
            self.send_error(failures.pop(0))
            return
        body = state.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        etag = state.etags[self.path]
        start = 0
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if wanted and state.honor_range and if_range in (None, etag):
            start = int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("ETag", etag)
        self.end_headers()
        payload = body[start:]
        pauses = state.stall.get(self.path)
        if pauses:
            self.wfile.write(payload[:100])
            self.wfile.flush()
            time.sleep(pauses.pop(0))
            self.close_connection = True
            return
        cuts = state.drop_after.get(self.path)
        if cuts:
            self.wfile.write(payload[: cuts.pop(0)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.state = ServerState(base=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def payload(n: int, seed: int = 0) -> bytes:
    """Deterministic incompressible-ish bytes, so a misplaced chunk changes the digest."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(b"%d:%d" % (seed, counter)).digest()
        counter += 1
    return bytes(out[:n])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------------- digests
def test_git_blob_id_matches_git_hash_object(tmp_path: Path) -> None:
    (tmp_path / "hello").write_bytes(b"hello\n")
    assert git_blob_id(tmp_path / "hello") == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object`
    (tmp_path / "empty").write_bytes(b"")
    assert git_blob_id(tmp_path / "empty") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def test_digests_of_real_annotation_file(anchor_dir: Path) -> None:
    digests = file_digests(anchor_dir / "pose-hg-train/data/mpii/annot/valid.h5")
    assert digests.size == 1350310
    assert digests.git_blob == VALID_BLOB
    assert digests.sha256 == "6c9e29d1472945abf370339d8a75e0da4117be52dcc3f589cb9f4a77cac2b760"


# ------------------------------------------------------------------------------------------------- fetch
def test_clean_download(server: ServerState, tmp_path: Path) -> None:
    body = payload(50_000)
    url = server.add("/a.bin", body)
    dest = tmp_path / "out" / "a.bin"
    got = fetch(url, dest, Expected(sha256=sha256(body), size=len(body)), FAST)
    assert dest.read_bytes() == body
    assert got.sha256 == sha256(body) and got.size == len(body)
    assert leftovers(dest.parent) == ["a.bin"]
    assert server.requests == [("/a.bin", None, None)]


def test_resume_after_the_server_drops_the_connection(server: ServerState, tmp_path: Path) -> None:
    body = payload(100_000, seed=1)
    url = server.add("/big.tar.gz", body)
    server.drop_after["/big.tar.gz"] = [30_000]
    dest = tmp_path / "big.tar.gz"
    fetch(url, dest, Expected(sha256=sha256(body)), FAST)
    assert dest.read_bytes() == body
    assert [r[1] for r in server.requests] == [None, "bytes=30000-"]
    assert server.requests[1][2] == server.etags["/big.tar.gz"]  # If-Range guards the resume
    assert leftovers(tmp_path) == ["big.tar.gz"]


def test_attempts_that_make_progress_do_not_use_up_retries(server: ServerState, tmp_path: Path) -> None:
    body = payload(20_000, seed=8)
    url = server.add("/slow.bin", body)
    server.drop_after["/slow.bin"] = [3_000, 3_000, 3_000]
    fetch(url, tmp_path / "slow.bin", Expected(sha256=sha256(body)),
          HttpSettings(retries=1, backoff=0.01, progress=False))
    assert (tmp_path / "slow.bin").read_bytes() == body
    assert [r[1] for r in server.requests] == [None, "bytes=3000-", "bytes=6000-", "bytes=9000-"]


def test_server_ignoring_range_restarts_the_file(server: ServerState, tmp_path: Path) -> None:
    body = payload(20_000, seed=2)
    url = server.add("/x.bin", body)
    server.honor_range = False
    dest = tmp_path / "x.bin"
    (tmp_path / "x.bin.part").write_bytes(b"stale bytes that must not survive")
    fetch(url, dest, Expected(sha256=sha256(body)), FAST)
    assert dest.read_bytes() == body
    assert server.requests[0][1] == "bytes=33-"


def test_changed_file_on_server_is_fetched_again(server: ServerState, tmp_path: Path) -> None:
    old, new = payload(10_000, seed=3), payload(12_000, seed=4)
    url = server.add("/c.bin", old)
    server.drop_after["/c.bin"] = [4_000]
    with pytest.raises(DownloadError):  # no retries: the 4000-byte part and its ETag stay behind
        fetch(url, tmp_path / "c.bin", Expected(), HttpSettings(retries=0, backoff=0, progress=False))
    assert (tmp_path / "c.bin.part").stat().st_size == 4_000
    server.add("/c.bin", new)  # new content, new ETag: If-Range fails, the server sends everything
    fetch(url, tmp_path / "c.bin", Expected(sha256=sha256(new)), FAST)
    assert (tmp_path / "c.bin").read_bytes() == new


def test_complete_part_file_is_finished_without_transfer(server: ServerState, tmp_path: Path) -> None:
    body = payload(5_000, seed=5)
    url = server.add("/done.bin", body)
    (tmp_path / "done.bin.part").write_bytes(body)  # a crash between download and rename
    fetch(url, tmp_path / "done.bin", Expected(sha256=sha256(body)), FAST)
    assert (tmp_path / "done.bin").read_bytes() == body
    assert server.requests == [("/done.bin", "bytes=5000-", None)]


def test_checksum_mismatch_keeps_nothing(server: ServerState, tmp_path: Path) -> None:
    body = payload(8_000, seed=6)
    url = server.add("/bad.bin", body)
    wrong = "0" * 64
    with pytest.raises(DownloadError) as err:
        fetch(url, tmp_path / "bad.bin", Expected(sha256=wrong), FAST)
    message = str(err.value)
    assert url in message and wrong in message and sha256(body) in message
    assert leftovers(tmp_path) == []


def test_git_blob_verification_of_the_real_valid_h5(server: ServerState, tmp_path: Path,
                                                     anchor_dir: Path) -> None:
    real = anchor_dir / "pose-hg-train/data/mpii/annot/valid.h5"
    url = server.add("/data/mpii/annot/valid.h5", real.read_bytes())
    got = fetch(url, tmp_path / "valid.h5", Expected(git_blob=VALID_BLOB, size=1350310), FAST)
    assert got.git_blob == VALID_BLOB
    other = "4a358a5fdb71c34795cfe07bdc35da2e560a5650"  # pytorch_stacked_hourglass's copy differs in one byte
    with pytest.raises(DownloadError, match=f"git_blob: expected {other}, got {VALID_BLOB}"):
        fetch(url, tmp_path / "other.h5", Expected(git_blob=other), FAST)
    assert not (tmp_path / "other.h5").exists() and not (tmp_path / "other.h5.part").exists()


def test_404_fails_at_once_naming_the_url(server: ServerState, tmp_path: Path) -> None:
    url = server.base + "/missing.h5"
    with pytest.raises(DownloadError, match=re.escape(url) + ": HTTP 404"):
        fetch(url, tmp_path / "missing.h5", Expected(), FAST)
    assert len(server.requests) == 1
    assert leftovers(tmp_path) == []


def test_connection_refused_is_retried_then_reported(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/x.bin"
    with pytest.raises(DownloadError, match=re.escape(url) + r": giving up after 3 .*connection failed"):
        fetch(url, tmp_path / "x.bin", Expected(), FAST)
    assert leftovers(tmp_path) == []


def test_a_stalled_connection_times_out_and_resumes(server: ServerState, tmp_path: Path) -> None:
    body = payload(10_000, seed=9)
    url = server.add("/stall.bin", body)
    server.stall["/stall.bin"] = [1.0]
    fetch(url, tmp_path / "stall.bin", Expected(sha256=sha256(body)),
          HttpSettings(retries=1, backoff=0.01, timeout=0.2, progress=False))
    assert (tmp_path / "stall.bin").read_bytes() == body
    assert [r[1] for r in server.requests] == [None, "bytes=100-"]


def test_server_errors_are_retried(server: ServerState, tmp_path: Path) -> None:
    body = payload(3_000, seed=7)
    url = server.add("/flaky.bin", body)
    server.fail_with["/flaky.bin"] = [503, 500]
    fetch(url, tmp_path / "flaky.bin", Expected(sha256=sha256(body)), FAST)
    assert (tmp_path / "flaky.bin").read_bytes() == body
    assert len(server.requests) == 3


def test_retries_are_bounded(server: ServerState, tmp_path: Path) -> None:
    url = server.add("/down.bin", b"never served")
    server.fail_with["/down.bin"] = [503] * 10
    with pytest.raises(DownloadError, match=re.escape(url) + r": giving up after 3 .*HTTP 503"):
        fetch(url, tmp_path / "down.bin", Expected(), FAST)
    assert len(server.requests) == 3  # retries=2


# ------------------------------------------------------------------------------------------------- a dataset
def local_config(**extra: object) -> DownloadConfig:
    """The download policy for a local server: one retry, short waits."""
    return paper("download", retries=1, backoff=0.01, timeout=5.0, **extra)


def local_sources(server: ServerState, anchor_dir: Path, tmp: Path) -> tuple[SourceConfig, ...]:
    """An MPII-shaped source list served locally: an unpinned tar.gz of images and the real valid.h5."""
    tar = make_tar(tmp / "src.tar.gz", [("images/001.jpg", b"jpeg-1"), ("images/002.jpg", b"j2")])
    valid = (anchor_dir / "pose-hg-train/data/mpii/annot/valid.h5").read_bytes()
    return (
        SourceConfig(url=server.add("/mpii.tar.gz", tar.read_bytes()), path="archives/mpii.tar.gz",
                     extract=ExtractConfig(member_prefix="images/", into="images")),
        SourceConfig(url=server.add("/valid.h5", valid), path="annot/valid.h5", git_blob=VALID_BLOB,
                     size=len(valid)),
    )


def test_download_dataset_writes_layout_and_manifest_and_is_idempotent(
        server: ServerState, tmp_path: Path, anchor_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    config, sources = local_config(), local_sources(server, anchor_dir, tmp_path)
    root = tmp_path / "raw"
    with caplog.at_level(logging.INFO, logger="hourglass.data.manifest"):
        manifest_path = download_dataset(config, "mpii", sources, root=root, progress=False)
    assert "no checksum pinned" in caplog.text
    base = root / "mpii"
    assert manifest_path == base / "manifest.json"
    assert sorted(p.name for p in (base / "images").iterdir()) == ["001.jpg", "002.jpg"]
    manifest = json.loads(manifest_path.read_text())
    by_path = {e["path"]: e for e in manifest["sources"]}
    assert by_path["annot/valid.h5"]["git_blob"] == VALID_BLOB
    assert by_path["annot/valid.h5"]["verified_against"] == "pinned"
    archive = by_path["archives/mpii.tar.gz"]
    assert archive["verified_against"] == "recorded"
    assert archive["sha256"] == sha256((base / "archives/mpii.tar.gz").read_bytes())
    assert manifest["extracted"][0]["files"] == 2
    first = len(server.requests)
    assert first == 2

    download_dataset(config, "mpii", sources, root=root, progress=False)  # everything verified: no request
    assert len(server.requests) == first
    download_dataset(config.model_copy(update={"rehash_existing": True}), "mpii", sources, root=root,
                     progress=False)
    assert len(server.requests) == first

    (base / "annot/valid.h5").write_bytes(b"corrupted")  # a damaged file is fetched again
    (base / "images/002.jpg").unlink()  # and a damaged extraction is redone
    download_dataset(config, "mpii", sources, root=root, progress=False)
    assert server.requests[first:] == [("/valid.h5", None, None)]
    assert git_blob_id(base / "annot/valid.h5") == VALID_BLOB
    assert (base / "images/002.jpg").read_bytes() == b"j2"


def test_a_local_copy_is_a_source_continued_verified_and_extracted(tmp_path: Path) -> None:
    """A lab's own copy on disk (``file://``): the archive is copied, pinned by sha256, resumed from a partial
    copy, extracted; a wrong pin keeps nothing, a missing file names its path."""
    (tmp_path / "mirror").mkdir()
    archive = make_tar(tmp_path / "mirror" / "mpii.tar.gz", [("images/001.jpg", b"jpeg-1"), ("images/002.jpg", b"2")])
    data = archive.read_bytes()
    base = tmp_path / "raw" / "mpii"
    (base / "archives").mkdir(parents=True)
    (base / "archives" / "mpii.tar.gz.part").write_bytes(data[:100])  # an earlier copy that was cut off
    source = SourceConfig(url=archive.as_uri(), path="archives/mpii.tar.gz", sha256=sha256(data), size=len(data),
                          extract=ExtractConfig(member_prefix="images/", into="images"))
    download_dataset(paper("download"), "mpii", (source,), root=tmp_path / "raw", progress=False)
    assert (base / "archives" / "mpii.tar.gz").read_bytes() == data
    assert sorted(p.name for p in (base / "images").iterdir()) == ["001.jpg", "002.jpg"]
    assert leftovers(base / "archives") == ["mpii.tar.gz"]

    wrong = source.model_copy(update={"sha256": "0" * 64, "path": "archives/other.tar.gz"})
    with pytest.raises(DownloadError, match="verification failed"):
        download_dataset(paper("download"), "mpii", (wrong,), root=tmp_path / "raw", progress=False)
    assert leftovers(base / "archives") == ["mpii.tar.gz"]
    gone = source.model_copy(update={"url": (tmp_path / "nowhere.tar.gz").as_uri(), "path": "archives/x.tar.gz"})
    with pytest.raises(DownloadError, match="nowhere.tar.gz"):
        download_dataset(paper("download"), "mpii", (gone,), root=tmp_path / "raw", progress=False)


def test_wrong_member_prefix_is_a_clear_error(server: ServerState, tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "f.tar.gz", [("images/1.jpg", b"1")])
    source = SourceConfig(url=server.add("/FLIC.zip", tar.read_bytes()), path="archives/FLIC.zip",
                          extract=ExtractConfig(member_prefix="FLIC/images/", into="images"))
    config = paper("download", backoff=0.01)
    with pytest.raises(UnsafeArchiveError, match="no member under 'FLIC/images/'"):
        download_dataset(config, "flic", (source,), root=tmp_path / "raw", progress=False)


# --------------------------------------------------------------------------------------------- stage + config
def write_params(tmp_path: Path, config: DownloadConfig, dataset: str) -> Path:
    params = tmp_path / "params.yaml"
    write_full_params(params, {"dataset": dataset, "download": config.model_dump(mode="json")})
    return params


def write_card(folder: Path, shipped: str, sources: tuple[SourceConfig, ...]) -> Path:
    """The shipped card ``shipped`` with its download list pointed at ``sources`` (a lab's mirror), as a file."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = {**load_card(shipped).as_record(), "download": [s.model_dump(mode="json", exclude_none=True)
                                                          for s in sources]}
    path = folder / f"{shipped}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_stage_synthetic_generates_the_same_layout(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    write_full_params(params, {
        "dataset": "synthetic",
        "download": paper("download", root=str(tmp_path / "raw")).model_dump(mode="json"),
        "synthetic": {"train_images": 3, "valid_images": 2, "workers": 1},
    })
    assert main(["--params", str(params)]) == 0
    out = tmp_path / "raw" / "synthetic"
    assert (out / "annot" / "train.h5").is_file() and (out / "annot" / "valid.h5").is_file()
    assert len(list((out / "images").glob("*.jpg"))) == 5


def test_stage_downloads_and_reports_failures(server: ServerState, tmp_path: Path, anchor_dir: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    config = local_config(root=str(tmp_path / "raw"))
    params = write_params(tmp_path, config, "synthetic")
    card = write_card(tmp_path / "cards", "mpii", local_sources(server, anchor_dir, tmp_path))
    assert main(["--params", str(params), "--dataset", str(card), "--no-progress"]) == 0
    assert (tmp_path / "raw/mpii/manifest.json").is_file()

    missing = SourceConfig(url=server.base + "/nope.h5", path="annot/train.h5")
    card = write_card(tmp_path / "cards", "flic", (missing,))
    assert main(["--params", str(params), "--dataset", str(card), "--no-progress"]) == 1
    assert f"{server.base}/nope.h5: HTTP 404" in capsys.readouterr().err
    assert main(["--params", str(tmp_path / "absent.yaml")]) == 2


def test_download_sources_live_in_the_dataset_cards_only() -> None:
    """One home: the card's download list; params.yaml has only the download policy, the recipes repeat nothing."""
    repo = Path(__file__).resolve().parents[1]
    mpii = {s.path: s for s in load_card("mpii").download}
    assert mpii["annot/valid.h5"].git_blob == VALID_BLOB
    pinned_commit = "2fef6915fbd836a5d218a5d2f0c87c463532f1a6"
    assert all(pinned_commit in s.url for p, s in mpii.items() if p.startswith("annot"))
    assert recipe("mpii").download == recipe("flic").download == load_params(repo / "params.yaml").download
    for path in (repo / "recipes").glob("*.yaml"):
        assert "download" not in yaml.safe_load(path.read_text()), path


@pytest.mark.parametrize("bad", [{"path": "../x"}, {"path": "/etc/x"}, {"sha256": "abc"},
                                 {"url": "ftp://h/x"}, {"git_blob": "Z" * 40}])
def test_source_config_rejects_bad_values(bad: dict[str, str]) -> None:
    fields = {"url": "https://example.org/x", "path": "annot/x.h5", **bad}
    with pytest.raises(ValueError):
        SourceConfig(**fields)
