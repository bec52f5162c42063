"""Ground-truth and prediction files for evaluation: the one place where their 1-based coordinates become 0-based.

Ground truth comes either as an annotation h5 in pose-hg-train's layout (MPII ``valid.h5``, FLIC ``valid.h5``, any
card's ``data/raw/<name>/annot/valid.h5`` with its own keypoint count) or as
Tompson's ``detections_our_format.mat`` (float MPII ground truth and head boxes; the file behind every published
validation PCKh). Predictions are one variable ``preds`` in MATLAB 1-based original-image coordinates, in any of
these files:

* plain HDF5 (C order as h5py shows it): the authors' layout (pose-hg-demo ``preds/valid-ours.h5``) (N, J, 2), or
  Tompson's (2, J, N) (x/y, joint, person);
* MATLAB v5 .mat (``scipy.io.savemat``, e.g. bearpaw/pytorch-pose) or v7.3 .mat (HDF5 behind a MATLAB userblock,
  read back in MATLAB's dimension order), holding either ``[n x J x 2]`` or Tompson's ``[2 x J x n]``.

J is the caller's keypoint count, else 16 (MPII) or 11 (FLIC); the layout is chosen by shape, and a shape that fits
both layouts or neither fails. Files written by :func:`write_predictions` name their layout in the ``preds``
attribute ``layout``, so a two-person file (2, J, 2), or one of any keypoint count, reads back without ambiguity.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import scipy.io

from hourglass.io.annotations import AnnotationError, read_annotations
from hourglass.io.atomic import atomic_path
from hourglass.joints import FLIC, MPII

# MPII head size = SC_BIAS x head-box diagonal (official util_get_head_size.m: 0.6 = 0.8 * 0.75).
SC_BIAS = 0.6

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_MAT5_SIGNATURE = b"MATLAB 5.0 MAT-file"
_MAT73_SIGNATURE = b"MATLAB 7.3 MAT-file"
_TOMPSON_KEYS = ("jnt_missing", "pos_gt_src", "headboxes_src")
_DATASET_BY_JOINTS = {MPII.count: MPII.name, FLIC.count: FLIC.name}


class ReaderError(ValueError):
    """A ground-truth or prediction file is missing or malformed; the message names the file and the problem."""


@dataclass(frozen=True)
class GroundTruth:
    """Scoring ground truth: 0-based joints (NaN where not annotated), mask, per-row normaliser, dataset name."""

    joints: np.ndarray  # (N, J, 2) float64, 0-based
    annotated: np.ndarray  # (N, J) bool
    normalize: np.ndarray  # (N,) the card's normaliser per row, pixels: MPII head size, FLIC torso size, box side
    # The card the file's joint count suggests when the caller names none: 16 -> 'mpii', 11 -> 'flic', else None.
    dataset: str | None
    source: Path

    def __len__(self) -> int:
        return len(self.joints)


def _signature(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(len(_MAT5_SIGNATURE))


def _from_annotation_h5(path: Path) -> GroundTruth:
    try:
        table = read_annotations(path)
    except AnnotationError as err:
        raise ReaderError(str(err)) from None
    return GroundTruth(joints=table.joints, annotated=table.annotated, normalize=table.normalize,
                       dataset=_DATASET_BY_JOINTS.get(table.num_joints), source=path)


def _from_tompson_mat(path: Path) -> GroundTruth:
    try:
        mat = scipy.io.loadmat(path, variable_names=list(_TOMPSON_KEYS))
    except (ValueError, OSError, NotImplementedError) as err:
        raise ReaderError(f"{path}: not a readable MATLAB v5 file ({err})") from None
    missing = [k for k in _TOMPSON_KEYS if k not in mat]
    if missing:
        raise ReaderError(f"{path}: missing variable(s) {missing} (expected Tompson's detections_our_format.mat "
                          f"layout with {list(_TOMPSON_KEYS)})")
    jnt_missing, pos, boxes = (np.asarray(mat[k]) for k in _TOMPSON_KEYS)
    if pos.ndim != 3 or pos.shape[:2] != (MPII.count, 2):
        raise ReaderError(f"{path}: 'pos_gt_src' must be ({MPII.count}, 2, N), got {pos.shape}")
    n = pos.shape[2]
    if jnt_missing.shape != (MPII.count, n):
        raise ReaderError(f"{path}: 'jnt_missing' must be ({MPII.count}, {n}), got {jnt_missing.shape}")
    if boxes.shape != (2, 2, n):
        raise ReaderError(f"{path}: 'headboxes_src' must be (2, 2, {n}), got {boxes.shape}")
    annotated = (jnt_missing == 0).T
    joints = np.where(annotated[..., None], pos.transpose(2, 0, 1).astype(np.float64) - 1.0, np.nan)
    boxes = boxes.transpose(2, 0, 1).astype(np.float64)  # (N, corner, xy): top-left, bottom-right
    head_size = SC_BIAS * np.linalg.norm(boxes[:, 1] - boxes[:, 0], axis=1)
    return GroundTruth(joints=joints, annotated=annotated, normalize=head_size, dataset=MPII.name, source=path)


def read_ground_truth(path: str | Path) -> GroundTruth:
    """Read an annotation h5 (16 joints -> MPII, 11 -> FLIC) or Tompson's ``detections_our_format.mat``.

    The format is recognised from the file's first bytes (HDF5 or MATLAB v5 header), so a misnamed file still works
    and an unknown one fails with its name.
    """
    path = Path(path)
    if not path.is_file():
        raise ReaderError(f"{path}: ground-truth file not found")
    head = _signature(path)
    if head.startswith(_MAT73_SIGNATURE):
        raise ReaderError(f"{path}: MATLAB v7.3 .mat files are not supported; re-save it with save(..., '-v7')")
    if head.startswith(_MAT5_SIGNATURE):
        return _from_tompson_mat(path)
    if head.startswith(_HDF5_SIGNATURE) or h5py.is_hdf5(path):
        return _from_annotation_h5(path)
    raise ReaderError(f"{path}: unknown ground-truth format (neither an HDF5 annotation file nor a MATLAB v5 .mat)")


AUTHORS_LAYOUT, TOMPSON_LAYOUT = "[n x J x 2]", "[2 x J x n]"
_LAYOUTS = (AUTHORS_LAYOUT, TOMPSON_LAYOUT)
LAYOUT_ATTR = "layout"  # write_predictions names its layout here: a (2, J, 2) file is then unambiguous
_PRED_LAYOUTS = ("[n x J x 2] = (N, joints, 2) (the authors' h5, pytorch-pose's .mat) or [2 x J x n] = (2, joints, N) "
                 f"(Tompson's), J = {MPII.count} (MPII) or {FLIC.count} (FLIC)")
_MAT_META_KEYS = ("#refs#", "#subsystem#")


def _as_float(path: Path, value: object) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ReaderError(f"{path}: variable 'preds' is not a numeric array ({type(value).__name__})") from None


def _preds_from_mat5(path: Path) -> np.ndarray:
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as err:  # scipy raises a mix of ValueError/TypeError/MatReadError on corrupt files
        raise ReaderError(f"{path}: not a readable MATLAB v5 file ({err})") from None
    if "preds" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise ReaderError(f"{path}: missing variable 'preds'; found {found}")
    return _as_float(path, mat["preds"])


def _preds_from_h5(path: Path, matlab: bool) -> tuple[np.ndarray, tuple[str, ...]]:
    """Plain HDF5 (C order, as written by h5py/torch-hdf5) or MATLAB v7.3 (h5py shows dimensions reversed), and the
    layouts the array may be in (one, where a plain file declares it in attribute ``layout``)."""
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        kind = "MATLAB v7.3 .mat" if matlab else "HDF5 file or MATLAB v5/v7.3 .mat"
        raise ReaderError(f"{path}: not a readable {kind} ({err})") from None
    with h5:
        if "preds" not in h5:
            what = "variable" if matlab else "dataset"
            found = sorted(k for k in h5 if k not in _MAT_META_KEYS)
            raise ReaderError(f"{path}: missing {what} 'preds'; found {found}")
        node = h5["preds"]
        if not isinstance(node, h5py.Dataset):
            raise ReaderError(f"{path}: 'preds' is a {type(node).__name__}, not a numeric array")
        preds = _as_float(path, node[()])
        declared = None if matlab else node.attrs.get(LAYOUT_ATTR)
    if isinstance(declared, bytes):
        declared = declared.decode("utf-8", "replace")
    if declared is not None and declared not in _LAYOUTS:
        raise ReaderError(f"{path}: 'preds' attribute {LAYOUT_ATTR!r} is {declared!r}; expected one of {_LAYOUTS}")
    return (preds.T if matlab else preds), (_LAYOUTS if declared is None else (declared,))


def _choose_layout(path: Path, preds: np.ndarray, joints: int | None, people: int | None,
                   layouts: tuple[str, ...]) -> np.ndarray:
    """Return (N, J, 2) from an array in one of ``layouts`` ([n x J x 2], [2 x J x n]), chosen by shape."""
    shape = preds.shape
    declared = len(layouts) == 1 and preds.ndim == 3  # a file that names its layout: any keypoint count
    allowed_j = (joints,) if joints is not None else (shape[1],) if declared else (MPII.count, FLIC.count)
    wanted = [f"{joints} joints"] * (joints is not None) + [f"{people} people"] * (people is not None)
    expected = f" (expected {', '.join(wanted)})" if wanted else ""
    fits = {}
    if preds.ndim == 3 and shape[1] in allowed_j:
        if shape[2] == 2 and AUTHORS_LAYOUT in layouts:
            fits[AUTHORS_LAYOUT] = (shape[0], preds)
        if shape[0] == 2 and TOMPSON_LAYOUT in layouts:
            fits[TOMPSON_LAYOUT] = (shape[2], preds.transpose(2, 1, 0))
    if len(fits) > 1 and people is not None:
        fits = {name: fit for name, fit in fits.items() if fit[0] == people}
    if len(fits) == 1:
        return np.ascontiguousarray(next(iter(fits.values()))[1])
    if fits:
        raise ReaderError(f"{path}: 'preds' shape {shape} is ambiguous: it fits both accepted layouts {_PRED_LAYOUTS}"
                          f"{expected}; pass the people count (the ground truth's rows) to choose")
    if len(layouts) == 1:
        raise ReaderError(f"{path}: 'preds' has shape {shape}, which does not fit its declared layout "
                          f"{layouts[0]} (attribute {LAYOUT_ATTR!r}){expected}")
    raise ReaderError(f"{path}: 'preds' has shape {shape}, which fits neither accepted layout "
                      f"{_PRED_LAYOUTS}{expected}")


def read_predictions(path: str | Path, *, joints: int | None = None, people: int | None = None) -> np.ndarray:
    """Read variable ``preds`` in 1-based image coordinates and return it 0-based as (N, J, 2) float64.

    Plain HDF5 files (C order), MATLAB v5 .mat (scipy) and v7.3 .mat (HDF5 with a MATLAB userblock, read in MATLAB's
    dimension order) may hold [n x J x 2] or Tompson's [2 x J x n]; the layout is chosen by shape, with ``joints``
    (J) and ``people`` (n), when given, narrowing the choice. A shape that fits both layouts or neither is a
    :class:`ReaderError`, unless a plain HDF5 ``preds`` names its layout in attribute ``layout`` (as
    :func:`write_predictions` does).
    """
    path = Path(path)
    if not path.is_file():
        raise ReaderError(f"{path}: prediction file not found")
    head = _signature(path)
    if head.startswith(_MAT5_SIGNATURE):
        preds, layouts = _preds_from_mat5(path), _LAYOUTS
    else:
        preds, layouts = _preds_from_h5(path, matlab=head.startswith(_MAT73_SIGNATURE))
    return _choose_layout(path, preds, joints, people, layouts) - 1.0


def write_predictions(path: str | Path, preds0: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> None:
    """Write 0-based (N, J, 2) predictions as ``preds`` (1-based float64, its layout named in attribute ``layout``)
    plus ``extra`` datasets, atomically."""
    path = Path(path)
    preds0 = np.asarray(preds0, dtype=np.float64)
    if preds0.ndim != 3 or preds0.shape[2] != 2:
        raise ValueError(f"{path}: predictions must be (N, joints, 2), got {preds0.shape}")
    extra = dict(extra or {})
    if "preds" in extra:
        raise ValueError(f"{path}: 'preds' is reserved for the predictions; rename that extra dataset")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5["preds"] = preds0 + 1.0
        h5["preds"].attrs[LAYOUT_ATTR] = AUTHORS_LAYOUT
        for key, value in extra.items():
            h5[key] = np.asarray(value)
