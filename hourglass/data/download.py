"""Fetching the real datasets: streamed, resumable, retried, verified downloads and safe archive extraction.

Why each piece exists:

* the MPII archive is ~12.9 GB, so a cut connection must not restart it: bytes go to ``<name>.part`` and the
  next attempt asks for the rest with ``Range: bytes=N-``; ``If-Range`` (the ETag / Last-Modified of the first
  response, kept in ``<name>.part.json``) makes the server send the whole file again if it changed meanwhile;
* nothing reaches its final name until its digests have been checked, so a file at its final name is verified;
* the annotation h5 files are committed on GitHub, so their git blob ids (``shared/anchor-data/SOURCES.md``)
  verify a raw download; the archives have no published checksum, so their sha256 is pinned in params when
  known and otherwise recorded in ``manifest.json`` (and the log says so);
* archives are untrusted input: every member is checked (no absolute paths, no ``..``, no links leaving the
  target, no device files) and the whole archive is refused on the first bad one; extraction goes to a
  temporary directory that is renamed into place only when the archive has been read to the end.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hourglass.io.atomic import write_json_atomic
from hourglass.config import DownloadConfig, SourceConfig

log = logging.getLogger(__name__)

_USER_AGENT = "stacked-hourglass-download/1 (+python urllib)"
_TRANSIENT_STATUS = frozenset({408, 425, 429})  # plus every 5xx


class DownloadError(RuntimeError):
    """Failed for good (HTTP 4xx, retries exhausted, digest mismatch); the message names the URL."""


class UnsafeArchiveError(ValueError):
    """An archive member would escape the target or is not a plain file/dir/link; names archive and member."""


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


# ------------------------------------------------------------------------------------------------- archives
@dataclass(frozen=True)
class ExtractResult:
    """How many members were extracted (files and links) and how many lay outside the member prefix."""

    files: int
    skipped: int


def safe_extract(archive: str | Path, target: str | Path, member_prefix: str = "") -> ExtractResult:
    """Extract the members of a tar (any compression) or zip under ``member_prefix`` into ``target``, without
    the prefix.

    Every member, extracted or not, must be a plain file, directory or link with a relative path free of
    ``..``; links must stay inside ``target``. The first bad member aborts with :class:`UnsafeArchiveError`
    and leaves ``target`` untouched: extraction happens in a temporary sibling directory that replaces
    ``target`` at the end.
    """
    archive, target = Path(archive), Path(target)
    prefix = _member_parts(archive, member_prefix) if member_prefix.strip("/") else ()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.extract-", dir=target.parent))
    try:
        if zipfile.is_zipfile(archive):
            result = _extract_zip(archive, tmp, prefix)
        elif tarfile.is_tarfile(archive):
            result = _extract_tar(archive, tmp, prefix)
        else:
            raise UnsafeArchiveError(f"{archive}: neither a tar nor a zip archive")
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _member_parts(archive: Path, name: str) -> tuple[str, ...]:
    """The path components of a member name, refusing absolute paths, drive letters, ``..`` and NUL."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    parts = tuple(p for p in unified.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} contains '..'")
    if "\0" in unified:
        raise UnsafeArchiveError(f"{archive}: member {name!r} contains a NUL byte")
    return parts


def _strip(parts: tuple[str, ...], prefix: tuple[str, ...]) -> tuple[str, ...] | None:
    """``parts`` below ``prefix``, or None when the member lies outside it (or is the prefix directory)."""
    if parts[: len(prefix)] != prefix or len(parts) == len(prefix):
        return None
    return parts[len(prefix):]


