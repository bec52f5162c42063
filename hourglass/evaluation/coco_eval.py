"""Score COCO-format keypoint results against a COCO keypoints file: OKS AP/AR, PCK (bbox-normalised) and EPE.

``python -m hourglass.evaluation RESULTS.json --gt ANNOTATIONS.json`` lands here when the files are JSON. COCO's
format is how the field exchanges multi-person keypoints (COCO's server, mmpose, CrowdPose, OneHand10K), so scoring it
lets our numbers sit beside theirs:

* AP/AR (and AP50 ... ARl) are computed by pycocotools' ``COCOeval(iouType='keypoints')`` itself, the code behind every
  published COCO keypoint number, with the OKS sigmas given by the caller or, for COCO's 17 keypoints, COCO's own;
  without sigmas there is no OKS and AP/AR are reported as not computed, with the reason.
* PCK@t is mmpose's ``PCKAccuracy(norm_item='bbox')`` and EPE its ``keypoint_epe``: single-person metrics, so each
  ground-truth person is first matched one-to-one to a result (see :func:`score_coco_results`).

pycocotools runs on an in-memory copy of the ground truth in which fields COCOeval reads but some datasets leave out
are filled in: ``area`` = bbox w x h (CrowdPose has none), ``num_keypoints`` = the count of labelled (v > 0)
keypoints (OneHand10K has none) and ``iscrowd`` = 0; the count of each fill is reported. The results handed to it
keep only ``image_id``, ``category_id``, ``keypoints`` and ``score`` (a stray ``bbox`` would turn ``loadRes`` to box
results). The writers at the end (:func:`coco_result_rows`, :func:`write_coco_results`) produce such a file.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hourglass.io.atomic import atomic_path
from hourglass.io.eval_files import ReaderError

COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)
# COCO's published per-keypoint OKS sigmas (pycocotools' own default ``kpt_oks_sigmas``).
COCO_SIGMAS: tuple[float, ...] = tuple(v / 10.0 for v in (
    0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89))
# pycocotools' ``stats`` for iouType 'keypoints', in its order.
STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
DEFAULT_THRESHOLD = 0.2
# Matching without sigmas: exp(-d^2 / (2 * area * KAPPA^2)), one constant for every keypoint (OKS with 2 sigma = 0.1).
BOX_KAPPA = 0.1
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


def _read_json(path: Path, what: str) -> Any:
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
class _Truth:
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


def _read_truth(path: Path) -> _Truth:
    data = _read_json(path, "ground-truth")
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
    return _Truth(source=path, dataset={**data, "annotations": patched}, category_id=category["id"],
                  category=names_by_id[category["id"]], names=tuple(names), image_ids=frozenset(image_ids),
                  annotations=annotations, category_names=names_by_id, filled=filled)


@dataclass(frozen=True)
class _Results:
    """Checked results: the rows pycocotools gets, and the same as arrays for matching."""

    rows: list[dict[str, Any]]
    xy: np.ndarray  # (R, K, 2)
    score: np.ndarray  # (R,)
    image_ids: list[int | str]
    annotation_ids: list[int | str | None]


def _read_results(data: Any, source: str, truth: _Truth) -> _Results:
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
    return _Results(rows=rows, xy=np.asarray(xy, dtype=np.float64).reshape(len(rows), k, 2),
                    score=np.asarray(scores, dtype=np.float64), image_ids=image_ids, annotation_ids=annotation_ids)


def _check_sigmas(sigmas: Sequence[float], truth: _Truth) -> np.ndarray:
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


@dataclass(frozen=True)
class CocoScores:
    """The scores of one results file: pycocotools' OKS stats, PCK (percent), EPE (pixels) and the matching counts.

    ``stats`` maps :data:`STAT_NAMES` to pycocotools' numbers (fractions); a value is None when AP/AR were not
    computed (``ap_note`` says why) or where pycocotools reports -1 (no ground truth in that area range).
    """

    stats: dict[str, float | None]
    threshold: float
    pck: float | None  # mean over keypoints with a labelled instance; None when there is none
    per_keypoint: tuple[tuple[str, float | None], ...]  # (name, PCK %), None where no instance is labelled
    labelled: tuple[int, ...]  # per keypoint, the instances the PCK counts
    epe: float | None  # mean pixel error over labelled keypoints of matched annotations
    matched: int
    unmatched_annotations: int
    unmatched_results: int
    annotations: int  # scored ground-truth people: not crowd, at least one labelled keypoint
    results: int
    category: str
    sigmas_source: str | None  # 'given', 'coco' (COCO's published 17) or None (no sigmas: no AP/AR)
    ap_note: str | None
    filled: dict[str, int]  # ground-truth fields filled in for pycocotools: field -> annotations

    @property
    def ap(self) -> float | None:
        return self.stats["AP"]

    @property
    def ar(self) -> float | None:
        return self.stats["AR"]

    @property
    def pck_key(self) -> str:
        return f"PCK@{self.threshold:g}"

    def as_dict(self) -> dict[str, Any]:
        """The JSON object of ``--json``: pycocotools' stats, then PCK, EPE, per-keypoint PCK and the counts."""
        return {
            **self.stats,
            self.pck_key: self.pck,
            "EPE": self.epe,
            "per_keypoint": dict(self.per_keypoint),
            "matched": self.matched,
            "unmatched_annotations": self.unmatched_annotations,
            "unmatched_results": self.unmatched_results,
            "annotations": self.annotations,
            "results": self.results,
            "sigmas_source": self.sigmas_source,
            "AP_note": self.ap_note,
            "gt_filled": {k: v for k, v in self.filled.items() if v},
        }


