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

from hourglass.dataset_card import CardError
from hourglass.evaluation import coco_eval
from hourglass.family import DatasetFamily, family_named
from hourglass.io.eval_files import GroundTruth, ReaderError, read_ground_truth, read_predictions
from hourglass.metrics import THRESHOLD_OPERATOR, PCKResult


def ground_truth_family(gt: GroundTruth, dataset: str | DatasetFamily | None = None) -> DatasetFamily:
    """The card that scores ``gt``: the family given, or the card named, else the one its joint count suggests
    (16: mpii, 11: flic)."""
    name = dataset.name if isinstance(dataset, DatasetFamily) else (dataset or gt.dataset)
    if name is None:
        raise ReaderError(f"{gt.source}: {gt.joints.shape[1]} joints per person match no built-in card; name the "
                          "dataset's card with --dataset NAME (datasets/NAME.yaml)")
    family = dataset if isinstance(dataset, DatasetFamily) else family_named(name)
    if family.joints.count != gt.joints.shape[1]:
        raise ReaderError(f"{gt.source}: {gt.joints.shape[1]} joints per person, but card {name!r} has "
                          f"{family.joints.count} keypoints")
    return family


def score(preds: np.ndarray, gt: GroundTruth, threshold: float | None = None,
          pred_source: str | Path = "predictions", dataset: str | DatasetFamily | None = None) -> PCKResult:
    """Score 0-based predictions against ``gt`` with the card's metric (threshold defaults to the card's)."""
    expected = gt.joints.shape
    if preds.shape != expected:
        raise ReaderError(f"{pred_source}: 'preds' has shape {preds.shape} but the ground truth {gt.source} has "
                          f"{expected} (rows, joints, xy); they must describe the same people in the same order")
    return ground_truth_family(gt, dataset).score(preds, gt.joints, gt.annotated, gt.normalize, threshold)


def evaluate_files(pred_path: str | Path, gt_path: str | Path, threshold: float | None = None,
                   dataset: str | DatasetFamily | None = None) -> PCKResult:
    """Read both files and score them (see :func:`score`)."""
    gt = read_ground_truth(gt_path)
    preds = read_predictions(pred_path, joints=gt.joints.shape[1], people=len(gt))
    return score(preds, gt, threshold, pred_path, dataset)


def _pct(value: float | None) -> str:
    return "   n/a" if value is None or math.isnan(value) else f"{value:6.2f}"


NORMALISERS = {"head": "0.6 x head-box diagonal", "torso": "torso size ||rsho - lhip||",
               "box": "the person box's longer side"}


def format_table(result: PCKResult, pred_path: str | Path, gt_path: str | Path, family: DatasetFamily) -> str:
    """A human-readable report: per joint, per group, both means and (where the card asks) the Mean at 0.1."""
    metric = family.card.measure.metric
    norm = NORMALISERS[family.card.measure.normalize]
    lines = [
        f"predictions: {pred_path}",
        f"ground truth: {gt_path} ({family.name}, {int(result.counts.sum())} annotated joints)",
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
    if result.mean_at_0_1 is not None:
        lines += [
            f"{metric + '@0.1 (weighted mean)':<40} {_pct(result.mean_at_0_1)} %",
        ]
    groups = sorted(family.figure4_words)
    lines.append(f"{'ablation joints (' + ', '.join(groups) + ')':<40} "
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
                        help="normalised-distance threshold (default: the card's, 0.5 for MPII PCKh, 0.2 for "
                             "FLIC PCK and for COCO results' PCK)")
    parser.add_argument("--dataset", default=None, metavar="CARD",
                        help="the dataset card that scores the file (datasets/CARD.yaml); default: by the joint "
                             "count, 16 = mpii, 11 = flic. For COCO results: the card's OKS sigmas")
    parser.add_argument("--sigmas", default=None, metavar="S1,S2,...|FILE.yaml",
                        help="COCO results only: per-keypoint OKS sigmas, as a comma list or a YAML file with a list "
                             "under key 'sigmas' (default: the --dataset card's, else COCO's published sigmas when "
                             "the category has COCO's 17 keypoints; otherwise AP/AR are not computed)")
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
        sigmas = args.sigmas
        if sigmas is None and args.dataset is not None:
            try:
                card_sigmas = family_named(args.dataset).card.measure.sigmas
            except CardError as err:
                print(f"error: {err}", file=sys.stderr)
                return 1
            sigmas = None if card_sigmas is None else ",".join(repr(v) for v in card_sigmas)
        return coco_eval.run_cli(args.predictions, args.gt, sigmas=sigmas, threshold=args.threshold,
                                 as_json=args.json)
    if args.sigmas is not None:
        print("error: --sigmas applies to COCO keypoint results (JSON) only", file=sys.stderr)
        return 2
    try:
        gt = read_ground_truth(args.gt)
        family = ground_truth_family(gt, args.dataset)
        preds = read_predictions(args.predictions, joints=gt.joints.shape[1], people=len(gt))
        result = score(preds, gt, args.threshold, args.predictions, family.name)
    except (ReaderError, CardError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({k: _json_value(v) for k, v in result.as_dict().items()}))
    else:
        print(format_table(result, args.predictions, args.gt, family))
    return 0

