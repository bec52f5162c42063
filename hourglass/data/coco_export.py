"""A COCO export given by URL (a CVAT or Label Studio export zip on a web server or a shared disk).

The export's state is what its server says about it: the ETag, else Last-Modified and Content-Length, from a HEAD
request (a ``file://`` export: its size and mtime). A retrain asks that first and downloads nothing when it is
unchanged. When it changed, or the server says nothing that identifies a version, the archive is downloaded through
:func:`hourglass.data.fetch.fetch` (resumed, retried, verified against ``coco.sha256`` when pinned) and identified
by its SHA-256. Archives are kept in a cache beside the dataset (``<download root>/.exports/<name>/``, ignored by
git, not a DVC output) so a stage rerun with the same export does not fetch it again, and extracted with
:func:`hourglass.data.archive.safe_extract` into a temporary folder that the import reads and then removes.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from hourglass.data.archive import safe_extract
from hourglass.data.fetch import DownloadError, Expected, HttpSettings, fetch
from hourglass.dataset_card import CocoSource
from hourglass.io.atomic import write_json_atomic

log = logging.getLogger(__name__)

CACHE_FOLDER = ".exports"  # beside data/raw/<name>: <download root>/.exports/<name>/
_RECORD = "export.json"
_USER_AGENT = "stacked-hourglass-coco-export/1 (+python urllib)"
QUIET = HttpSettings(progress=False)  # no progress bars: exports are small and stage logs are files


def cache_dir(raw_dir: Path) -> Path:
    """Where the archive of ``raw_dir``'s export is kept (created with a ``.gitignore`` that ignores it all)."""
    folder = raw_dir.parent / CACHE_FOLDER / raw_dir.name
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# downloaded COCO exports (hourglass.data.coco_export); a cache, not data to commit\n*\n")
    return folder


def probe(url: str, timeout: float = 60.0) -> dict[str, Any]:
    """What the server says identifies the export now: ``{"etag", "last_modified", "size"}`` (None where it says
    nothing); a ``file://`` export gives its size and mtime. Fails with :class:`DownloadError` naming the URL."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        path = Path(urllib.request.url2pathname(parsed.path))
        try:
            stat = path.stat()
        except OSError as err:
            raise DownloadError(f"{url}: cannot read the export ({err.strerror or err})") from None
        return {"etag": None, "last_modified": str(stat.st_mtime_ns), "size": stat.st_size}
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            headers = response.headers
    except urllib.error.HTTPError as err:
        err.close()
        if err.code in (405, 501):  # no HEAD: nothing identifies the version, the content hash will
            return {"etag": None, "last_modified": None, "size": None}
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise DownloadError(f"{url}: cannot reach the export ({err})") from None
    etag = headers.get("ETag")
    length = headers.get("Content-Length")
    return {"etag": etag if etag and not etag.startswith("W/") else None,
            "last_modified": headers.get("Last-Modified"),
            "size": int(length) if length and length.isdigit() else None}


def identifies(state: Mapping[str, Any]) -> bool:
    """Whether the server's answer names a version: a strong ETag, or Last-Modified with the size."""
    return bool(state.get("etag")) or (state.get("last_modified") is not None and state.get("size") is not None)


def same_version(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether two identifying states name the same version (the ETag decides when both have one)."""
    if old.get("etag") and new.get("etag"):
        return bool(old["etag"] == new["etag"])
    return all(old.get(k) == new.get(k) for k in ("last_modified", "size"))


def _archive_name(url: str) -> str:
    name = Path(urllib.parse.urlparse(url).path).name
    return name if name.endswith((".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")) else "export.zip"


def ensure_archive(url: str, sha256: str | None, cache: Path, settings: HttpSettings = QUIET,
                   ) -> tuple[Path, dict[str, Any]]:
    """The export's archive in ``cache``, current and verified, and its state (url, validators, sha256).

    Reused without a download when the server names the same version as the cached copy's record and the copy
    still has its recorded size; otherwise downloaded (the pinned ``sha256`` checked before it replaces anything).
    """
    now = probe(url, settings.timeout)
    archive = cache / _archive_name(url)
    record = _read_record(cache)
    if (record and record.get("url") == url and identifies(now) and same_version(record, now)
            and archive.is_file() and archive.stat().st_size == record.get("bytes")
            and (sha256 is None or sha256.lower() == record.get("sha256"))):
        log.info("%s: unchanged (%s); using the cached copy %s", url, describe(now), archive)
        return archive, record
    log.info("%s: fetching the export (%s)", url, describe(now))
    digests = fetch(url, archive, Expected(sha256=sha256), settings)
    state = {"url": url, **now, "sha256": digests.sha256, "bytes": digests.size}
    write_json_atomic(cache / _RECORD, state)
    return archive, state


def _read_record(cache: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((cache / _RECORD).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe(state: Mapping[str, Any]) -> str:
    """The validators in words, for logs and change lines."""
    if state.get("etag"):
        return f"ETag {state['etag']}"
    if state.get("last_modified") is not None:
        return f"Last-Modified {state['last_modified']}, {state.get('size')} bytes"
    return "no ETag or Last-Modified: identified by content hash"


@contextlib.contextmanager
def extracted(archive: Path, near: Path) -> Iterator[Path]:
    """``archive`` extracted safely into a temporary folder beside ``near``, removed afterwards."""
    near.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=near))
    try:
        safe_extract(archive, tmp / "export")
        yield tmp / "export"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export_changes(source: CocoSource, recorded: Mapping[str, Any] | None, cache: Path,
                   settings: HttpSettings = QUIET) -> list[str]:
    """How the export at ``source.url`` differs from ``recorded`` (the state the last import saved), one line each.

    A server that names its version (ETag, or Last-Modified and size) is only asked; one that does not gets the
    archive downloaded into the cache and compared by SHA-256, so such an export is never taken as unchanged on trust.
    """
    assert source.url is not None
    if not recorded:
        return [f"export {source.url}: not imported from this URL yet"]
    if recorded.get("url") != source.url:
        return [f"export URL changed: {recorded.get('url')} -> {source.url}"]
    if source.sha256 is not None and source.sha256.lower() != recorded.get("sha256"):
        return [f"export {source.url}: coco.sha256 now pins {source.sha256.lower()}, imported {recorded.get('sha256')}"]
    now = probe(source.url, settings.timeout)
    if identifies(now) and identifies(recorded):
        if same_version(recorded, now):
            return []
        return [f"export changed: {source.url} ({describe(recorded)} -> {describe(now)})"]
    _, state = ensure_archive(source.url, source.sha256, cache, settings)
    if state["sha256"] == recorded.get("sha256"):
        return []
    return [f"export changed: {source.url} (SHA-256 {recorded.get('sha256')} -> {state['sha256']})"]