def _check_symlink(archive: Path, name: str, where: tuple[str, ...], linkname: str) -> None:
    """A symlink at ``where`` (relative to its root) pointing to ``linkname`` must resolve inside the root."""
    unified = linkname.replace("\\", "/")
    if not unified or unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a link to the absolute path {linkname!r}")
    resolved = posixpath.normpath(posixpath.join(*where[:-1], unified))
    if resolved == ".." or resolved.startswith("../"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a link leaving the target ({linkname!r})")


def _extract_tar(archive: Path, root: Path, prefix: tuple[str, ...]) -> ExtractResult:
    """Stream the tar once (a 12.9 GB .tar.gz is not decompressed twice); check each member before writing."""
    files = skipped = 0
    with tarfile.open(archive, mode="r|*") as tar:
        for member in tar:
            parts = _member_parts(archive, member.name)
            if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
                raise UnsafeArchiveError(
                    f"{archive}: member {member.name!r} is a device or other special file")
            inside = _strip(parts, prefix) if parts else None
            link = member.linkname
            if member.issym():
                _check_symlink(archive, member.name, parts, link)
                if inside is not None:
                    _check_symlink(archive, member.name, inside, link)
            elif member.islnk():
                try:
                    link_parts = _member_parts(archive, link)
                except UnsafeArchiveError:
                    raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a hard link to {link!r} "
                                             "outside the archive") from None
                link_inside = _strip(link_parts, prefix)
                if inside is not None and link_inside is None:
                    raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a hard link to {link!r} "
                                             f"outside {'/'.join(prefix)!r}")
                link = "/".join(link_inside) if link_inside else link
            if inside is None:
                skipped += 0 if member.isdir() else 1
                continue
            renamed = member.replace(name="/".join(inside), linkname=link, deep=False)
            try:
                tar.extract(renamed, path=root, set_attrs=False, filter="data")
            except (tarfile.FilterError, tarfile.ExtractError, KeyError) as err:
                raise UnsafeArchiveError(f"{archive}: member {member.name!r} refused: {err}") from None
            files += 0 if member.isdir() else 1
    return ExtractResult(files=files, skipped=skipped)


