"""Fetching one file: streamed, resumable, retried and verified before it reaches its final name.

* the MPII archive is ~12.9 GB, so a cut connection must not restart it: bytes go to ``<name>.part`` and the
  next attempt asks for the rest with ``Range: bytes=N-``; ``If-Range`` (the ETag / Last-Modified of the first
  response, kept in ``<name>.part.json``) makes the server send the whole file again if it changed meanwhile;
* nothing reaches its final name until its digests have been checked, so a file at its final name is verified;
  a file's size, sha256 and git blob id come from one read (the annotation h5 files are committed on GitHub, so
  their blob ids verify them; the archives have only a sha256, pinned or recorded).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hourglass.io.atomic import write_json_atomic

log = logging.getLogger(__name__)

_USER_AGENT = "stacked-hourglass-download/1 (+python urllib)"
_TRANSIENT_STATUS = frozenset({408, 425, 429})  # plus every 5xx


class DownloadError(RuntimeError):
    """Failed for good (HTTP 4xx, retries exhausted, digest mismatch); the message names the URL."""



class _Transient(Exception):
    """An attempt failed in a way worth retrying (connection lost, timeout, 5xx, short body)."""


# ------------------------------------------------------------------------------------------------- digests
@dataclass(frozen=True)
class Digests:
    """A file's content identity: size, sha256 and git's blob id (sha1 of ``b"blob <size>\\0" + content``)."""

    size: int
    sha256: str
    git_blob: str


def file_digests(path: str | Path, chunk_bytes: int = 1 << 20, progress: bool | None = False) -> Digests:
    """Both digests in one read of ``path`` (a 12.9 GB archive is read once, not twice)."""
    path = Path(path)
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as f, tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024,
                                     desc=f"verify {path.name}", disable=_tqdm_disable(progress)) as bar:
        while chunk := f.read(chunk_bytes):
            sha256.update(chunk)
            blob.update(chunk)
            bar.update(len(chunk))
    return Digests(size=size, sha256=sha256.hexdigest(), git_blob=blob.hexdigest())


def git_blob_id(path: str | Path) -> str:
    """``git hash-object path``: the id GitHub trees list for a committed file."""
    return file_digests(path).git_blob


@dataclass(frozen=True)
class Expected:
    """Pins a download must match; ``None`` means not pinned. Hex digests are compared in lower case."""

    sha256: str | None = None
    git_blob: str | None = None
    size: int | None = None

    @property
    def pinned(self) -> bool:
        """Whether any content digest is pinned (a size alone does not verify content)."""
        return self.sha256 is not None or self.git_blob is not None

    def mismatches(self, got: Digests) -> list[str]:
        """One ``"<what>: expected X, got Y"`` line per pin that ``got`` fails."""
        out = []
        for name in ("size", "sha256", "git_blob"):
            want = getattr(self, name)
            have = getattr(got, name)
            if want is not None and str(want).lower() != str(have).lower():
                out.append(f"{name}: expected {want}, got {have}")
        return out


# ------------------------------------------------------------------------------------------------- HTTP
@dataclass(frozen=True)
class HttpSettings:
    """Retry policy and I/O sizes of :func:`fetch`; ``progress=None``: tqdm shows bars only on a terminal."""

    retries: int = 5
    backoff: float = 2.0
    timeout: float = 60.0
    chunk_bytes: int = 1 << 20
    progress: bool | None = None


def _tqdm_disable(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


def fetch(url: str, dest: str | Path, expected: Expected = Expected(),
          settings: HttpSettings = HttpSettings()) -> Digests:
    """Download ``url`` to ``dest``: resume ``dest.part`` if present, retry with backoff, verify, then rename.

    ``url`` is ``http(s)://`` or ``file://`` (a local copy, e.g. a lab's mirror on a shared disk).
    Retries cover connection errors, timeouts, 5xx/408/429 and bodies shorter than announced;
    ``settings.retries`` counts consecutive failures, and an attempt that received bytes resets the count (a
    long download over a flaky link keeps going as long as it progresses). Any other HTTP error fails at once.
    On a digest mismatch the partial file is deleted and :class:`DownloadError` names the URL and the expected
    and actual values.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    meta = dest.with_name(dest.name + ".part.json")
    failures = 0
    if url.startswith("file://"):
        _copy_local(url, part, settings, dest.name)
    while not url.startswith("file://"):
        before = _size(part)
        try:
            _attempt(url, part, meta, settings, dest.name)
            break
        except _Transient as err:
            failures = 1 if _size(part) > before else failures + 1
            if failures > settings.retries:
                raise DownloadError(
                    f"{url}: giving up after {failures} failed attempt(s) in a row: {err}") from None
            delay = settings.backoff * 2 ** (failures - 1)
            log.warning("%s: %s; retry %d of %d in %.1f s", url, err, failures, settings.retries, delay)
            time.sleep(delay)
    digests = file_digests(part, settings.chunk_bytes, settings.progress)
    problems = expected.mismatches(digests)
    if problems:
        part.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
        raise DownloadError(f"{url}: verification failed, download deleted: " + "; ".join(problems))
    # Not io.atomic: the part file keeps one name across runs, since a later run resumes it.
    os.replace(part, dest)
    meta.unlink(missing_ok=True)
    return digests


