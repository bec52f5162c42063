"""Score a prediction file against ground truth: ``python -m hourglass.evaluation PRED.h5 --gt GT_FILE``.

MPII ground truth (annotation h5 or Tompson's ``detections_our_format.mat``) gives PCKh@0.5 by default, FLIC ground
truth gives PCK@0.2; the dataset is recognised from the ground truth's joint count. The default output is a table for
people; ``--json`` prints one JSON object with the headline numbers (percentages) for scripts and pipelines.

When the files are JSON (``RESULTS.json --gt ANNOTATIONS.json``: COCO keypoint results against a COCO keypoints file)
the work goes to :mod:`hourglass.evaluation.coco_eval` (OKS AP/AR through pycocotools, PCK@bbox, EPE).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from hourglass.family import DatasetFamily, family_named
from hourglass.io.eval_files import GroundTruth, ReaderError, read_ground_truth, read_predictions
from hourglass.metrics import PCKResult


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