def _extract_zip(archive: Path, root: Path, prefix: tuple[str, ...]) -> ExtractResult:
    """Zip members: Unix mode bits in ``external_attr`` mark symlinks and special files."""
    files = skipped = 0
    real_root = os.path.realpath(root)
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # check everything first: the central directory makes this cost no extra read
            _check_zip_member(archive, zf, info, prefix)
        for info in infos:
            inside = _strip(_member_parts(archive, info.filename), prefix)
            if inside is None:
                skipped += 0 if info.is_dir() else 1
                continue
            dest = root.joinpath(*inside)
            parent = os.path.realpath(dest.parent)  # a directory reached through a link must stay inside
            if parent != real_root and not parent.startswith(real_root + os.sep):
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} would land outside the target")
            if dest.exists() or dest.is_symlink():
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} occurs twice")
            mode = info.external_attr >> 16
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            if stat.S_ISLNK(mode):
                os.symlink(zf.read(info).decode("utf-8"), dest)
            else:
                with zf.open(info) as src, open(dest, "xb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            files += 1
    return ExtractResult(files=files, skipped=skipped)


def _check_zip_member(archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo,
                      prefix: tuple[str, ...]) -> None:
    parts = _member_parts(archive, info.filename)
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a device or other special file")
    if stat.S_ISLNK(mode):
        linkname = zf.read(info).decode("utf-8", errors="replace")
        _check_symlink(archive, info.filename, parts, linkname)
        inside = _strip(parts, prefix)
        if inside is not None:
            _check_symlink(archive, info.filename, inside, linkname)


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Replace ``target`` by ``tmp`` (rename cannot replace a non-empty directory: move the old one aside)."""
    old = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is None:
        return
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old)
    else:
        old.unlink()


def _count_files(directory: Path) -> int:
    if not directory.is_dir():
        return 0
    return sum(1 for p in directory.rglob("*") if not p.is_dir() or p.is_symlink())


# ------------------------------------------------------------------------------------------------- a dataset
def download_dataset(config: DownloadConfig, dataset: str, root: str | Path | None = None,
                     progress: bool | None = None) -> Path:
    """Fetch and verify every source of ``dataset`` into ``<root>/<dataset>/``, extract archives, write the
    manifest; returns the manifest's path.

    Idempotent: a source whose file matches its manifest entry (size, and sha256 re-hashed or trusted by mtime
    per ``config.rehash_existing``) and every pin in params is not downloaded again; an archive whose recorded
    extraction matches is not extracted again. The manifest is rewritten after each source, so a crash keeps
    the work already verified.
    """
    sources = config.sources(dataset)
    base = Path(root if root is not None else config.root) / dataset
    base.mkdir(parents=True, exist_ok=True)
    manifest_path = base / "manifest.json"
    old = _load_manifest(manifest_path)
    settings = HttpSettings(config.retries, config.backoff, config.timeout, config.chunk_bytes, progress)
    entries: list[dict[str, Any]] = []
    extracted: list[dict[str, Any]] = []
    for source in sources:
        entry = _ensure_source(source, base, old["sources"].get(source.path), settings,
                               config.rehash_existing)
        entries.append(entry)
        if source.extract is not None:
            extracted.append(_ensure_extracted(source, base, entry, old["extracted"].get(source.path)))
        write_json_atomic(manifest_path, {"dataset": dataset, "sources": entries, "extracted": extracted})
    log.info("%s: %d source(s) verified; manifest %s", dataset, len(entries), manifest_path)
    return manifest_path


def _load_manifest(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Entries of an earlier run keyed by path; an unreadable manifest just means nothing is trusted."""
    empty: dict[str, dict[str, dict[str, Any]]] = {"sources": {}, "extracted": {}}
    if not path.exists():
        return empty
    try:
        data = json.loads(path.read_text())
        return {key: {e["path"]: e for e in data.get(key, [])} for key in ("sources", "extracted")}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        log.warning("%s: unreadable manifest (%s); verifying every file again", path, err)
        return empty


def _ensure_source(source: SourceConfig, base: Path, previous: dict[str, Any] | None, settings: HttpSettings,
                   rehash: bool) -> dict[str, Any]:
    dest = base / source.path
    expected = Expected(source.sha256, source.git_blob, source.size)
    if dest.is_file() and previous is not None and previous.get("url") == source.url:
        digests = _present_digests(dest, previous, rehash, settings)
        if digests.sha256 == previous.get("sha256") and not expected.mismatches(digests):
            log.info("%s: present and verified (%s), not downloading", dest, previous.get("verified_against"))
            return _entry(source, dest, digests, expected)
        log.warning("%s: does not match manifest/params any more; downloading again", dest)
    elif dest.is_file() and expected.pinned:
        digests = file_digests(dest, settings.chunk_bytes, settings.progress)
        if not expected.mismatches(digests):
            log.info("%s: present and matches the pinned digests, not downloading", dest)
            return _entry(source, dest, digests, expected)
    log.info("%s: downloading %s", dest, source.url)
    digests = fetch(source.url, dest, expected, settings)
    if not expected.pinned:
        log.warning("%s: no checksum pinned in params for %s; recorded sha256 %s in the manifest (pin it as "
                    "`sha256:` in params.yaml to verify future downloads)", dest, source.url, digests.sha256)
    return _entry(source, dest, digests, expected)


def _present_digests(dest: Path, previous: dict[str, Any], rehash: bool, settings: HttpSettings) -> Digests:
    """Trust the manifest when size and mtime are unchanged (re-hashing 12.9 GB on each run costs I/O)."""
    st = dest.stat()
    if not rehash and st.st_size == previous.get("size") and st.st_mtime_ns == previous.get("mtime_ns"):
        return Digests(size=st.st_size, sha256=previous["sha256"], git_blob=previous["git_blob"])
    return file_digests(dest, settings.chunk_bytes, settings.progress)


def _entry(source: SourceConfig, dest: Path, digests: Digests, expected: Expected) -> dict[str, Any]:
    return {"url": source.url, "path": source.path, **asdict(digests),
            "verified_against": "pinned" if expected.pinned else "recorded",
            "mtime_ns": dest.stat().st_mtime_ns}


def _ensure_extracted(source: SourceConfig, base: Path, entry: dict[str, Any],
                      previous: dict[str, Any] | None) -> dict[str, Any]:
    spec = source.extract
    assert spec is not None  # the caller checks
    target = base / spec.into
    record = {"path": source.path, "archive_sha256": entry["sha256"], "member_prefix": spec.member_prefix,
              "into": spec.into}
    if previous is not None and all(previous.get(k) == v for k, v in record.items()) \
            and _count_files(target) == previous.get("files"):
        log.info("%s: already extracted from %s (%d files)", target, source.path, previous["files"])
        return previous
    log.info("%s: extracting members under %r into %s", base / source.path, spec.member_prefix, target)
    result = safe_extract(base / source.path, target, spec.member_prefix)
    if result.files == 0:
        raise UnsafeArchiveError(f"{base / source.path}: no member under {spec.member_prefix!r} "
                                 f"(download.*.extract.member_prefix is wrong for this archive)")
    log.info("%s: %d files extracted, %d members outside %r skipped", target, result.files, result.skipped,
             spec.member_prefix)
    return {**record, "files": result.files, "skipped": result.skipped}
