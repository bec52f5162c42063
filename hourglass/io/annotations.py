"""Annotation h5 files in the layout of pose-hg-train's ``data/<dataset>/annot/*.h5``.

The files hold MATLAB 1-based pixel coordinates (``part``, ``center``); missing joints are ``(0, 0)`` and the
unlabelled test rows ``(-1, -1)``. This module is the one place that converts: an :class:`Annotations` table is
0-based (pixel centres at integers) with ``NaN`` for joints that are not annotated, plus an explicit mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from hourglass.io.atomic import atomic_path

REQUIRED = ("center", "scale", "part", "imgname")


class AnnotationError(ValueError):
    """An annotation file is missing, unreadable or lacks a required dataset; the message names file and key."""


@dataclass
class Annotations:
    """One row per person. Coordinates are 0-based; ``joints`` is NaN where ``annotated`` is False."""

    imgname: np.ndarray  # (N,) str
    center: np.ndarray  # (N, 2) float64, 0-based
    scale: np.ndarray  # (N,) float64, person size / 200 px (MPII rows already carry the +15*s, x1.25 adjustment)
    joints: np.ndarray  # (N, J, 2) float64, 0-based, NaN if not annotated
    annotated: np.ndarray  # (N, J) bool
    visible: np.ndarray  # (N, J) bool, the dataset's visibility flag (False where unknown)
    normalize: np.ndarray  # (N,) float64: MPII head size (0.6 x head-box diagonal) or FLIC torso size
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # index, person, torsoangle, ... kept verbatim

    def __len__(self) -> int:
        return len(self.imgname)

    @property
    def num_joints(self) -> int:
        return self.joints.shape[1]

    def subset(self, rows: np.ndarray | slice) -> Annotations:
        """Rows ``rows`` as a new table (numpy fancy indexing)."""
        return Annotations(
            imgname=self.imgname[rows], center=self.center[rows], scale=self.scale[rows],
            joints=self.joints[rows], annotated=self.annotated[rows], visible=self.visible[rows],
            normalize=self.normalize[rows], extra={k: v[rows] for k, v in self.extra.items()},
        )


def read_annotations(path: str | Path) -> Annotations:
    """Read an annotation h5 (MPII ``train/valid/test.h5``, FLIC ``train/valid.h5``, or the synthetic set's)."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise AnnotationError(f"{path}: not a readable HDF5 file ({err})") from None
    with h5:
        missing = [k for k in REQUIRED if k not in h5]
        if missing:
            raise AnnotationError(f"{path}: missing dataset(s) {missing}; found {sorted(h5)}")
        data = {k: h5[k][()] for k in h5}
    part = np.asarray(data.pop("part"), dtype=np.float64)
    if part.ndim != 3 or part.shape[2] != 2:
        raise AnnotationError(f"{path}: 'part' must be (N, joints, 2), got {part.shape}")
    n, j = part.shape[:2]
    annotated = (part[..., 0] > 0) | (part[..., 1] > 0)
    joints = np.where(annotated[..., None], part - 1.0, np.nan)
    visible = np.asarray(data.pop("visible", np.zeros((n, j))), dtype=np.float64) > 0
    normalize = np.asarray(data.pop("normalize", np.ones(n)), dtype=np.float64)
    center = np.asarray(data.pop("center"), dtype=np.float64) - 1.0
    scale = np.asarray(data.pop("scale"), dtype=np.float64)
    imgname = np.array([s.decode() if isinstance(s, bytes) else str(s) for s in data.pop("imgname")])
    for key, arr in (("center", center), ("scale", scale), ("imgname", imgname), ("normalize", normalize)):
        if len(arr) != n:
            raise AnnotationError(f"{path}: '{key}' has {len(arr)} rows but 'part' has {n}")
    return Annotations(imgname=imgname, center=center, scale=scale, joints=joints, annotated=annotated,
                       visible=visible & annotated, normalize=normalize, extra=data)


def write_annotations(path: str | Path, table: Annotations, name: str | None = None) -> None:
    """Write ``table`` in the original layout (1-based, missing joints as (0, 0)), atomically."""
    part = np.where(table.annotated[..., None], table.joints + 1.0, 0.0)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        if name:
            h5.attrs["name"] = name
        h5["center"] = table.center + 1.0
        h5["scale"] = table.scale
        h5["part"] = part
        h5["visible"] = table.visible.astype(np.float64)
        h5["normalize"] = table.normalize
        width = max(1, max((len(s) for s in table.imgname), default=1))
        h5["imgname"] = np.array([s.encode() for s in table.imgname], dtype=f"S{width}")
        for key, arr in table.extra.items():
            h5[key] = arr
