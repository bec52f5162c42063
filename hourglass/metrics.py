"""The official evaluation metrics: MPII PCKh (validation protocol) and FLIC PCK with torso normalisation.

A joint counts as correct when ``||pred - gt|| / normalize <= threshold`` (``THRESHOLD_OPERATOR``, see below).
MPII's ``normalize`` is the head size, ``0.6 x`` the head-box diagonal (``SC_BIAS = 0.6`` in the official
``util_get_head_size.m``); FLIC's is the torso size ``||rsho - lhip||`` stored in the annotation files. Only
annotated joints are scored; a NaN prediction counts as wrong (the official toolkit replaces NaN predictions by inf).

MPII conventions reproduced here (reference section 4.1), all verified by the golden test on the authors' predictions:

* per-joint PCKh over the 16 joints; pelvis (6) and thorax (7) are excluded from every mean, upper neck (8) and
  head top (9) are included;
* groups: ``Head`` = head top only; Shoulder, Elbow, Wrist, Hip, Knee, Ankle = mean of the left and right values;
* two means over the 14 joints, because the peers disagree: ``mean`` weighted by joint counts (= correct / annotated
  pooled over joints; the official toolkit, HRNet, mmpose) and ``mean_unweighted`` (plain mean of the 14 per-joint
  values; Tompson's and bearpaw's MATLAB/Python scripts);
* the PCKh curve over thresholds 0, 0.01, ..., 0.50 and ``Mean@0.1`` taken at exactly 0.10.

Percentages throughout. Coordinates may be in any frame as long as pred, gt and normalize share it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from hourglass.joints import FLIC, MPII, JointSet

# The threshold operator: a joint is correct when its normalised error is <= the threshold. This is what the official
# MPII toolkit does (evalMPII ``computePCK``: ``mean(d <= range(k))``), as do HRNet and pose-hg-train's FLIC
# ``eval.py``; bearpaw's/Tompson's scripts and mmpose use ``<``. The difference only matters for errors lying exactly
# on a threshold: on the authors' validation predictions no error does, so both give identical numbers (tested).
THRESHOLD_OPERATOR = "<="

MPII_THRESHOLD = 0.5
FLIC_THRESHOLD = 0.2

# 0, 0.01, ..., 0.50 computed as i/100 so that every entry is the correctly rounded decimal (0.1 is exactly 0.1).
MPII_CURVE_THRESHOLDS = np.arange(51) / 100.0
FLIC_CURVE_THRESHOLDS = np.arange(21) / 100.0
MPII_CURVE_THRESHOLDS.setflags(write=False)  # shared constants: read-only
FLIC_CURVE_THRESHOLDS.setflags(write=False)
# Mean@0.1 is read at index 10 = threshold 0.10. HRNet's ``lib/dataset/mpii.py`` reads ``pckAll[11]`` of
# ``np.arange(0, 0.51, 0.01)``, which is threshold 0.11 and inflates the number (32.81 instead of 28.65 on the
# authors' predictions); mmpose reads index 10. We follow the name, not HRNet's index.
MEAN_AT_0_1_INDEX = 10

# MPII joints that enter the means: all but pelvis (6) and thorax (7).
MPII_MEAN_JOINTS = tuple(j for j in range(MPII.count) if j not in (MPII.index("pelvis"), MPII.index("thorax")))

# Read-only views: group name -> joints averaged into it.
MPII_GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "Head": ("head_top",),
    "Shoulder": ("l_shoulder", "r_shoulder"),
    "Elbow": ("l_elbow", "r_elbow"),
    "Wrist": ("l_wrist", "r_wrist"),
    "Hip": ("l_hip", "r_hip"),
    "Knee": ("l_knee", "r_knee"),
    "Ankle": ("l_ankle", "r_ankle"),
})

FLIC_GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "Shoulder": ("l_shoulder", "r_shoulder"),
    "Elbow": ("l_elbow", "r_elbow"),
    "Wrist": ("l_wrist", "r_wrist"),
    "Hip": ("l_hip", "r_hip"),
    "Eye": ("l_eye", "r_eye"),
    "Nose": ("nose",),
})


def within(errors: np.ndarray, threshold: float) -> np.ndarray:
    """``errors <= threshold`` (see THRESHOLD_OPERATOR); NaN errors (unannotated joints) give False."""
    return np.less_equal(errors, threshold)


def _nanmean(values: np.ndarray) -> float:
    """Mean ignoring NaN; NaN (without a warning) when nothing is left."""
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


@dataclass(frozen=True)
class PCKResult:
    """Scores of one prediction set. Every number is a percentage; NaN where no joint was annotated.

    ``mean`` is the joint-count weighted mean over ``mean_joints`` and ``mean_unweighted`` the plain mean of their
    per-joint values; ``curve`` is the weighted mean at each of ``curve_thresholds``.
    """

    dataset: str
    threshold: float
    joint_names: tuple[str, ...]
    per_joint: np.ndarray  # (J,) percent
    counts: np.ndarray  # (J,) annotated joints scored
    groups: dict[str, float]
    mean: float
    mean_unweighted: float
    mean_joints: tuple[int, ...]
    curve_thresholds: np.ndarray
    curve: np.ndarray
    mean_at_0_1: float | None = None  # MPII only
    operator: str = field(default=THRESHOLD_OPERATOR)

    def as_dict(self) -> dict[str, float]:
        """The headline numbers under their conventional names.

        MPII: Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean, Mean_unweighted, Mean@0.1. FLIC: its groups
        and Mean.
        """
        out = {name: float(value) for name, value in self.groups.items()}
        out["Mean"] = float(self.mean)
        if self.mean_at_0_1 is not None:
            out["Mean_unweighted"] = float(self.mean_unweighted)
            out["Mean@0.1"] = float(self.mean_at_0_1)
        return out


def normalized_errors(pred: np.ndarray, gt: np.ndarray, annotated: np.ndarray, normalize: np.ndarray) -> np.ndarray:
    """``||pred - gt|| / normalize`` per joint, shape (N, J): NaN where not annotated, ``inf`` where pred is NaN.

    Raises ValueError on inconsistent shapes, on annotated joints without finite ground truth, and on rows with
    annotated joints whose ``normalize`` is not a positive finite number (the error would be meaningless).
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    annotated = np.asarray(annotated, dtype=bool)
    normalize = np.asarray(normalize, dtype=np.float64)
    if gt.ndim != 3 or gt.shape[2] != 2:
        raise ValueError(f"ground truth must be (N, J, 2), got {gt.shape}")
    if pred.shape != gt.shape:
        raise ValueError(f"predictions {pred.shape} and ground truth {gt.shape} differ in shape")
    if annotated.shape != gt.shape[:2]:
        raise ValueError(f"annotated mask must be {gt.shape[:2]}, got {annotated.shape}")
    if normalize.shape != gt.shape[:1]:
        raise ValueError(f"normalize must be ({gt.shape[0]},), got {normalize.shape}")
    bad_gt = annotated & ~np.isfinite(gt).all(axis=2)
    if bad_gt.any():
        row, joint = np.argwhere(bad_gt)[0]
        raise ValueError(f"{int(bad_gt.sum())} annotated joint(s) have non-finite ground truth "
                         f"(first: row {row}, joint {joint})")
    used = annotated.any(axis=1)
    bad_norm = used & ~(np.isfinite(normalize) & (normalize > 0))
    if bad_norm.any():
        row = int(np.flatnonzero(bad_norm)[0])
        raise ValueError(f"{int(bad_norm.sum())} row(s) with annotated joints have a non-positive or non-finite "
                         f"normalize (first: row {row}, value {normalize[row]!r})")
    dist = np.linalg.norm(pred - gt, axis=2)
    dist = np.where(np.isnan(dist), np.inf, dist)
    safe_norm = np.where(used, normalize, 1.0)
    return np.where(annotated, dist / safe_norm[:, None], np.nan)


