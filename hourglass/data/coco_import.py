"""A ``format: coco`` dataset brought into ``data/raw/<name>/``: the layout every later stage reads.

The card's COCO keypoints file(s) become ``annot/train.h5`` and ``annot/valid.h5`` in pose-hg-train's layout (one row
per person: the box's centre and scale as the crop, the box's longer side as the PCK normaliser), the validation
people also as ``annot/valid.json`` (a COCO file, so pycocotools and any COCO tool can score our results against
it), and the images they name are copied to ``images/``. ``import.json`` records what was read and skipped.

Splits: a separate validation file, or one file split by each image's file name (:func:`hourglass.io.coco.split_of`),
so adding images never moves one already in the dataset to the other split.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from hourglass.data.coco_export import QUIET, cache_dir, ensure_archive, extracted
from hourglass.data.fetch import HttpSettings
from hourglass.data.sources import STATE_KEY, recorded_state, source_state
from hourglass.dataset_card import CocoSource, DatasetCard
from hourglass.io.annotations import Annotations, write_annotations
from hourglass.io.atomic import atomic_path, write_json_atomic
from hourglass.io.coco import CocoError, CocoPeople, crop_of_box, read_coco, split_people
from hourglass.io.digest import file_sha256

log = logging.getLogger(__name__)

SPLITS = ("train", "valid")
IMPORT_RECORD = "import.json"  # data/raw/<name>/import.json: what was read, skipped and missing


def people_table(people: CocoPeople) -> Annotations:
    """COCO people as annotation rows: the box is the crop and its longer side the normaliser (PCK@0.2 by box)."""
    center, scale = crop_of_box(people.bbox)
    normalize = np.maximum(people.bbox[:, 2], people.bbox[:, 3]).astype(np.float64)
    return Annotations(
        imgname=np.asarray(people.file_name, dtype=str), center=center, scale=scale, joints=people.joints,
        annotated=people.annotated, visible=people.visible, normalize=normalize,
        extra={"image_id": people.image_id.astype(np.int64), "annotation_id": people.annotation_id.astype(np.int64),
               "category_id": people.category_id.astype(np.int64), "bbox": people.bbox.astype(np.float64),
               "area": people.area.astype(np.float64)},
    )


def coco_subset(source: Path, people: CocoPeople, keypoints: tuple[str, ...],
                skeleton: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The people of one split as a COCO keypoints file (images, annotations, one category) for COCO tools."""
    index = {name: i + 1 for i, name in enumerate(keypoints)}
    image_ids = sorted({int(i) for i in people.image_id})
    images = [{"id": i, "file_name": people.images[i][0], "width": people.images[i][1],
               "height": people.images[i][2]} for i in image_ids]
    annotations = []
    for row in range(len(people)):
        flat: list[float] = []
        for k in range(len(keypoints)):
            v = 2 if people.visible[row, k] else (1 if people.annotated[row, k] else 0)
            x, y = people.joints[row, k] if v else (0.0, 0.0)
            flat += [float(x), float(y), v]
        x, y, w, h = (float(v) for v in people.bbox[row])
        annotations.append({"id": int(people.annotation_id[row]), "image_id": int(people.image_id[row]),
                            "category_id": 1, "keypoints": flat, "num_keypoints": int(people.annotated[row].sum()),
                            "bbox": [x, y, w, h], "area": float(people.area[row]), "iscrowd": 0})
    category = {"id": 1, "name": "instance", "supercategory": "instance", "keypoints": list(keypoints),
                "skeleton": [[index[a], index[b]] for a, b in skeleton]}
    return {"info": {"description": f"validation split of {source}"}, "images": images,
            "annotations": annotations, "categories": [category]}


def _copy_image(src: Path, dst: Path, digest: str | None) -> bool:
    """Copy one image unless the copy there has its digest; the copy is verified against ``digest`` (the source's
    SHA-256 when read) before it replaces anything. False when the source is missing."""
    if not src.is_file():
        return False
    if digest is not None and dst.is_file() and file_sha256(dst) == digest:
        return True
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        shutil.copy2(src, tmp)
        if digest is not None and file_sha256(tmp) != digest:
            raise CocoError(f"{src}: changed while it was copied (SHA-256 differs); run the import again")
    return True


def _check_keypoints(card: DatasetCard, people: CocoPeople) -> None:
    if people.keypoint_names != card.keypoints:
        raise CocoError(f"{people.source}: the category's keypoints {list(people.keypoint_names)} differ from the "
                        f"card {card.source_file}'s {list(card.keypoints)}; the card must list them in the file's "
                        "order")


