"""Fetching the real datasets: every source of a dataset downloaded and verified (``hourglass.data.fetch``),
its archives extracted safely (``hourglass.data.archive``), and the manifest that makes a rerun cheap
(``hourglass.data.manifest``) rewritten after each source.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hourglass.config import DownloadConfig, SourceConfig
from hourglass.data.fetch import DownloadError, HttpSettings
from hourglass.data.manifest import ensure_extracted, ensure_source, load_manifest
from hourglass.io.atomic import write_json_atomic

log = logging.getLogger(__name__)


def http_settings(config: DownloadConfig, progress: bool | None = None) -> HttpSettings:
    """The retry policy and I/O sizes params.yaml ``download`` gives every fetch (archives, COCO exports)."""
    return HttpSettings(config.retries, config.backoff, config.timeout, config.chunk_bytes, progress)


def download_dataset(config: DownloadConfig, dataset: str, sources: Sequence[SourceConfig],
                     root: str | Path | None = None, progress: bool | None = None) -> Path:
    """Fetch and verify every source of ``dataset`` (its card's ``download`` list) into ``<root>/<dataset>/``,
    extract archives, write the manifest; returns the manifest's path.

    Idempotent: a source whose file matches its manifest entry (size, and sha256 re-hashed or trusted by mtime
    per ``config.rehash_existing``) and every pin in params is not downloaded again; an archive whose recorded
    extraction matches is not extracted again. The manifest is rewritten after each source, so a crash keeps
    the work already verified.
    """
    if not sources:
        raise DownloadError(f"dataset {dataset!r}: its card lists no download sources")
    base = Path(root if root is not None else config.root) / dataset
    base.mkdir(parents=True, exist_ok=True)
    manifest_path = base / "manifest.json"
    old = load_manifest(manifest_path)
    settings = http_settings(config, progress)
    entries: list[dict[str, Any]] = []
    extracted: list[dict[str, Any]] = []
    for source in sources:
        entry = ensure_source(source, base, old["sources"].get(source.path), settings,
                               config.rehash_existing)
        entries.append(entry)
        if source.extract is not None:
            extracted.append(ensure_extracted(source, base, entry, old["extracted"].get(source.path)))
        write_json_atomic(manifest_path, {"dataset": dataset, "sources": entries, "extracted": extracted})
    log.info("%s: %d source(s) verified; manifest %s", dataset, len(entries), manifest_path)
    return manifest_path

