"""The MPII test-set submission: ``pred_keypoints_mpii.mat`` for the benchmark's evaluation server.

The paper's MPII table is on the test set, whose joints are not public: its maintainers score a submitted file in
the dataset's own annotation layout. The variable ``pred`` is ``RELEASE.annolist`` restricted to the test images
(``RELEASE.img_train == 0``, in release order), and each test person's ``annorect(p).annopoints.point`` is a struct
array with ``x``, ``y`` (1-based pixels, as the annotations) and ``id`` (joint id 0-15, the order of the h5 files).
``RELEASE`` is ``mpii_human_pose_v1_u12_1.mat`` from the annotation release ``mpii_human_pose_v1_u12_2.zip``; the
rows of pose-hg-train's ``test.h5`` name their person by ``index`` / ``person``, 0-based rows of ``annolist`` /
``annorect``.

A submission in the wrong person order scores near zero and costs one of the server's limited submissions, so
:func:`check_order` guards it as the community's preparation scripts do: across test people, the predicted thorax
must follow the annotated rough person centre (``objpos``).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from hourglass.io.atomic import write_atomic

log = logging.getLogger(__name__)

RELEASE_NAME = "mpii_human_pose_v1_u12_1.mat"
SUBMISSION_NAME = "pred_keypoints_mpii.mat"
THORAX = 7  # MPII joint id of the thorax
# Pearson r of objpos against the predicted thorax, per axis. A trained network scores about 0.99; a network that
# puts the thorax anywhere inside the person's crop still scores about 0.5-0.8 (objpos spreads over the whole image,
# the crop is a few hundred pixels); rows in the wrong order score about 0 (|r| < 0.1 over the 11,731 test people).
MIN_CORRELATION = 0.5
MIN_PEOPLE = 30  # below this a correlation says little about the order: the guard is skipped with a warning


class SubmissionError(ValueError):
    """The release file, the test rows or the predictions do not fit together; the message says how."""


def _records(value: Any) -> list[Any]:
    """A MATLAB struct array read with ``squeeze_me`` as a list (one element comes back unwrapped, none empty)."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


@dataclass(frozen=True)
class Release:
    """``RELEASE`` of the annotation release: the image list and which images are training images."""

    annolist: list[Any]  # scipy mat_struct per image (fields image, annorect, ...)
    img_train: np.ndarray  # (images,) int
    source: Path

    @property
    def test_images(self) -> np.ndarray:
        """0-based annolist indices of the test images, in release order."""
        return np.flatnonzero(self.img_train == 0)

    def objpos(self, index: int, person: int) -> tuple[float, float]:
        """The annotated rough centre of person ``person`` (0-based) of image ``index`` (0-based), 1-based px."""
        try:
            rect = _records(self.annolist[index].annorect)[person]
            return float(rect.objpos.x), float(rect.objpos.y)
        except (IndexError, AttributeError) as err:
            raise SubmissionError(f"{self.source}: annolist({index + 1}).annorect({person + 1}) has no objpos "
                                  f"({err})") from None


def read_release(path: str | Path) -> Release:
    """Read ``RELEASE`` from ``mpii_human_pose_v1_u12_1.mat``."""
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: the MPII annotation release is missing (the download stage extracts "
                              f"{RELEASE_NAME} from mpii_human_pose_v1_u12_2.zip)")
    try:
        mat = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)
    except (ValueError, OSError, NotImplementedError) as err:
        raise SubmissionError(f"{path}: not a readable MATLAB file ({err})") from None
    if "RELEASE" not in mat:
        raise SubmissionError(f"{path}: no variable RELEASE; found {sorted(k for k in mat if not k.startswith('_'))}")
    release = mat["RELEASE"]
    try:
        annolist, img_train = _records(release.annolist), np.atleast_1d(np.asarray(release.img_train, dtype=int))
    except AttributeError as err:
        raise SubmissionError(f"{path}: RELEASE lacks annolist or img_train ({err})") from None
    if len(annolist) != len(img_train):
        raise SubmissionError(f"{path}: RELEASE.annolist has {len(annolist)} images but img_train {len(img_train)}")
    return Release(annolist=annolist, img_train=img_train, source=path)


