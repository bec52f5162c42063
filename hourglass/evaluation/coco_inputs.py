"""The inputs of COCO keypoint scoring, read and checked: a COCO keypoints file (the ground truth, with the fields
COCOeval needs filled in where a dataset leaves them out), a keypoint results list, and OKS sigmas; COCO's own
keypoint names and sigmas. Bad input is a :class:`~hourglass.io.eval_files.ReaderError` naming the file and the
entry. The scoring is :mod:`hourglass.evaluation.coco_eval`."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hourglass.io.eval_files import ReaderError

COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)
# COCO's published per-keypoint OKS sigmas (pycocotools' own default ``kpt_oks_sigmas``).
COCO_SIGMAS: tuple[float, ...] = tuple(v / 10.0 for v in (
    0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89))
_RESULT_KEYS = ("image_id", "category_id", "keypoints", "score")
_UTF8_BOM = b"\xef\xbb\xbf"


def is_json_file(path: str | Path) -> bool:
    """True when the file's first non-space byte opens a JSON array or object: the format, not the extension, decides
    (an .h5 is never mistaken for JSON and a results file named .txt still is one)."""
    path = Path(path)
    if not path.is_file():
        return False
    with path.open("rb") as fh:
        chunk = fh.read(4096).removeprefix(_UTF8_BOM)
        while chunk:
            chunk = chunk.lstrip(b" \t\r\n")
            if chunk:
                return chunk[:1] in (b"[", b"{")
            chunk = fh.read(4096)
    return False


# ---------------------------------------------------------------- reading and checking the two files


def read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ReaderError(f"{path}: {what} file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReaderError(f"{path}: not valid JSON ({err})") from None


def _is_id(value: Any) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _numbers(value: Any, count: int, where: str, key: str, expected: str) -> np.ndarray:
    """``value`` as a float array of ``count`` finite numbers, or an error naming ``where`` and ``key``."""
    if not isinstance(value, list):
        raise ReaderError(f"{where}: {key!r} must be a list of numbers, got {type(value).__name__}")
    if len(value) != count:
        raise ReaderError(f"{where}: {key!r} has {len(value)} values; {expected}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise ReaderError(f"{where}: {key!r} holds a value that is not a number")
    array = np.asarray(value, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ReaderError(f"{where}: {key!r} holds a non-finite value")
    return array


@dataclass(frozen=True)
class CocoTruth:
    """The ground truth, checked: the keypoint category, its annotations by id, and pycocotools' copy."""

    source: Path
    dataset: dict[str, Any]  # what pycocotools gets: the file with area / num_keypoints / iscrowd filled in
    category_id: int | str
    category: str
    names: tuple[str, ...]
    image_ids: frozenset[int | str]
    annotations: dict[int | str, dict[str, Any]]  # the keypoint category's annotations, by id, in file order
    category_names: dict[int | str, str]
    filled: dict[str, int]