def _coco_stats(truth: _Truth, results: _Results, sigmas: np.ndarray) -> dict[str, float | None]:
    """pycocotools' keypoint AP/AR on copies (COCO objects and COCOeval write into what they are given)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset = copy.deepcopy(truth.dataset)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress; only its prints go
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        if results.rows:
            coco_dt = coco_gt.loadRes(copy.deepcopy(results.rows))
        else:  # loadRes cannot take an empty list; no detections is a valid outcome (AP 0)
            coco_dt = COCO()
            coco_dt.dataset = {"images": list(dataset["images"]), "categories": copy.deepcopy(dataset["categories"]),
                               "annotations": []}
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        evaluator.params.catIds = [truth.category_id]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: (None if value < 0 else float(value)) for name, value in zip(STAT_NAMES, evaluator.stats,
                                                                                 strict=True)}


def _similarity(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray, area: np.ndarray,
                sigmas: np.ndarray | None) -> np.ndarray:
    """(R, G) OKS between results and ground-truth people (COCO's formula); without sigmas every keypoint gets
    ``BOX_KAPPA``: exp(-d^2 / (2 * area * 0.1^2)) averaged over the labelled keypoints."""
    d2 = ((pred[:, None] - gt[None]) ** 2).sum(-1)  # (R, G, K)
    kappa2 = (2.0 * sigmas) ** 2 if sigmas is not None else np.full(gt.shape[1], BOX_KAPPA ** 2)
    e = d2 / (2.0 * (area[None, :, None] + np.spacing(1)) * kappa2)
    return (np.exp(-e) * labelled[None]).sum(-1) / labelled.sum(-1)[None]


def _match(results: _Results, truth: _Truth, scored: list[int | str], gt_xy: np.ndarray, labelled: np.ndarray,
           sigmas: np.ndarray | None) -> dict[int, int]:
    """Ground-truth index -> result index, one-to-one.

    A result naming an ``annotation_id`` is only ever matched to that annotation (the highest score wins a doubly
    named one; naming a crowd or unlabelled annotation leaves the result unmatched). The others are matched within
    their image greedily in descending OKS, ties to the higher score, with no minimum: every person left gets the
    closest result left.
    """
    index = {ann_id: g for g, ann_id in enumerate(scored)}
    assigned: dict[int, int] = {}
    named = [r for r, a in enumerate(results.annotation_ids) if a is not None]
    for r in sorted(named, key=lambda r: (-results.score[r], r)):
        g = index.get(results.annotation_ids[r])
        if g is not None and g not in assigned:
            assigned[g] = r
    rows_by_image: dict[int | str, list[int]] = {}
    for r, (image_id, ann_id) in enumerate(zip(results.image_ids, results.annotation_ids, strict=True)):
        if ann_id is None:
            rows_by_image.setdefault(image_id, []).append(r)
    gts_by_image: dict[int | str, list[int]] = {}
    for g, ann_id in enumerate(scored):
        if g not in assigned:
            gts_by_image.setdefault(truth.annotations[ann_id]["image_id"], []).append(g)
    area = np.array([float(truth.annotations[a]["area"]) for a in scored])
    for image_id, rows in rows_by_image.items():
        gts = gts_by_image.get(image_id, [])
        if not gts:
            continue
        sim = _similarity(results.xy[rows], gt_xy[gts], labelled[gts], area[gts], sigmas)
        pairs = sorted((-sim[i, j], -results.score[r], r, g) for i, r in enumerate(rows) for j, g in enumerate(gts))
        used = set()
        for _, _, r, g in pairs:
            if g not in assigned and r not in used:
                assigned[g] = r
                used.add(r)
    return assigned


def score_coco_results(results: str | Path | list[dict], gt: str | Path, *, sigmas: Sequence[float] | None = None,
                       threshold: float = DEFAULT_THRESHOLD) -> CocoScores:
    """Score COCO keypoint results (a file or the parsed list) against the COCO keypoints file ``gt``.

    AP/AR come from pycocotools with ``sigmas`` (or COCO's own when the category's keypoints are COCO's 17; with
    neither they are None). PCK@``threshold`` (percent) follows mmpose's PCKAccuracy with norm_item 'bbox': a
    labelled (v > 0) keypoint is correct when ||pred - gt|| / max(bbox w, h) < threshold, people with a zero-sized
    box are left out, and the PCK is the mean of the per-keypoint accuracies over keypoints with a labelled
    instance. EPE is the mean pixel distance over labelled keypoints of matched people. Only people that are not
    crowd and have a labelled keypoint are scored; each is matched to at most one result (see :func:`_match`), and
    one without a result counts as wrong in the PCK and is left out of the EPE. Bad input raises
    :class:`~hourglass.io.eval_files.ReaderError` naming the file and the key.
    """
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a non-negative number, got {threshold}")
    truth = _read_truth(Path(gt))
    if isinstance(results, str | Path):
        parsed = _read_results(_read_json(Path(results), "results"), str(results), truth)
    else:
        parsed = _read_results(results, "results", truth)
    if sigmas is not None:
        oks_sigmas, source, note = _check_sigmas(sigmas, truth), "given", None
    elif truth.names == COCO_KEYPOINT_NAMES:
        oks_sigmas, source, note = np.asarray(COCO_SIGMAS), "coco", None
    else:
        oks_sigmas, source = None, None
        note = (f"no OKS sigmas for the {len(truth.names)} keypoints of category {truth.category!r} (COCO's published "
                f"sigmas are for its 17 keypoints only); pass sigmas (--sigmas) to compute AP/AR")
    stats = (_coco_stats(truth, parsed, oks_sigmas) if oks_sigmas is not None
             else dict.fromkeys(STAT_NAMES))

    k = len(truth.names)
    scored = [a for a, ann in truth.annotations.items()
              if not ann["iscrowd"] and np.any(np.asarray(ann["keypoints"], dtype=np.float64)[2::3] > 0)]
    kps = np.asarray([truth.annotations[a]["keypoints"] for a in scored], dtype=np.float64).reshape(len(scored), k, 3)
    gt_xy, labelled = kps[..., :2], kps[..., 2] > 0
    boxes = np.asarray([truth.annotations[a]["bbox"] for a in scored], dtype=np.float64).reshape(len(scored), 4)
    norm = boxes[:, 2:].max(axis=1)
    assigned = _match(parsed, truth, scored, gt_xy, labelled, oks_sigmas)

    pred = np.full_like(gt_xy, np.nan)
    for g, r in assigned.items():
        pred[g] = parsed.xy[r]
    dist = np.linalg.norm(pred - gt_xy, axis=-1)  # NaN for people without a result: never below the threshold
    counted = labelled & (norm > 0)[:, None]
    with np.errstate(invalid="ignore"):
        correct = counted & (dist / np.where(norm > 0, norm, 1.0)[:, None] < threshold)
    counts = counted.sum(axis=0)
    per_kp = [100.0 * float(correct[:, j].sum()) / int(counts[j]) if counts[j] else None for j in range(k)]
    valid = [v for v in per_kp if v is not None]
    matched_kp = labelled & ~np.isnan(pred[..., 0])
    return CocoScores(
        stats=stats, threshold=float(threshold), pck=float(np.mean(valid)) if valid else None,
        per_keypoint=tuple(zip(truth.names, per_kp, strict=True)), labelled=tuple(int(c) for c in counts),
        epe=float(dist[matched_kp].mean()) if matched_kp.any() else None, matched=len(assigned),
        unmatched_annotations=len(scored) - len(assigned), unmatched_results=len(parsed.rows) - len(assigned),
        annotations=len(scored), results=len(parsed.rows), category=truth.category, sigmas_source=source,
        ap_note=note, filled=dict(truth.filled))


# ---------------------------------------------------------------- writing results


def coco_result_rows(image_ids: Sequence[int], category_id: int, keypoints: np.ndarray, confidences: np.ndarray,
                     annotation_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Rows of a COCO keypoint results file from (N, K, 2) keypoints (in the ground truth's pixel coordinates) and
    (N, K) confidences: each keypoint's third value is its confidence, a person's ``score`` their mean, and
    ``annotation_id`` (when given) ties the row to its ground-truth person so that no matching is needed."""
    xy = np.asarray(keypoints, dtype=np.float64)
    conf = np.asarray(confidences, dtype=np.float64)
    n = len(image_ids)
    if xy.ndim != 3 or xy.shape[0] != n or xy.shape[2] != 2:
        raise ValueError(f"keypoints must be (N={n}, K, 2), got {xy.shape}")
    if conf.shape != xy.shape[:2]:
        raise ValueError(f"confidences must be {xy.shape[:2]} (N, K), got {conf.shape}")
    if not (np.isfinite(xy).all() and np.isfinite(conf).all()):
        raise ValueError("keypoints and confidences must be finite (JSON has no NaN)")
    if annotation_ids is not None and len(annotation_ids) != n:
        raise ValueError(f"annotation_ids must have N={n} entries, got {len(annotation_ids)}")
    rows = []
    for i in range(n):
        triples = np.concatenate([xy[i], conf[i][:, None]], axis=1)
        row: dict[str, Any] = {"image_id": int(image_ids[i]), "category_id": int(category_id),
                               "keypoints": [float(v) for v in triples.ravel()],
                               "score": float(conf[i].mean()) if conf.shape[1] else 0.0}
        if annotation_ids is not None:
            row["annotation_id"] = int(annotation_ids[i])
        rows.append(row)
    return rows


def write_coco_results(path: str | Path, rows: Iterable[dict]) -> None:
    """Write a COCO results list atomically (readers see the old file or the whole new one), one row per line."""
    lines = [json.dumps(row, allow_nan=False) for row in rows]
    with atomic_path(path) as tmp:
        tmp.write_text("[\n" + ",\n".join(lines) + "\n]\n" if lines else "[]\n", encoding="utf-8")


# ---------------------------------------------------------------- command line


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


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def format_coco_table(scores: CocoScores, results_path: str | Path, gt_path: str | Path,
                      sigmas_from: str | None = None) -> str:
    """A human-readable report: OKS AP/AR, PCK with its per-keypoint values, EPE and the matching counts."""
    sigmas = {"given": f"given ({sigmas_from})" if sigmas_from else "given", "coco": "COCO's published 17",
              None: "none"}[scores.sigmas_source]
    lines = [
        f"results: {results_path} ({scores.results} results)",
        f"ground truth: {gt_path} (category {scores.category!r}, {len(scores.per_keypoint)} keypoints, "
        f"{scores.annotations} scored people)",
        f"OKS sigmas: {sigmas}",
    ]
    filled = {k: v for k, v in scores.filled.items() if v}
    if filled:
        lines.append("filled in for pycocotools: " + ", ".join(f"{k} ({v} annotations)" for k, v in filled.items()))
    lines.append("")
    if scores.ap_note:
        lines.append(f"AP/AR: not computed: {scores.ap_note}")
    else:
        lines.append("OKS AP/AR (pycocotools COCOeval 'keypoints', maxDets 20):")
        for group in (STAT_NAMES[:5], STAT_NAMES[5:]):
            lines.append("  " + "  ".join(f"{name:<4} {_num(scores.stats[name], '.3f'):>5}" for name in group))
    lines += [
        "",
        f"{scores.pck_key}: {_num(scores.pck, '.2f')} %  (correct if ||pred - gt|| / max(bbox w, h) < "
        f"{scores.threshold:g}; mean over keypoints)",
        f"{'keypoint':<16} {'labelled':>8} {'PCK %':>7}",
    ]
    lines += [f"{name:<16} {count:>8d} {_num(value, '.2f'):>7}"
              for (name, value), count in zip(scores.per_keypoint, scores.labelled, strict=True)]
    lines += [
        "",
        f"EPE: {_num(scores.epe, '.2f')} px  (mean over labelled keypoints of matched people)",
        f"matched: {scores.matched}, unmatched annotations: {scores.unmatched_annotations}, "
        f"unmatched results: {scores.unmatched_results}",
    ]
    return "\n".join(lines)


def run_cli(results_path: Path, gt_path: Path, *, sigmas: str | None, threshold: float | None, as_json: bool) -> int:
    """The COCO branch of ``python -m hourglass.evaluation``: 0 ok, 1 bad input (one ``error:`` line), 2 a bad
    ``--sigmas`` list."""
    try:
        given, sigmas_from = parse_sigmas(sigmas) if sigmas is not None else (None, None)
    except ReaderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        for path, role, what in ((results_path, "results", "a COCO keypoint results list"),
                                 (gt_path, "ground truth", "a COCO keypoints file")):
            if not path.is_file():
                raise ReaderError(f"{path}: {role} file not found")
            if not is_json_file(path):
                raise ReaderError(f"{path}: not JSON; scoring COCO results needs {what} as the {role}")
        scores = score_coco_results(results_path, gt_path, sigmas=given,
                                    threshold=DEFAULT_THRESHOLD if threshold is None else threshold)
    except ReaderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(scores.as_dict()))
    else:
        print(format_coco_table(scores, results_path, gt_path, sigmas_from))
    return 0
