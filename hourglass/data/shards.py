"""The processed directory's crop storage: ``shard-NNNNN.h5`` files holding dataset ``crops``, uint8 ``(n, C, C, 3)``
RGB with one HDF5 chunk per person (a sample is one contiguous read, nothing to decompress), and the name of the
stage's summary ``preprocess.json`` beside them. Written by the preprocessing stage, read by the training Dataset.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from hourglass.data.crop import CropSpec

FORMAT_VERSION = 1
SUMMARY_NAME = "preprocess.json"
CROPS_KEY = "crops"
SHARD_GLOB = "shard-*.h5"


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.h5"


class ShardWriter:
    """Appends crops to ``shard-NNNNN.h5`` files of at most ``shard_rows`` people inside ``directory``."""

    def __init__(self, directory: Path, spec: CropSpec, shard_rows: int):
        self.directory, self.spec, self.shard_rows = directory, spec, shard_rows
        self.counts: list[int] = []
        self._file: h5py.File | None = None
        self._crops: h5py.Dataset | None = None

    def _open(self) -> None:
        res = self.spec.crop_res
        self._file = h5py.File(self.directory / shard_name(len(self.counts)), "w")
        self._file.attrs.update(margin=self.spec.margin, crop_res=res, format_version=FORMAT_VERSION)
        self._crops = self._file.create_dataset(
            CROPS_KEY, shape=(self.shard_rows, res, res, 3), maxshape=(None, res, res, 3), dtype=np.uint8,
            chunks=(1, res, res, 3))  # one chunk per person: a sample is one contiguous read, nothing to decompress
        self.counts.append(0)

    def append(self, crop: np.ndarray) -> tuple[int, int]:
        """Store one crop; returns its (shard, row in shard)."""
        if self._file is None:
            self._open()
        shard, row = len(self.counts) - 1, self.counts[-1]
        self._crops[row] = crop
        self.counts[-1] += 1
        if self.counts[-1] == self.shard_rows:
            self._close_current()
        return shard, row

    def _close_current(self) -> None:
        if self._file is not None:
            self._crops.resize(self.counts[-1], axis=0)
            self._file.close()
            self._file = None

    def close(self) -> list[int]:
        """Finish the last shard; returns the row count of every shard."""
        self._close_current()
        return list(self.counts)