def read_truth(path: Path) -> CocoTruth:
    data = read_json(path, "ground-truth")
    if not isinstance(data, dict):
        hint = " (a results list? it goes first, the annotations after --gt)" if isinstance(data, list) else ""
        raise ReaderError(f"{path}: a COCO keypoints file is a JSON object with 'images', 'annotations' and "
                          f"'categories', got a {type(data).__name__}{hint}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ReaderError(f"{path}: missing list {key!r} (a COCO keypoints file has 'images', 'annotations' "
                              f"and 'categories')")
    image_ids = set()
    for i, image in enumerate(data["images"]):
        if not isinstance(image, dict) or not _is_id(image.get("id")):
            raise ReaderError(f"{path}: images[{i}] has no integer or string 'id'")
        image_ids.add(image["id"])
    names_by_id: dict[int | str, str] = {}
    keypoint_categories = []
    for i, category in enumerate(data["categories"]):
        if not isinstance(category, dict) or not _is_id(category.get("id")):
            raise ReaderError(f"{path}: categories[{i}] has no integer or string 'id'")
        names_by_id[category["id"]] = str(category.get("name", category["id"]))
        if category.get("keypoints"):
            keypoint_categories.append(category)
    if not keypoint_categories:
        raise ReaderError(f"{path}: no category has 'keypoints' (categories {sorted(map(str, names_by_id))}); "
                          f"not a COCO keypoints file")
    if len(keypoint_categories) > 1:
        found = [str(c["id"]) for c in keypoint_categories]
        raise ReaderError(f"{path}: categories {found} all have 'keypoints'; one keypoint category per file is "
                          f"supported")
    category = keypoint_categories[0]
    names = category["keypoints"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ReaderError(f"{path}: category {category['id']}: 'keypoints' must be a list of keypoint names")
    k = len(names)
    label = f"category {names_by_id[category['id']]!r} has {k} keypoints, so 3 x {k} = {3 * k} values are expected"
    filled = {"area": 0, "num_keypoints": 0, "iscrowd": 0}
    annotations: dict[int | str, dict[str, Any]] = {}
    patched = []
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or not _is_id(ann.get("id")):
            raise ReaderError(f"{path}: annotations[{i}] has no integer or string 'id'")
        where = f"{path}: annotation {ann['id']}"
        if ann["id"] in annotations:
            raise ReaderError(f"{where}: the id is used twice")
        if ann.get("image_id") not in image_ids:
            raise ReaderError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
        if ann.get("category_id") != category["id"]:
            patched.append(ann)  # another category: pycocotools skips it (catIds), so do we
            continue
        if "keypoints" not in ann:
            raise ReaderError(f"{where}: missing 'keypoints'")
        kp = _numbers(ann["keypoints"], 3 * k, where, "keypoints", label)
        if "bbox" not in ann:
            raise ReaderError(f"{where}: missing 'bbox' (x, y, w, h), the PCK normaliser")
        box = _numbers(ann["bbox"], 4, where, "bbox", "expected [x, y, w, h]")
        ann = dict(ann)
        if "iscrowd" not in ann:
            ann["iscrowd"], filled["iscrowd"] = 0, filled["iscrowd"] + 1
        if "area" not in ann:
            ann["area"], filled["area"] = float(box[2] * box[3]), filled["area"] + 1
        if "num_keypoints" not in ann:
            ann["num_keypoints"] = int(np.count_nonzero(kp[2::3] > 0))
            filled["num_keypoints"] += 1
        annotations[ann["id"]] = ann
        patched.append(ann)
    return CocoTruth(source=path, dataset={**data, "annotations": patched}, category_id=category["id"],
                  category=names_by_id[category["id"]], names=tuple(names), image_ids=frozenset(image_ids),
                  annotations=annotations, category_names=names_by_id, filled=filled)


@dataclass(frozen=True)
class CocoResults:
    """Checked results: the rows pycocotools gets, and the same as arrays for matching."""

    rows: list[dict[str, Any]]
    xy: np.ndarray  # (R, K, 2)
    score: np.ndarray  # (R,)
    image_ids: list[int | str]
    annotation_ids: list[int | str | None]


def read_results(data: Any, source: str, truth: CocoTruth) -> CocoResults:
    if not isinstance(data, list):
        raise ReaderError(f"{source}: a COCO results file is a JSON list of {{'image_id', 'category_id', "
                          f"'keypoints', 'score'}} objects, got a {type(data).__name__}")
    k = len(truth.names)
    label = (f"category {truth.category!r} of {truth.source} has {k} keypoints, so 3 x {k} = {3 * k} values are "
             f"expected")
    rows, xy, scores, image_ids, annotation_ids = [], [], [], [], []
    for i, row in enumerate(data):
        where = f"{source}: result {i}"
        if not isinstance(row, dict):
            raise ReaderError(f"{where}: expected an object, got {type(row).__name__}")
        for key in _RESULT_KEYS:
            if key not in row:
                raise ReaderError(f"{where}: missing {key!r}")
        if not _is_id(row["image_id"]) or row["image_id"] not in truth.image_ids:
            raise ReaderError(f"{where}: image_id {row['image_id']!r} is not an image of {truth.source}")
        if row["category_id"] != truth.category_id:
            known = _is_id(row["category_id"]) and row["category_id"] in truth.category_names
            why = (f"is category {truth.category_names[row['category_id']]!r}, which has no keypoints" if known
                   else f"is not a category of {truth.source}")
            raise ReaderError(f"{where}: category_id {row['category_id']!r} {why}")
        kp = _numbers(row["keypoints"], 3 * k, where, "keypoints", label)
        score = row["score"]
        if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score):
            raise ReaderError(f"{where}: 'score' must be a finite number, got {score!r}")
        ann_id = row.get("annotation_id")
        if ann_id is not None:
            ann = truth.annotations.get(ann_id) if _is_id(ann_id) else None
            if ann is None:
                raise ReaderError(f"{where}: annotation_id {ann_id!r} is not a {truth.category!r} annotation of "
                                  f"{truth.source}")
            if ann["image_id"] != row["image_id"]:
                raise ReaderError(f"{where}: annotation_id {ann_id!r} is on image {ann['image_id']!r}, the result "
                                  f"on image {row['image_id']!r}")
        rows.append({key: row[key] for key in _RESULT_KEYS})
        xy.append(kp.reshape(k, 3)[:, :2])
        scores.append(float(score))
        image_ids.append(row["image_id"])
        annotation_ids.append(ann_id)
    return CocoResults(rows=rows, xy=np.asarray(xy, dtype=np.float64).reshape(len(rows), k, 2),
                    score=np.asarray(scores, dtype=np.float64), image_ids=image_ids, annotation_ids=annotation_ids)


def check_sigmas(sigmas: Sequence[float], truth: CocoTruth) -> np.ndarray:
    try:
        array = np.asarray(list(sigmas), dtype=np.float64)
    except (TypeError, ValueError):
        raise ReaderError(f"sigmas must be numbers, got {sigmas!r}") from None
    if array.ndim != 1 or not (np.isfinite(array).all() and (array > 0).all()):
        raise ReaderError(f"sigmas must be a list of positive numbers, got {list(sigmas)!r}")
    if len(array) != len(truth.names):
        raise ReaderError(f"{len(array)} sigmas given, but category {truth.category!r} of {truth.source} has "
                          f"{len(truth.names)} keypoints")
    return array


# ---------------------------------------------------------------- the metrics


def parse_sigmas(text: str) -> tuple[tuple[float, ...], str]:
    """``--sigmas``: a YAML file holding a list under key ``sigmas`` (ReaderError when it is bad: exit 1), or a comma
    list (ValueError when it is bad: an invalid invocation, exit 2). Returns the values and where they came from."""
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ReaderError(f"{path}: sigmas file not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ReaderError(f"{path}: not valid YAML ({err})") from None
        values = data.get("sigmas") if isinstance(data, dict) else None
        if not isinstance(values, list) or not values:
            raise ReaderError(f"{path}: expected a list of numbers under key 'sigmas'")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                   for v in values):
            raise ReaderError(f"{path}: 'sigmas' must hold positive numbers, got {values!r}")
        return tuple(float(v) for v in values), str(path)
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--sigmas {text!r}: expected comma-separated numbers or a YAML file") from None
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"--sigmas {text!r}: sigmas must be positive numbers")
    return values, "--sigmas"
