"""Score a prediction file against ground truth: ``python -m hourglass.evaluation PRED.h5 --gt GT_FILE``.

MPII ground truth (annotation h5 or Tompson's ``detections_our_format.mat``) gives PCKh@0.5 by default, FLIC ground
truth gives PCK@0.2; the dataset is recognised from the ground truth's joint count. The default output is a table for
people; ``--json`` prints one JSON object with the headline numbers (percentages) for scripts and pipelines.

When the files are JSON (``RESULTS.json --gt ANNOTATIONS.json``: COCO keypoint results against a COCO keypoints file)
the work goes to :mod:`hourglass.evaluation.coco_eval` (OKS AP/AR through pycocotools, PCK@bbox, EPE).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hourglass.evaluation import coco_eval
from hourglass.family import FAMILIES
from hourglass.io.eval_files import GroundTruth, ReaderError, read_ground_truth, read_predictions
from hourglass.metrics import THRESHOLD_OPERATOR, PCKResult


def score(preds: np.ndarray, gt: GroundTruth, threshold: float | None = None,
          pred_source: str | Path = "predictions") -> PCKResult:
    """Score 0-based predictions against ``gt`` with the dataset's metric (threshold defaults to 0.5 / 0.2)."""
    expected = gt.joints.shape
    if preds.shape != expected:
        raise ReaderError(f"{pred_source}: 'preds' has shape {preds.shape} but the ground truth {gt.source} has "
                          f"{expected} (rows, joints, xy); they must describe the same people in the same order")
    return FAMILIES[gt.dataset].score(preds, gt.joints, gt.annotated, gt.normalize, threshold)


def evaluate_files(pred_path: str | Path, gt_path: str | Path, threshold: float | None = None) -> PCKResult:
    """Read both files and score them (see :func:`score`)."""
    gt = read_ground_truth(gt_path)
    preds = read_predictions(pred_path, joints=gt.joints.shape[1], people=len(gt))
    return score(preds, gt, threshold, pred_path)


def _pct(value: float | None) -> str:
    return "   n/a" if value is None or math.isnan(value) else f"{value:6.2f}"


def format_table(result: PCKResult, pred_path: str | Path, gt_path: str | Path) -> str:
    """A human-readable report: per joint, per group, both means and (MPII) PCKh@0.1."""
    metric = "PCKh" if result.dataset == "mpii" else "PCK"
    norm = "0.6 x head-box diagonal" if result.dataset == "mpii" else "torso size ||rsho - lhip||"
    lines = [
        f"predictions: {pred_path}",
        f"ground truth: {gt_path} ({result.dataset.upper()}, {int(result.counts.sum())} annotated joints)",
        f"{metric}@{result.threshold:g}: correct if ||pred - gt|| / ({norm}) {result.operator} {result.threshold:g}",
        "",
        f"{'joint':<12} {'annotated':>9} {metric + ' %':>8}",
    ]
    for j, name in enumerate(result.joint_names):
        note = "" if j in result.mean_joints else "  (excluded from means)"
        lines.append(f"{name:<12} {int(result.counts[j]):>9d} {_pct(result.per_joint[j]):>8}{note}")
    lines += ["", f"{'group':<12} {metric + ' %':>18}"]
    lines += [f"{name:<12} {_pct(value):>18}" for name, value in result.groups.items()]
    lines += [
        "",
        f"{'Mean (joint-count weighted)':<40} {_pct(result.mean)} %",
        f"{'Mean (unweighted over joints)':<40} {_pct(result.mean_unweighted)} %",
    ]
    if result.dataset == "mpii":
        lines += [
            f"{'PCKh@0.1 (weighted mean)':<40} {_pct(result.mean_at_0_1)} %",
        ]
    family = FAMILIES[result.dataset]
    lines.append(f"{'ablation joints (' + ', '.join(sorted({j[2:] for j in family.figure4_joints})) + ')':<40} "
                 f"{_pct(family.figure4(result))} %")
    return "\n".join(lines)


def _json_value(value: float) -> float | None:
    """NaN (no annotated joint in a group) is not valid JSON; report it as null."""
    return None if math.isnan(value) else value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hourglass.evaluation",
        description="Score pose predictions with the official MPII PCKh or FLIC PCK protocol "
                    f"(a joint is correct when its normalised error is {THRESHOLD_OPERATOR} the threshold), or COCO "
                    "keypoint results (JSON) against a COCO keypoints file with OKS AP/AR (pycocotools), PCK@0.2 "
                    "normalised by the box's longer side (mmpose's PCKAccuracy, '<') and EPE.",
    )
    parser.add_argument("predictions", type=Path, metavar="PRED.h5|RESULTS.json",
                        help="prediction file with variable 'preds' in 1-based image coordinates: an h5 holding "
                             "(N, joints, 2) (the authors' pose-hg-demo layout), or a MATLAB v5 / v7.3 .mat holding "
                             "[n x J x 2] (pytorch-pose) or Tompson's [2 x J x n] (x/y, joint, person); the layout "
                             "is chosen by shape; or a COCO keypoint results list (JSON, recognised by content): "
                             "[{image_id, category_id, keypoints: [x, y, s] * K, score, optional annotation_id}]")
    parser.add_argument("--gt", required=True, type=Path, metavar="GT_FILE",
                        help="ground truth: an annotation h5 (16 joints = MPII, 11 = FLIC) or Tompson's "
                             "detections_our_format.mat, rows matching the predictions; for COCO results, a COCO "
                             "keypoints JSON file")
    parser.add_argument("--threshold", type=float, default=None, metavar="T",
                        help=f"normalised-distance threshold (default {FAMILIES['mpii'].threshold} for MPII PCKh, "
                             f"{FAMILIES['flic'].threshold} for FLIC PCK and COCO results' PCK)")
    parser.add_argument("--sigmas", default=None, metavar="S1,S2,...|FILE.yaml",
                        help="COCO results only: per-keypoint OKS sigmas, as a comma list or a YAML file with a list "
                             "under key 'sigmas' (default: COCO's published sigmas when the category has COCO's 17 "
                             "keypoints; otherwise AP/AR are not computed)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object of the headline percentages instead of the table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluator; returns the process exit code (0 ok, 2 bad input; COCO results: 1 bad input, see
    :func:`hourglass.evaluation.coco_eval.run_cli`)."""
    args = build_parser().parse_args(argv)
    if args.threshold is not None and not (math.isfinite(args.threshold) and args.threshold >= 0):
        print(f"error: --threshold must be a non-negative number, got {args.threshold}", file=sys.stderr)
        return 2
    if coco_eval.is_json_file(args.predictions) or coco_eval.is_json_file(args.gt):
        return coco_eval.run_cli(args.predictions, args.gt, sigmas=args.sigmas, threshold=args.threshold,
                                 as_json=args.json)
    if args.sigmas is not None:
        print("error: --sigmas applies to COCO keypoint results (JSON) only", file=sys.stderr)
        return 2
    try:
        result = evaluate_files(args.predictions, args.gt, args.threshold)
    except (ReaderError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({k: _json_value(v) for k, v in result.as_dict().items()}))
    else:
        print(format_table(result, args.predictions, args.gt))
    return 0