def check_order(objpos: np.ndarray, thorax: np.ndarray, source: str = "test.h5") -> dict[str, float] | None:
    """Stop unless the predicted thorax (N, 2) follows each person's ``objpos`` (N, 2); returns the correlations,
    or None when there are too few people to tell."""
    finite = np.isfinite(thorax).all(axis=1) & np.isfinite(objpos).all(axis=1)
    if finite.sum() < MIN_PEOPLE:
        log.warning("%s: only %d predicted test people; too few to check the submission's person order",
                    source, int(finite.sum()))
        return None
    r = {axis: float(np.corrcoef(objpos[finite, k], thorax[finite, k])[0, 1]) for k, axis in enumerate("xy")}
    if not all(value >= MIN_CORRELATION for value in r.values()):
        raise SubmissionError(
            f"{source}: the predicted thorax does not follow the annotated person centres (Pearson r x {r['x']:.2f}, "
            f"y {r['y']:.2f}, need >= {MIN_CORRELATION}): the test rows are not in the order of their index/person "
            f"columns, so the submission would score the wrong people; nothing was written")
    return r


def _points(preds1: np.ndarray) -> np.ndarray:
    """One person's joints (J, 2) as a struct array of x, y, id (MATLAB's ``annopoints.point``); NaNs left out."""
    keep = [j for j in range(len(preds1)) if np.isfinite(preds1[j]).all()]
    points = np.zeros(len(keep), dtype=[("x", object), ("y", object), ("id", object)])
    for k, j in enumerate(keep):
        points[k] = (float(preds1[j, 0]), float(preds1[j, 1]), j)
    return points


def build_submission(release: Release, index: np.ndarray, person: np.ndarray, preds0: np.ndarray) -> np.ndarray:
    """``pred``: the test images of ``release`` in order, with the predictions ``preds0`` (N, J, 2; 0-based) of the
    test people ``(index, person)`` (0-based) as their ``annopoints``; other people keep empty annopoints."""
    index, person = np.asarray(index, dtype=int), np.asarray(person, dtype=int)
    test = release.test_images
    position = {int(i): k for k, i in enumerate(test)}
    by_image: dict[int, dict[int, np.ndarray]] = {}
    for row, (i, p) in enumerate(zip(index.tolist(), person.tolist(), strict=True)):
        if i not in position:
            raise SubmissionError(f"test row {row}: annolist({i + 1}) is not a test image of {release.source}")
        if p in by_image.setdefault(i, {}):
            raise SubmissionError(f"test row {row}: annolist({i + 1}).annorect({p + 1}) appears twice")
        by_image[i][p] = preds0[row] + 1.0
    pred = np.zeros(len(test), dtype=[("image", object), ("annorect", object)])
    for k, i in enumerate(test.tolist()):
        entry = release.annolist[i]
        rects = _records(getattr(entry, "annorect", None))
        predicted = by_image.get(i, {})
        if predicted and max(predicted) >= len(rects):
            raise SubmissionError(f"annolist({i + 1}) has {len(rects)} people in {release.source}, but a test row "
                                  f"names person {max(predicted) + 1}")
        out = np.zeros(len(rects), dtype=[("objpos", object), ("annopoints", object)])
        for p, rect in enumerate(rects):
            centre = getattr(rect, "objpos", None)
            objpos = {"x": float(centre.x), "y": float(centre.y)} if hasattr(centre, "x") else np.zeros((0, 0))
            points = {"point": _points(predicted[p])} if p in predicted else np.zeros((0, 0))
            out[p] = (objpos, points)
        pred[k] = ({"name": str(entry.image.name)}, out)
    return pred


def write_submission(path: str | Path, pred: np.ndarray) -> None:
    """Write ``pred`` as ``pred_keypoints_mpii.mat`` (MATLAB v5), atomically."""
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"pred": pred}, do_compression=True, oned_as="row")
    write_atomic(path, buffer.getvalue())


def read_submission(path: str | Path) -> dict[tuple[str, int], np.ndarray]:
    """A written submission as {(image name, 0-based person): (16, 2) 0-based joints, NaN where absent}."""
    mat = scipy.io.loadmat(Path(path), struct_as_record=False, squeeze_me=True)
    out: dict[tuple[str, int], np.ndarray] = {}
    for entry in _records(mat["pred"]):
        for p, rect in enumerate(_records(getattr(entry, "annorect", None))):
            annopoints = getattr(rect, "annopoints", None)
            if not hasattr(annopoints, "point"):
                continue
            joints = np.full((16, 2), np.nan)
            for point in _records(annopoints.point):
                joints[int(point.id)] = (float(point.x) - 1.0, float(point.y) - 1.0)
            out[(str(entry.image.name), p)] = joints
    return out