def read_splits(card: DatasetCard, source: CocoSource | None = None) -> dict[str, CocoPeople]:
    """The card's people per split (a validation file, or the one file split by image file name). ``source``:
    where the files are read when not where the card says (inside an extracted export)."""
    source = source or card.coco
    assert source is not None  # the card validator requires it with format: coco
    cats = source.category_ids
    train = read_coco(source.train, category_ids=cats)
    _check_keypoints(card, train)
    if source.valid is not None:
        valid = read_coco(source.valid, category_ids=cats)
        _check_keypoints(card, valid)
        splits = {"train": train, "valid": valid}
    else:
        splits = split_people(train, source.valid_fraction)
    for split, people in splits.items():
        if not len(people):
            how = (f"valid_fraction {source.valid_fraction:g} of {len(train)} people" if source.valid is None
                   else "the file")
            raise CocoError(f"{card.source_file}: the {split} split has no people ({how}); add labelled images, "
                            "raise coco.valid_fraction or give a validation file")
    return splits


def import_skips(raw_dir: str | Path) -> dict[str, dict[str, int]]:
    """The annotations the import skipped, per source file (crowd, no labelled keypoint, ...), from
    ``import.json``; empty for data that did not come through the COCO import."""
    path = Path(raw_dir) / IMPORT_RECORD
    if not path.is_file():
        return {}
    record = json.loads(path.read_text())
    return {source: {k: int(v) for k, v in skipped.items() if v} for source, skipped in record["sources"].items()}


def import_coco(card: DatasetCard, out: str | Path, settings: HttpSettings = QUIET) -> str:
    """Write ``out/annot/{train,valid}.h5``, ``out/annot/valid.json``, ``out/images/`` and ``out/import.json`` from
    the card's COCO files; returns the summary line. Missing images are counted here and named by preprocess.
    An export at ``coco.url`` is fetched (or taken from the cache when the server names the same version) and
    read from a temporary extraction; its state (URL, ETag, SHA-256) is recorded for the next sources check."""
    out = Path(out)
    assert card.coco is not None
    if card.coco.url is None:
        return _import(card, card.coco, out, None)
    archive, export = ensure_archive(card.coco.url, card.coco.sha256, cache_dir(out), settings)
    with extracted(archive, out.parent) as root:
        source = card.coco.inside(root)
        missing = [f"coco.{key} {getattr(card.coco, key)!r}" for key in ("train", "valid", "images")
                   if getattr(source, key) is not None and not Path(getattr(source, key)).exists()]
        if missing:
            found = sorted(str(p.relative_to(root)) for p in root.rglob("*.json"))[:10]
            raise CocoError(f"{card.source_file}: {', '.join(missing)} not in the export {card.coco.url} "
                            f"(JSON files in it: {found or 'none'})")
        return _import(card, source, out, export, root)


def _import(card: DatasetCard, source: CocoSource, out: Path, export: dict[str, Any] | None = None,
            root: Path | None = None) -> str:
    """The import from files on disk (``source``: the card's, or resolved inside the export extracted at ``root``,
    whose state ``export`` is recorded)."""
    splits = read_splits(card, source)
    images_src = Path(source.images)
    (out / "annot").mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"card": card.name, "card_digest": card.digest(), "sources": {}, "splits": {}}
    # what was read, to tell a later change (data/sources.py)
    state = source_state(card, recorded_state(out), files=source)
    if export is not None:
        state["export"] = export

    def label(path: Path) -> str:  # an annotation file as the user knows it: its path, or URL#member
        return str(path) if export is None or root is None else f"{export['url']}#{Path(path).relative_to(root)}"

    missing: list[str] = []
    for split, people in splits.items():
        names = sorted(set(people.file_name.tolist()))
        for name in names:
            known = state["images"].get(name)
            if not _copy_image(images_src / name, out / "images" / name, known["sha256"] if known else None):
                missing.append(name)
        write_annotations(out / "annot" / f"{split}.h5", people_table(people), name=card.name)
        summary["splits"][split] = {"people": len(people), "images": len(names), "source": label(people.source)}
        summary["sources"][label(people.source)] = {k: int(v) for k, v in people.skipped.items()}
        log.info("%s %s: %d people in %d images from %s; skipped %s", card.name, split, len(people), len(names),
                 label(people.source), dict(people.skipped) or "none")
    write_json_atomic(out / "annot" / "valid.json",
                      coco_subset(label(splits["valid"].source), splits["valid"], card.keypoints, card.skeleton))
    summary["missing_images"] = missing
    summary[STATE_KEY] = state
    if missing:
        log.warning("%d image(s) named by the annotations are not in %s (first: %s); preprocess counts them as bad",
                    len(missing), card.coco.images if card.coco else images_src, missing[0])
    write_json_atomic(out / IMPORT_RECORD, summary)
    people = {split: len(p) for split, p in splits.items()}
    return f"{card.name}: {people} people from COCO keypoints, images -> {out / 'images'}"
