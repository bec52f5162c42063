"""COCO keypoints files (COCO, CrowdPose, AP-10K, and the exports of CVAT and Label Studio) as a table of people.

A COCO keypoints file lists ``images``, ``annotations`` (one per person: ``keypoints`` as flat x, y, v triples with
v = 0 not labelled, 1 labelled but hidden, 2 visible; ``bbox`` as x, y, w, h) and ``categories`` (the keypoint
names and a 1-based ``skeleton``). :func:`read_coco` checks what training needs and names the file and the key or
annotation when something is wrong; annotation tools omit optional keys (``num_keypoints``, ``iscrowd``, ``area``),
so those are not required. Coordinates are kept as the file writes them, NaN where a keypoint is not labelled, with
explicit ``annotated`` and ``visible`` masks as in :mod:`hourglass.io.annotations`.

The train/validation split (:func:`split_of`) hashes the image's file name, so adding images to a dataset never
moves an image already in it to the other split.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from hourglass.geometry import CROP_UNIT
from hourglass.inference.people import MPII_SCALE_FACTOR

REQUIRED = ("images", "annotations", "categories")
SKIP_KEYS = ("crowd", "no_keypoints", "bad_bbox", "box_from_keypoints", "other_category")
SPLITS = ("train", "valid")


class CocoError(ValueError):
    """A COCO keypoints file that cannot be read as one; the message names the file and the key or value."""


class CocoWarning(UserWarning):
    """Something in a COCO file was ignored (a skeleton written for another keypoint list); the message says what."""


@dataclass(frozen=True, eq=False)
class CocoPeople:
    """One row per usable person annotation of a COCO keypoints file."""

    source: Path
    keypoint_names: tuple[str, ...]
    skeleton: tuple[tuple[str, str], ...]  # from the categories' 1-based ``skeleton``, as names; () when absent
    file_name: np.ndarray  # (N,) str, the image's ``file_name`` as written in the JSON
    image_id: np.ndarray  # (N,) int64
    annotation_id: np.ndarray  # (N,) int64
    category_id: np.ndarray  # (N,) int64
    joints: np.ndarray  # (N, K, 2) float64, the file's x, y as they are; NaN where v == 0
    annotated: np.ndarray  # (N, K) bool, v > 0
    visible: np.ndarray  # (N, K) bool, v == 2
    bbox: np.ndarray  # (N, 4) float64 x, y, w, h
    area: np.ndarray  # (N,) float64, the annotation's ``area``, else w * h
    images: Mapping[int, tuple[str, int, int]]  # image id -> (file_name, width, height), with people or not
    skipped: Mapping[str, int]  # annotations not read (and boxes derived from keypoints), by reason: SKIP_KEYS

    def __len__(self) -> int:
        return len(self.file_name)

    def subset(self, rows: Any) -> CocoPeople:
        """Rows ``rows`` (numpy indexing) as a new table; ``images`` and ``skipped`` still describe the file."""
        return self._rows(rows, self.images)

    def _rows(self, rows: Any, images: Mapping[int, tuple[str, int, int]]) -> CocoPeople:
        return CocoPeople(
            source=self.source, keypoint_names=self.keypoint_names, skeleton=self.skeleton,
            file_name=self.file_name[rows], image_id=self.image_id[rows], annotation_id=self.annotation_id[rows],
            category_id=self.category_id[rows], joints=self.joints[rows], annotated=self.annotated[rows],
            visible=self.visible[rows], bbox=self.bbox[rows], area=self.area[rows], images=images,
            skipped=self.skipped,
        )


# ------------------------------------------------------------------------------------------------- reading
def _load(path: Path) -> dict[str, Any]:
    """The file's JSON object (standard json only: a data file must never run code)."""
    if not path.is_file():
        raise CocoError(f"{path}: COCO keypoints file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise CocoError(f"{path}: not a readable UTF-8 text file ({err})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise CocoError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    if not isinstance(data, dict):
        raise CocoError(f"{path}: expected a JSON object with keys {list(REQUIRED)}, got {type(data).__name__}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise CocoError(f"{path}: missing top-level key(s) {missing}; found {sorted(data)}")
    for key in REQUIRED:
        if not isinstance(data[key], list):
            raise CocoError(f"{path}: '{key}' must be a list, got {type(data[key]).__name__}")
    return data


def _int(value: Any, path: Path, what: str) -> int:
    """An integer id (JSON ints, or floats with an integer value as some exporters write them)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise CocoError(f"{path}: {what} must be an integer, got {value!r}")
    return int(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _images(path: Path, entries: list[Any]) -> dict[int, tuple[str, int, int]]:
    images: dict[int, tuple[str, int, int]] = {}
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise CocoError(f"{path}: images[{n}] must be an object, got {type(entry).__name__}")
        for key in ("id", "file_name", "width", "height"):
            if key not in entry:
                raise CocoError(f"{path}: images[{n}] (id {entry.get('id')!r}) has no '{key}'")
        image_id = _int(entry["id"], path, f"images[{n}] 'id'")
        if image_id in images:
            raise CocoError(f"{path}: image id {image_id} appears twice in 'images'")
        if not isinstance(entry["file_name"], str) or not entry["file_name"]:
            raise CocoError(f"{path}: image {image_id} 'file_name' must be a non-empty string, "
                            f"got {entry['file_name']!r}")
        width = _int(entry["width"], path, f"image {image_id} 'width'")
        height = _int(entry["height"], path, f"image {image_id} 'height'")
        images[image_id] = (entry["file_name"], width, height)
    return images


def _categories(path: Path, entries: list[Any], category_ids: Sequence[int] | None
                ) -> tuple[tuple[str, ...], dict[int, dict[str, Any]]]:
    """The keypoint names and the chosen keypoint categories by id."""
    keypoint_cats: dict[int, dict[str, Any]] = {}
    all_ids: set[int] = set()
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or "id" not in entry:
            raise CocoError(f"{path}: categories[{n}] must be an object with an 'id'")
        cat_id = _int(entry["id"], path, f"categories[{n}] 'id'")
        if cat_id in all_ids:
            raise CocoError(f"{path}: category id {cat_id} appears twice in 'categories'")
        all_ids.add(cat_id)
        names = entry.get("keypoints")
        if names is None:
            continue  # a category without keypoints (boxes only) is not part of the keypoint dataset
        if not isinstance(names, list) or not names or not all(isinstance(k, str) and k for k in names):
            raise CocoError(f"{path}: category {cat_id} 'keypoints' must be a non-empty list of names, got {names!r}")
        if len(set(names)) != len(names):
            repeated = sorted({k for k in names if names.count(k) > 1})
            raise CocoError(f"{path}: category {cat_id} 'keypoints' repeats {repeated}")
        keypoint_cats[cat_id] = entry
    if category_ids is not None:
        chosen: dict[int, dict[str, Any]] = {}
        for cat_id in category_ids:
            cat_id = int(cat_id)
            if cat_id not in all_ids:
                raise CocoError(f"{path}: category_ids asks for category {cat_id}, but 'categories' has only "
                                f"{sorted(all_ids)}")
            if cat_id not in keypoint_cats:
                raise CocoError(f"{path}: category_ids asks for category {cat_id}, which has no 'keypoints'")
            chosen[cat_id] = keypoint_cats[cat_id]
        if not chosen:
            raise CocoError(f"{path}: category_ids is empty; expected some of {sorted(keypoint_cats)}")
        keypoint_cats = chosen
    if not keypoint_cats:
        raise CocoError(f"{path}: no category has 'keypoints' (categories {sorted(all_ids)}): not a keypoints file")
    first_id, first = next(iter(keypoint_cats.items()))
    for cat_id, entry in keypoint_cats.items():
        if entry["keypoints"] != first["keypoints"]:
            raise CocoError(
                f"{path}: categories {first_id} and {cat_id} have different keypoint lists "
                f"({len(first['keypoints'])} vs {len(entry['keypoints'])} names: {first['keypoints']} vs "
                f"{entry['keypoints']}); pick the ones to read with category_ids")
    return tuple(first["keypoints"]), keypoint_cats


def _skeleton(path: Path, names: tuple[str, ...], cats: dict[int, dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """The union of the categories' skeletons as name pairs, each undirected edge once, in first-seen order.

    A skeleton with an index outside 1..K was written for another keypoint list (CrowdPose's files carry COCO's
    17-keypoint skeleton for 14 keypoints); its in-range edges would join the wrong joints too, so the category's
    whole skeleton is ignored with a :class:`CocoWarning` rather than failing a file whose people are fine."""
    edges: list[tuple[str, str]] = []
    seen: set[frozenset[str]] = set()
    for cat_id, entry in cats.items():
        skeleton = entry.get("skeleton")
        if skeleton is None:
            continue
        if not isinstance(skeleton, list) or not all(
                isinstance(e, list) and len(e) == 2 and all(_number(v) is not None for v in e) for e in skeleton):
            raise CocoError(f"{path}: category {cat_id} 'skeleton' must be a list of [i, j] index pairs, "
                            f"got {skeleton!r}")
        pairs = [(_int(a, path, f"category {cat_id} skeleton index"), _int(b, path, f"category {cat_id} skeleton "
                  "index")) for a, b in skeleton]
        bad = [p for p in pairs if not all(1 <= i <= len(names) for i in p)]
        if bad:
            warnings.warn(f"{path}: category {cat_id} 'skeleton' indexes past its {len(names)} keypoints "
                          f"(1-based; edges {bad[:5]}{' ...' if len(bad) > 5 else ''}): written for another "
                          "keypoint list, so it is ignored", CocoWarning, stacklevel=3)
            continue
        for a, b in pairs:
            edge = (names[a - 1], names[b - 1])
            if frozenset(edge) not in seen:
                seen.add(frozenset(edge))
                edges.append(edge)
    return tuple(edges)


def _keypoints(path: Path, ann_id: int, values: Any, k: int) -> np.ndarray:
    """(K, 3) float64 x, y, v, with the count, the numbers, the v values and finite labelled coordinates checked."""
    if not isinstance(values, list) or len(values) != 3 * k:
        found = len(values) if isinstance(values, list) else type(values).__name__
        raise CocoError(f"{path}: annotation {ann_id} 'keypoints' must be a flat list of 3 x {k} = {3 * k} numbers "
                        f"(x, y, v per keypoint), found {found}")
    numbers = [_number(v) for v in values]
    if any(v is None for v in numbers):
        bad = next(v for v, x in zip(values, numbers, strict=True) if x is None)
        raise CocoError(f"{path}: annotation {ann_id} 'keypoints' holds {bad!r}, not a number")
    triples = np.asarray(numbers, dtype=np.float64).reshape(k, 3)
    v = triples[:, 2]
    bad_v = ~np.isin(v, (0.0, 1.0, 2.0))
    if bad_v.any():
        j = int(np.flatnonzero(bad_v)[0])
        raise CocoError(f"{path}: annotation {ann_id} keypoint {j} has visibility v = {values[3 * j + 2]!r}; "
                        "expected 0 (not labelled), 1 (labelled, hidden) or 2 (visible)")
    labelled = v > 0
    if not np.isfinite(triples[labelled, :2]).all():
        j = int(np.flatnonzero(labelled & ~np.isfinite(triples[:, :2]).all(axis=1))[0])
        raise CocoError(f"{path}: annotation {ann_id} keypoint {j} is labelled but its x, y "
                        f"{values[3 * j]!r}, {values[3 * j + 1]!r} are not finite")
    return triples


def _box(path: Path, ann_id: int, ann: dict[str, Any]) -> np.ndarray | None:
    """The annotation's x, y, w, h; None when missing or empty (w or h <= 0, or not finite)."""
    box = ann.get("bbox")
    if box is None:
        return None
    if not isinstance(box, list) or len(box) != 4 or any(_number(v) is None for v in box):
        raise CocoError(f"{path}: annotation {ann_id} 'bbox' must be four numbers x, y, w, h, got {box!r}")
    arr = np.asarray(box, dtype=np.float64)
    if not np.isfinite(arr).all() or arr[2] <= 0 or arr[3] <= 0:
        return None
    return arr


def read_coco(path: str | Path, *, category_ids: Sequence[int] | None = None) -> CocoPeople:
    """Read the people of a COCO keypoints file. Categories sharing one keypoint list are one dataset (AP-10K's
    species); categories with different lists need ``category_ids`` to pick the ones to read."""
    path = Path(path)
    data = _load(path)
    images = _images(path, data["images"])
    names, cats = _categories(path, data["categories"], category_ids)
    skeleton = _skeleton(path, names, cats)
    k = len(names)
    skipped = dict.fromkeys(SKIP_KEYS, 0)
    rows: list[tuple[int, int, int, np.ndarray, np.ndarray, float]] = []
    for n, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or "id" not in ann:
            raise CocoError(f"{path}: annotations[{n}] must be an object with an 'id'")
        ann_id = _int(ann["id"], path, f"annotations[{n}] 'id'")
        if "category_id" in ann:
            cat_id = _int(ann["category_id"], path, f"annotation {ann_id} 'category_id'")
        elif len(cats) == 1:
            cat_id = next(iter(cats))  # exporters with a single category sometimes leave it out
        else:
            raise CocoError(f"{path}: annotation {ann_id} has no 'category_id' and the file has keypoint "
                            f"categories {sorted(cats)}")
        if cat_id not in cats:
            skipped["other_category"] += 1
            continue
        if "image_id" not in ann:
            raise CocoError(f"{path}: annotation {ann_id} has no 'image_id'")
        image_id = _int(ann["image_id"], path, f"annotation {ann_id} 'image_id'")
        if image_id not in images:
            raise CocoError(f"{path}: annotation {ann_id} refers to image_id {image_id}, which is not in 'images'")
        keypoints = ann.get("keypoints")
        triples = None if keypoints is None else _keypoints(path, ann_id, keypoints, k)
        if ann.get("iscrowd", 0):
            skipped["crowd"] += 1
            continue
        if triples is None or not (triples[:, 2] > 0).any():
            skipped["no_keypoints"] += 1
            continue
        box = _box(path, ann_id, ann)
        if box is None:
            labelled = triples[triples[:, 2] > 0, :2]
            lo, hi = labelled.min(axis=0), labelled.max(axis=0)
            if len(labelled) < 2 or not (hi - lo).max() > 0:
                skipped["bad_bbox"] += 1
                continue
            box = np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])
            skipped["box_from_keypoints"] += 1
        area = _number(ann.get("area"))
        if area is None or not math.isfinite(area):
            area = float(box[2] * box[3])
        rows.append((image_id, ann_id, cat_id, triples, box, area))
    n = len(rows)
    triples = np.stack([r[3] for r in rows]) if rows else np.zeros((0, k, 3))
    annotated = triples[..., 2] > 0
    return CocoPeople(
        source=path, keypoint_names=names, skeleton=skeleton,
        file_name=np.array([images[r[0]][0] for r in rows], dtype=str),
        image_id=np.array([r[0] for r in rows], dtype=np.int64).reshape(n),
        annotation_id=np.array([r[1] for r in rows], dtype=np.int64).reshape(n),
        category_id=np.array([r[2] for r in rows], dtype=np.int64).reshape(n),
        joints=np.where(annotated[..., None], triples[..., :2], np.nan),
        annotated=annotated, visible=triples[..., 2] == 2,
        bbox=np.array([r[4] for r in rows], dtype=np.float64).reshape(n, 4),
        area=np.array([r[5] for r in rows], dtype=np.float64).reshape(n),
        images=MappingProxyType(images), skipped=MappingProxyType(skipped),
    )