def _copy_local(url: str, part: Path, settings: HttpSettings, label: str) -> None:
    """A ``file://`` source (a lab's own copy on a shared disk): copied into ``part``, continuing from the bytes
    ``part`` already holds, so it takes the same verify-then-rename path as a download."""
    source = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    try:
        total = source.stat().st_size
        offset = _size(part)
        if offset > total:
            part.unlink()
            offset = 0
        with open(source, "rb") as src, open(part, "ab") as out, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                disable=_tqdm_disable(settings.progress)) as bar:
            src.seek(offset)
            while chunk := src.read(settings.chunk_bytes):
                out.write(chunk)
                bar.update(len(chunk))
    except OSError as err:
        raise DownloadError(f"{url}: cannot copy the local file {source} ({err.strerror or err})") from None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _attempt(url: str, part: Path, meta: Path, settings: HttpSettings, label: str) -> None:
    """One HTTP request appending to (206) or restarting (200) ``part``; :class:`_Transient` means retry."""
    offset = _size(part)
    validator = _read_validator(meta, url) if offset else None
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            headers["If-Range"] = validator
    try:
        request = urllib.request.Request(url, headers=headers)
        response = urllib.request.urlopen(request, timeout=settings.timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and offset:
            _range_not_satisfiable(url, part, offset, err.headers.get("Content-Range"))
            return
        if err.code >= 500 or err.code in _TRANSIENT_STATUS:
            raise _Transient(f"HTTP {err.code} {err.reason}") from None
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise _Transient(f"connection failed: {err}") from None
    with response:
        if response.status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range"), url)
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Transient(f"server resumed at byte {start}, not {offset}; restarting from 0")
            mode = "ab"
        elif response.status == 200:
            if offset:
                log.info("%s: server sent the whole file instead of bytes %d-; restarting", url, offset)
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
            _write_validator(meta, url, response.headers)
        else:
            raise DownloadError(f"{url}: unexpected HTTP status {response.status} {response.reason}")
        received = _copy_body(response, part, mode, offset, total, settings, label)
    if total is not None and received < total:
        raise _Transient(f"connection closed after {received} of {total} bytes")


def _copy_body(response: http.client.HTTPResponse, part: Path, mode: str, offset: int, total: int | None,
               settings: HttpSettings, label: str) -> int:
    """Stream the body into ``part``; returns the file's size afterwards. Lost connections become retries.

    ``read1`` returns whatever has arrived, so a timeout loses none of the bytes already received.
    """
    received = offset
    bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
               disable=_tqdm_disable(settings.progress))
    with open(part, mode) as out, bar:
        while True:
            try:
                chunk = response.read1(settings.chunk_bytes)
            except (OSError, http.client.HTTPException) as err:
                raise _Transient(f"connection lost after {received} bytes: {err!r}") from None
            if not chunk:
                return received
            out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))


def _parse_content_range(value: str | None, url: str) -> tuple[int, int | None]:
    """``bytes START-END/TOTAL`` -> (START, TOTAL or None for ``*``)."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not match:
        raise DownloadError(f"{url}: 206 response with an unreadable Content-Range {value!r}")
    total = match.group(3)
    return int(match.group(1)), (None if total == "*" else int(total))


def _range_not_satisfiable(url: str, part: Path, offset: int, content_range: str | None) -> None:
    """416: the part is complete (a crash between download and rename) or is stale and must restart."""
    match = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", content_range or "")
    if match and int(match.group(1)) == offset:
        log.info("%s: the %d bytes already downloaded are the whole file", url, offset)
        return
    part.unlink(missing_ok=True)
    raise _Transient(f"HTTP 416 for bytes={offset}- (server size {content_range!r}); restarting from 0")


def _read_validator(meta: Path, url: str) -> str | None:
    """The ETag/Last-Modified that the part file was started with, if it was started from this URL."""
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    return data.get("validator") if isinstance(data, dict) and data.get("url") == url else None


def _write_validator(meta: Path, url: str, headers: Any) -> None:
    etag = headers.get("ETag")
    validator = etag if etag and not etag.startswith("W/") else headers.get("Last-Modified")
    if validator:
        write_json_atomic(meta, {"url": url, "validator": validator})
    else:
        meta.unlink(missing_ok=True)
