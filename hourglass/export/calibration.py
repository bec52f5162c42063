"""The crops an int8 export is calibrated on: people of the training split of the preprocessed data the model was
trained on, unaugmented, exactly as the network sees a validation crop.

Post-training static quantisation fixes every activation's int8 range from what the network computes on these
crops, so they must be the model's own kind of input (its card, its crop, its resolution), and the export must say
which they were: :meth:`CalibrationSet.record` names the directory, the table file and its SHA-256, the split, the
rows taken and the SHA-256 of the float32 crops themselves, so the same calibration can be checked or repeated.
The people are spread evenly over the split (deterministic: the same data gives the same set).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hourglass.data.dataset import PoseDataset
from hourglass.data.table import TABLE_NAME
from hourglass.io.digest import file_sha256
from hourglass.joints import JointSet

CALIBRATION_SPLIT = "train"
CALIBRATION_BATCH = 8  # crops per calibration pass


@dataclass(frozen=True)
class CalibrationSet:
    """The calibration crops (N, 3, R, R) float32 in [0, 1] and where they came from."""

    images: np.ndarray
    data_dir: Path
    rows: list[int]  # annotations.parquet rows
    table_sha256: str

    def digest(self) -> str:
        """SHA-256 of the crops as the network receives them (C-order float32 bytes)."""
        return hashlib.sha256(np.ascontiguousarray(self.images, dtype=np.float32).tobytes()).hexdigest()

    def batches(self, size: int = CALIBRATION_BATCH) -> Iterator[np.ndarray]:
        """The crops in batches of ``size`` (the last may be smaller)."""
        for start in range(0, len(self.images), size):
            yield self.images[start:start + size]

    def record(self) -> dict[str, Any]:
        """What the export's metadata says about its calibration (see the module docstring)."""
        return {"data_dir": str(self.data_dir), "file": TABLE_NAME, "file_sha256": self.table_sha256,
                "split": CALIBRATION_SPLIT, "crops": len(self.images), "rows": self.rows,
                "crops_sha256": self.digest(), "input": list(self.images.shape[1:])}


def spread(count: int, total: int) -> np.ndarray:
    """``min(count, total)`` distinct indices spread evenly over ``range(total)``, in order."""
    if count < 1:
        raise ValueError(f"--calibration {count}: at least one crop is needed")
    n = min(count, total)
    return np.unique(np.linspace(0, total - 1, n).round().astype(np.int64))


def load_calibration(data_dir: str | Path, input_res: int, joint_set: JointSet, count: int) -> CalibrationSet:
    """``count`` training crops of ``data_dir`` at ``input_res`` (fewer when the split has fewer people)."""
    data_dir = Path(data_dir)
    dataset = PoseDataset(data_dir, CALIBRATION_SPLIT, input_res=input_res, joint_set=joint_set)
    indices = spread(count, len(dataset))
    try:
        images = np.stack([dataset[int(i)]["image"].numpy() for i in indices]).astype(np.float32)
    finally:
        dataset.close()
    return CalibrationSet(images=images, data_dir=data_dir, rows=[int(dataset.rows[i]) for i in indices],
                          table_sha256=file_sha256(data_dir / TABLE_NAME))