# ------------------------------------------------------------------------------------------------- splits and crops
def split_of(file_name: str, valid_fraction: float) -> str:
    """'valid' or 'train' for an image, from the SHA-256 of its file name (forward slashes) mapped to [0, 1): the
    split depends on the name alone, so adding images never moves one already in the dataset."""
    if not 0.0 <= valid_fraction <= 1.0:
        raise ValueError(f"valid_fraction {valid_fraction!r}: expected a fraction in [0, 1]")
    digest = hashlib.sha256(file_name.replace("\\", "/").encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2.0**64
    return "valid" if position < valid_fraction else "train"


def split_people(people: CocoPeople, valid_fraction: float) -> dict[str, CocoPeople]:
    """{'train': ..., 'valid': ...} by :func:`split_of` of each person's image, so one image's people stay together;
    each split's ``images`` holds the file's images of that split. Either split may be empty: the caller decides."""
    image_split = {i: split_of(name, valid_fraction) for i, (name, _, _) in people.images.items()}
    row_split = np.array([image_split[int(i)] for i in people.image_id], dtype=object)
    out: dict[str, CocoPeople] = {}
    for split in SPLITS:
        images = {i: entry for i, entry in people.images.items() if image_split[i] == split}
        out[split] = people._rows(np.flatnonzero(row_split == split), MappingProxyType(images))
    return out


def crop_of_box(bbox: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(center (N, 2), scale (N,)) of the crops around COCO boxes ``x, y, w, h`` (N, 4): the box's centre and its
    longer side times MPII's 1.25 margin in units of 200 px, the rule prediction uses for a user's box."""
    box = np.asarray(bbox, dtype=np.float64)
    if box.ndim != 2 or box.shape[1] != 4:
        raise ValueError(f"bbox must be (N, 4) x, y, w, h, got shape {box.shape}")
    center = box[:, :2] + box[:, 2:] / 2.0
    scale = MPII_SCALE_FACTOR * box[:, 2:].max(axis=1) / CROP_UNIT
    return center, scale
