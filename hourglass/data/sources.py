"""Whether a dataset's sources changed since they were brought in: the check a scheduled retrain makes first.

A ``format: coco`` card names files outside the project (a CVAT or Label Studio export that grows as people label).
The import records the state of what it read (:func:`source_state`: every annotation file's size, mtime and
SHA-256, and each image it copied with the same); :func:`changed_sources` compares that record with the files as
they are now. Size and mtime decide cheaply; a file whose size or mtime moved is hashed, so touching a file without
changing it is no change. An export given by URL is one archive: its ETag (or content hash) is the check.
Downloaded (``mpii_h5``/``flic_h5``) and generated (``synthetic``) data have no such sources: their files are pinned
by digest or drawn from params, and DVC's own params and deps cover them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hourglass.data.coco_export import QUIET, cache_dir, export_changes
from hourglass.data.fetch import HttpSettings
from hourglass.dataset_card import CocoSource, DatasetCard
from hourglass.io.digest import file_sha256

STATE_KEY = "source_state"  # where import.json keeps the state of what was imported


@dataclass(frozen=True)
class FileState:
    """One source file as it was read: enough to tell a change without reading it again."""

    size: int
    mtime_ns: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "mtime_ns": self.mtime_ns, "sha256": self.sha256}


def file_state(path: Path, known: Mapping[str, Any] | None = None) -> FileState:
    """``path``'s state; the digest of ``known`` (a recorded state) is reused when size and mtime are unchanged."""
    stat = path.stat()
    if known and known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns:
        return FileState(stat.st_size, stat.st_mtime_ns, str(known["sha256"]))
    return FileState(stat.st_size, stat.st_mtime_ns, file_sha256(path))


def annotation_files(source: CocoSource) -> dict[str, Path]:
    """The source's COCO annotation files (training, and validation when separate), by the name the card gives
    them (a path on disk, or inside the export archive after :meth:`CocoSource.inside`)."""
    return {name: Path(path) for name, path in ((source.train, source.train), (source.valid, source.valid))
            if name is not None and path is not None}


def referenced_images(files: Iterable[Path]) -> list[str]:
    """Every ``file_name`` the annotation files list (people or not), sorted."""
    names: set[str] = set()
    for path in files:
        data = json.loads(path.read_text())
        names.update(str(image["file_name"]) for image in data.get("images", []) if "file_name" in image)
    return sorted(names)


def source_state(card: DatasetCard, previous: Mapping[str, Any] | None = None,
                 files: CocoSource | None = None) -> dict[str, Any]:
    """The state of a coco card's sources now: ``{"annotations": {name: state}, "images": {name: state}}`` (a
    missing image is left out; the import and preprocessing name it). ``previous`` saves re-hashing unchanged
    files. ``files``: where the files are read (the card's source resolved inside an extracted export); names stay
    the card's, so states of two extractions compare."""
    assert card.coco is not None
    previous = previous or {}
    old_annotations, old_images = previous.get("annotations", {}), previous.get("images", {})
    named, found = annotation_files(card.coco), annotation_files(files or card.coco)
    annotations = {name: file_state(path, old_annotations.get(name)).to_json()
                   for name, path in zip(named, found.values(), strict=True)}
    folder = Path((files or card.coco).images)
    images = {}
    for name in referenced_images(found.values()):
        path = folder / name
        if path.is_file():
            images[name] = file_state(path, old_images.get(name)).to_json()
    return {"annotations": annotations, "images": images}


def recorded_state(raw_dir: Path) -> dict[str, Any] | None:
    """The state the last import recorded in ``raw_dir/import.json`` (None: never imported, or no record)."""
    path = raw_dir / "import.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get(STATE_KEY)


def _diff(kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    changes = [f"{kind} added: {name}" for name in sorted(set(new) - set(old))]
    changes += [f"{kind} removed: {name}" for name in sorted(set(old) - set(new))]
    changes += [f"{kind} changed: {name}" for name in sorted(set(old) & set(new))
                if old[name]["sha256"] != new[name]["sha256"]]
    return changes


def changed_sources(card: DatasetCard, raw_dir: Path,
                    settings: HttpSettings = QUIET) -> list[str]:
    """What changed in the card's sources since ``raw_dir`` was imported, one line each (empty: nothing, or a
    format without such sources). Never imported: one line saying so. An export at a URL is checked as a whole
    (:func:`hourglass.data.coco_export.export_changes`: its ETag, or its content hash)."""
    if card.format != "coco":
        return []
    assert card.coco is not None
    old = recorded_state(raw_dir)
    if old is None:
        return [f"{raw_dir}: not imported yet"]
    if card.coco.url is not None:
        return export_changes(card.coco, old.get("export"), cache_dir(raw_dir), settings)
    new = source_state(card, old)
    return (_diff("annotation file", old.get("annotations", {}), new["annotations"])
            + _diff("image", old.get("images", {}), new["images"]))
