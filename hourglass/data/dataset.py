"""The training/evaluation Dataset over the preprocessed shards (``hourglass.data.shards``).

A sample is one person: the stored crop goes through ONE ``cv2.warpAffine`` (augmentation folded into the matrix,
see ``hourglass.data.augment``) to the input resolution, and the joints through the same matrix to Gaussian targets
at a quarter of it. Training samples are augmented as pose-hg-train does; validation/test samples are not, and their
input is exactly the crop of ``(center, scale)`` at ``input_res``, so ``heatmaps_to_image(decode(out), center, scale,
output_res)`` gives original-image coordinates.

Targets are drawn for every *annotated* joint, occluded or not, as the original trains (bearpaw's port masks the
occluded ones); ``visible_only=True`` restricts them to visible joints.

HDF5 files are opened lazily, per process, on first use (never in ``__init__``) and dropped when pickled, so the
dataset is safe with DataLoader workers under ``fork`` and ``spawn``. A sample's augmentation is drawn from a generator
seeded with the ``stream`` of the :class:`hourglass.data.sampler.Draw` it is asked for (seed, epoch and position in
the epoch's global order) and its index: a pure function of where the run is, whatever the number of loader workers
or processes, so a run resumed from a checkpoint augments exactly as an uninterrupted one. A plain integer index
(direct use, benchmarks) draws from ``(torch.initial_seed(), index)`` instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from hourglass.config import AugmentConfig, ParamsConfig
from hourglass.data.augment import (
    IDENTITY,
    AugmentParams,
    apply_affine,
    required_margin,
    sample_augmentation,
    stored_to_input,
    to_float_chw,
)
from hourglass.data.shards import CROPS_KEY, SUMMARY_NAME, shard_name
from hourglass.data.table import TABLE_NAME, PreprocessError, column_array, read_table
from hourglass.family import family_of
from hourglass.heatmaps import DEFAULT_RADIUS, DEFAULT_SIGMA, gaussian_heatmaps
from hourglass.joints import FLIC, MPII, JointSet

_BY_COUNT = {MPII.count: MPII, FLIC.count: FLIC}


class PoseDataset(Dataset):
    """People of one split of a processed directory, as dicts of tensors (default-collatable).

    Keys: ``image`` float32 (3, R, R) in [0, 1]; ``target`` float32 (J, R/4, R/4); ``target_mask`` (J,) bool (joints
    that got a target, in target order, i.e. after the flip swap); ``row`` (row of annotations.parquet); ``center``
    (2,) float64, ``scale`` float64, ``joints`` (J, 2) float64 (NaN if not annotated), ``annotated`` (J,) bool,
    ``visible`` (J,) bool, ``normalize`` float64 -- all in original-image terms, unaugmented.
    """

    def __init__(self, processed_dir: str | Path, split: str, input_res: int = 256, output_res: int | None = None,
                 sigma: float = DEFAULT_SIGMA, augment: AugmentConfig | None = None,
                 joint_set: JointSet | None = None, visible_only: bool = False, radius: int = DEFAULT_RADIUS):
        self.processed_dir = Path(processed_dir)
        summary_path = self.processed_dir / SUMMARY_NAME
        try:
            summary = json.loads(summary_path.read_text())
        except FileNotFoundError:
            raise PreprocessError(f"{summary_path}: not found; run `python -m pipeline.preprocess` first") from None
        self.margin = float(summary["margin"])
        self.crop_res = int(summary["crop_res"])
        self.input_res = int(input_res)
        self.output_res = int(output_res) if output_res is not None else self.input_res // 4
        self.sigma = float(sigma)
        self.radius = int(radius)
        self.augment = augment if augment is not None and augment.enabled else None
        self.visible_only = visible_only
        self.split = split
        need = required_margin(self.augment)
        if need > self.margin * (1 + 1e-6):
            raise ValueError(f"{summary_path}: stored crops have margin {self.margin:g} but the augmentation needs "
                             f"{need:g}; re-run preprocessing with these augment parameters")

        table = read_table(self.processed_dir / TABLE_NAME)
        mask = np.asarray(table.column("split").to_pylist()) == split
        if not mask.any():
            present = sorted(set(table.column("split").to_pylist()))
            raise ValueError(f"{self.processed_dir / TABLE_NAME}: no rows of split {split!r}; present: {present}")
        table = table.filter(mask)
        self.rows = table.column("row").to_numpy()
        self.shards = table.column("shard").to_numpy()
        self.shard_rows = table.column("shard_row").to_numpy()
        self.center = column_array(table.column("center"), np.float64)
        self.scale = table.column("scale").to_numpy()
        self.normalize = table.column("normalize").to_numpy()
        self.joints = column_array(table.column("joints"), np.float64)
        self.annotated = column_array(table.column("annotated"), bool)
        self.visible = column_array(table.column("visible"), bool)
        self.crop_joints = column_array(table.column("crop_joints"), np.float64)
        count = self.joints.shape[1]
        self.joint_set = joint_set or _BY_COUNT.get(count)
        if self.joint_set is None or self.joint_set.count != count:
            expected = "" if self.joint_set is None else f" ({self.joint_set.count} joints)"
            raise ValueError(f"{self.processed_dir}: {count} joints per person do not match joint set "
                             f"{getattr(self.joint_set, 'name', None)!r}{expected}; was the data preprocessed "
                             "for another dataset card?")
        self._flip_index = np.argsort(np.asarray(self.joint_set.flip))  # out[flip[j]] = in[j]
        self._owner: int | None = None
        self._files: dict[int, tuple[h5py.Dataset, bool]] = {}

    # -- process-local state ---------------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_owner=None, _files={})
        return state

    def _local(self) -> None:
        """(Re)open the files when first used in this process (handles inherited through fork are not reused)."""
        if self._owner != os.getpid():
            self._files = {}
            self._owner = os.getpid()

    def _crops(self, shard: int) -> tuple[h5py.Dataset, bool]:
        """The crops dataset of ``shard`` and whether a person is one unfiltered chunk (then read directly)."""
        entry = self._files.get(shard)
        if entry is None:
            path = self.processed_dir / shard_name(shard)
            # No chunk cache: every chunk is one person, read once per epoch.
            crops = h5py.File(path, "r", rdcc_nbytes=0)[CROPS_KEY]
            direct = crops.chunks == (1,) + crops.shape[1:] and not crops.compression and crops.dtype == np.uint8
            entry = self._files[shard] = (crops, direct)
        return entry

    def close(self) -> None:
        """Close this process's open shards (they reopen on the next access)."""
        for crops, _ in self._files.values():
            crops.file.close()
        self._files = {}

    # -- samples ---------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def num_joints(self) -> int:
        return self.joint_set.count

    def read_crop(self, index: int) -> np.ndarray:
        """The stored uint8 (C, C, 3) RGB crop of sample ``index``."""
        self._local()
        crops, direct = self._crops(int(self.shards[index]))
        row = int(self.shard_rows[index])
        if direct:
            # One unfiltered chunk per person: read its bytes directly, skipping h5py's selection machinery.
            out = np.empty(crops.shape[1:], dtype=np.uint8)
            crops.id.read_direct_chunk((row, 0, 0, 0), out=out.reshape(-1))
            return out
        return crops[row]

    def draw(self, index: int) -> AugmentParams:
        """The augmentation of sample ``index`` (the identity for unaugmented splits): from its ``stream`` when it
        is a sampler's :class:`~hourglass.data.sampler.Draw`, else from torch's current seed."""
        if self.augment is None:
            return IDENTITY
        stream = getattr(index, "stream", None)
        seed = [*stream, int(index)] if stream is not None else [torch.initial_seed(), int(index)]
        return sample_augmentation(self.augment, np.random.default_rng(seed))

    def render(self, index: int, crop: np.ndarray, params: AugmentParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image float32 (3, R, R), targets (J, R/4, R/4) and target mask for ``crop`` under ``params``."""
        matrix = stored_to_input(self.crop_res, self.margin, self.input_res, params)
        warped = cv2.warpAffine(crop, matrix, (self.input_res, self.input_res), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        image = to_float_chw(warped, params.colour)
        points = apply_affine(matrix, self.crop_joints[index])
        mask = self.visible[index] if self.visible_only else self.annotated[index]
        if params.flip:
            points, mask = points[self._flip_index], mask[self._flip_index]
        ratio = self.output_res / self.input_res
        target = gaussian_heatmaps((points + 0.5) * ratio - 0.5, mask, self.output_res, self.sigma,
                                   self.radius)
        return image, target, mask

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples of split {self.split!r}")
        augmentation = self.draw(index)
        index = int(index)
        image, target, mask = self.render(index, self.read_crop(index), augmentation)
        return {
            "image": torch.from_numpy(image),
            "target": torch.from_numpy(target),
            "target_mask": torch.from_numpy(np.ascontiguousarray(mask)),
            "row": int(self.rows[index]),
            "center": torch.from_numpy(self.center[index].copy()),
            "scale": float(self.scale[index]),
            "joints": torch.from_numpy(self.joints[index].copy()),
            "annotated": torch.from_numpy(self.annotated[index].copy()),
            "visible": torch.from_numpy(self.visible[index].copy()),
            "normalize": float(self.normalize[index]),
        }


def create_dataset(processed_dir: str | Path, split: str, params: ParamsConfig, train: bool) -> PoseDataset:
    """The dataset of ``split`` configured from ``params``: augmented with ``params.augment`` when ``train``."""
    return PoseDataset(processed_dir, split, input_res=params.model.input_res, output_res=params.model.input_res // 4,
                       sigma=params.targets.sigma, radius=params.targets.radius,
                       augment=params.augment if train else None, joint_set=family_of(params).joints)
