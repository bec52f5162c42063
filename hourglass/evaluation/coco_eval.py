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

from hourglass.evaluation.coco_inputs import (
    COCO_KEYPOINT_NAMES,
    COCO_SIGMAS,
    CocoResults,
    CocoTruth,
    check_sigmas,
    is_json_file,
    parse_sigmas,
    read_json,
    read_results,
    read_truth,
)
from hourglass.io.atomic import atomic_path
from hourglass.io.eval_files import ReaderError

# pycocotools' ``stats`` for iouType 'keypoints', in its order.
STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
DEFAULT_THRESHOLD = 0.2
# Matching without sigmas: exp(-d^2 / (2 * area * KAPPA^2)), one constant for every keypoint (OKS with 2 sigma = 0.1).
BOX_KAPPA = 0.1

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


def _coco_stats(truth: CocoTruth, results: CocoResults, sigmas: np.ndarray) -> dict[str, float | None]:
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


def _match(results: CocoResults, truth: CocoTruth, scored: list[int | str], gt_xy: np.ndarray, labelled: np.ndarray,
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
    truth = read_truth(Path(gt))
    if isinstance(results, str | Path):
        parsed = read_results(read_json(Path(results), "results"), str(results), truth)
    else:
        parsed = read_results(results, "results", truth)
    if sigmas is not None:
        oks_sigmas, source, note = check_sigmas(sigmas, truth), "given", None
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
