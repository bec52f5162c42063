"""``hourglass score PRED --gt GT`` (also ``python -m hourglass.evaluation``): score a prediction file with the
dataset's official protocol (:mod:`hourglass.evaluation.score`) or COCO keypoint results
(:mod:`hourglass.evaluation.coco_eval`)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from hourglass.dataset_card import CardError
from hourglass.evaluation import coco_eval
from hourglass.evaluation.score import format_table, ground_truth_family, score
from hourglass.family import family_named
from hourglass.io.eval_files import ReaderError, read_ground_truth, read_predictions
from hourglass.metrics import THRESHOLD_OPERATOR


def _json_value(value: float) -> float | None:
    """NaN (no annotated joint in a group) is not valid JSON; report it as null."""
    return None if math.isnan(value) else value


SCORE_DESCRIPTION = ("Score pose predictions with the official MPII PCKh or FLIC PCK protocol (a joint is correct "
                     f"when its normalised error is {THRESHOLD_OPERATOR} the threshold), or COCO keypoint results "
                     "(JSON) against a COCO keypoints file with OKS AP/AR (pycocotools), PCK@0.2 normalised by the "
                     "box's longer side (mmpose's PCKAccuracy, '<') and EPE.")


def add_score_arguments(parser: argparse.ArgumentParser) -> None:
    """``hourglass score``'s (and ``python -m hourglass.evaluation``'s) arguments."""
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


def run_score(args: argparse.Namespace) -> int:
    """Run the evaluator; returns the process exit code (0 ok, 2 bad input; COCO results: 1 bad input, see
    :func:`hourglass.evaluation.coco_eval.run_cli`)."""
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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hourglass.evaluation``: the same command as ``hourglass score``."""
    parser = argparse.ArgumentParser(prog="python -m hourglass.evaluation", description=SCORE_DESCRIPTION)
    add_score_arguments(parser)
    return run_score(parser.parse_args(argv))
