"""The mean-pose predictor: the floor every trained variant must clear for its numbers to mean anything.

The average training pose, expressed in each person's crop frame (offset from ``center`` in units of the crop side
``200 * scale``), is placed into every validation crop and scored with the same metric as the networks. A model that
has learned nothing about the image still gets this score from the person box alone, so a report shows it beside
every variant.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from hourglass.evaluation.score import score
from hourglass.family import DatasetFamily
from hourglass.io.annotations import Annotations, read_annotations
from hourglass.io.eval_files import read_ground_truth
from hourglass.metrics import PCKResult

CROP_PX_PER_SCALE = 200.0  # the crop side is 200 * scale px (person height / 200 convention)


def mean_pose(train: Annotations) -> np.ndarray:
    """The average annotated pose (J, 2) in crop units: ``(joint - center) / (200 * scale)``.

    Joints never annotated in ``train`` stay NaN, so their predictions count as wrong rather than being invented.
    """
    if len(train) == 0:
        raise ValueError("mean_pose: the training table is empty")
    if not (np.isfinite(train.scale) & (train.scale > 0)).all():
        bad = int(np.flatnonzero(~(np.isfinite(train.scale) & (train.scale > 0)))[0])
        raise ValueError(f"mean_pose: training row {bad} has scale {train.scale[bad]!r}; scales must be positive")
    offsets = (train.joints - train.center[:, None, :]) / (CROP_PX_PER_SCALE * train.scale[:, None, None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN joint: nanmean gives NaN, which is what we want
        return np.nanmean(offsets, axis=0)


def place_pose(pose: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``pose`` (J, 2) in crop units placed into each crop: (N, J, 2) image coordinates, 0-based."""
    pose = np.asarray(pose, dtype=np.float64)
    return center[:, None, :] + pose[None] * (CROP_PX_PER_SCALE * np.asarray(scale, dtype=np.float64)[:, None, None])


def mean_pose_predictions(train: Annotations, valid: Annotations) -> np.ndarray:
    """The mean-pose predictions (N, J, 2) for every row of ``valid``."""
    if train.num_joints != valid.num_joints:
        raise ValueError(f"mean_pose: training rows have {train.num_joints} joints, validation rows "
                         f"{valid.num_joints}; they must come from the same dataset")
    return place_pose(mean_pose(train), valid.center, valid.scale)


def score_mean_pose(train_path: str | Path, valid_path: str | Path,
                    dataset: str | DatasetFamily | None = None) -> PCKResult:
    """Score the mean pose of ``train_path`` on ``valid_path`` (annotation h5 files) with the card ``dataset``'s
    metric (default: the card the joint count suggests)."""
    train = read_annotations(train_path)
    valid = read_annotations(valid_path)
    preds = mean_pose_predictions(train, valid)
    return score(preds, read_ground_truth(valid_path), pred_source=f"mean pose of {train_path}",
                 dataset=dataset)
