"""What a dataset's download holds and whether it is still good: ``manifest.json`` records each source's url, size,
digests and mtime and each archive's extraction, so a later run re-downloads or re-extracts only what changed.

A present file is trusted when its size and mtime match the manifest (re-hashing 12.9 GB on each run costs I/O) unless
``download.rehash_existing``; it must also match every pin in params (sha256, git blob id, size).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hourglass.config import SourceConfig
from hourglass.data.archive import UnsafeArchiveError, safe_extract
from hourglass.data.fetch import Digests, Expected, HttpSettings, fetch, file_digests

log = logging.getLogger(__name__)


def _count_files(directory: Path) -> int:
    if not directory.is_dir():
        return 0
    return sum(1 for p in directory.rglob("*") if not p.is_dir() or p.is_symlink())


def load_manifest(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
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


def ensure_source(source: SourceConfig, base: Path, previous: dict[str, Any] | None, settings: HttpSettings,
                   rehash: bool) -> dict[str, Any]:
    """``source`` present and verified under ``base`` (downloaded when missing, changed or unverifiable); its
    manifest entry."""
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


def ensure_extracted(source: SourceConfig, base: Path, entry: dict[str, Any],
                      previous: dict[str, Any] | None) -> dict[str, Any]:
    """The archive ``source`` extracted per its ``extract`` settings, unless ``previous`` records the same
    extraction and the files are still there; its manifest entry."""
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