def _per_joint(errors: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(percent correct per joint, correct counts, annotated counts)."""
    annotated = ~np.isnan(errors)
    counts = annotated.sum(axis=0)
    correct = within(errors, threshold).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        percent = np.where(counts > 0, 100.0 * correct / np.maximum(counts, 1), np.nan)
    return percent, correct, counts


def _weighted_mean(errors: np.ndarray, threshold: float, joints: tuple[int, ...]) -> float:
    """Correct over annotated, pooled over ``joints`` (the joint-count weighted mean)."""
    sub = errors[:, list(joints)]
    total = int((~np.isnan(sub)).sum())
    return 100.0 * int(within(sub, threshold).sum()) / total if total else float("nan")


def pck_from_errors(errors: np.ndarray, joint_set: JointSet, groups: Mapping[str, tuple[str, ...]],
                    mean_joints: tuple[int, ...], threshold: float, curve_thresholds: np.ndarray,
                    mean_at_0_1: bool) -> PCKResult:
    """Assemble a :class:`PCKResult` from normalised errors (see :func:`normalized_errors`)."""
    if errors.ndim != 2 or errors.shape[1] != joint_set.count:
        raise ValueError(f"{joint_set.name}: expected (N, {joint_set.count}) errors, got {errors.shape}")
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a non-negative number, got {threshold!r}")
    per_joint, _, counts = _per_joint(errors, threshold)
    group_values = {
        name: _nanmean(per_joint[[joint_set.index(j) for j in members]]) for name, members in groups.items()
    }
    curve = np.array([_weighted_mean(errors, t, mean_joints) for t in curve_thresholds])
    return PCKResult(
        dataset=joint_set.name,
        threshold=float(threshold),
        joint_names=joint_set.names,
        per_joint=per_joint,
        counts=counts,
        groups=group_values,
        mean=_weighted_mean(errors, threshold, mean_joints),
        mean_unweighted=_nanmean(per_joint[list(mean_joints)]),
        mean_joints=mean_joints,
        curve_thresholds=np.asarray(curve_thresholds, dtype=np.float64),
        curve=curve,
        mean_at_0_1=float(curve[MEAN_AT_0_1_INDEX]) if mean_at_0_1 else None,
    )


def mpii_pckh(pred: np.ndarray, gt: np.ndarray, annotated: np.ndarray, head_size: np.ndarray,
              threshold: float = MPII_THRESHOLD) -> PCKResult:
    """MPII PCKh@``threshold`` of (N, 16, 2) predictions; ``head_size`` = 0.6 x head-box diagonal per row."""
    errors = normalized_errors(pred, gt, annotated, head_size)
    if errors.shape[1] != MPII.count:
        raise ValueError(f"MPII PCKh needs {MPII.count} joints, got {errors.shape[1]}")
    return pck_from_errors(errors, MPII, MPII_GROUPS, MPII_MEAN_JOINTS, threshold, MPII_CURVE_THRESHOLDS,
                           mean_at_0_1=True)


def flic_pck(pred: np.ndarray, gt: np.ndarray, annotated: np.ndarray, torso_size: np.ndarray,
             threshold: float = FLIC_THRESHOLD) -> PCKResult:
    """FLIC PCK@``threshold`` of (N, 11, 2) predictions, normalised by the torso size ``||rsho - lhip||``.

    The mean pools all 11 joints; the paper reports the Elbow and Wrist groups (observer-centric labels).
    """
    errors = normalized_errors(pred, gt, annotated, torso_size)
    if errors.shape[1] != FLIC.count:
        raise ValueError(f"FLIC PCK needs {FLIC.count} joints, got {errors.shape[1]}")
    return pck_from_errors(errors, FLIC, FLIC_GROUPS, tuple(range(FLIC.count)), threshold, FLIC_CURVE_THRESHOLDS,
                           mean_at_0_1=False)


def subset_accuracy(result: PCKResult, joint_set: JointSet, joints: Sequence[str]) -> float:
    """Unweighted mean of ``result``'s per-joint accuracy over the named ``joints`` of ``joint_set`` (the ablation
    figure's number: the paper's MPII ablations average wrists, elbows, knees and ankles)."""
    if tuple(result.joint_names) != tuple(joint_set.names):
        raise ValueError(f"a {result.dataset!r} result has other joints than {joint_set.name!r}: "
                         f"{list(result.joint_names)} against {list(joint_set.names)}")
    return _nanmean(result.per_joint[[joint_set.index(j) for j in joints]])
