"""One split of the preprocessed data through a loaded model, and its people matched to the annotation file's rows.

The evaluate stage's validation scores and its MPII test-server submission both predict a split this way, so their
preds.h5 rows are the ground-truth file's rows in its order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hourglass.config import ModelConfig, ParamsConfig
from hourglass.data.dataset import PoseDataset
from hourglass.data.table import TABLE_NAME, PreprocessError, read_table
from hourglass.data.workers import resolve_workers
from hourglass.inference.runner import Forward, LoadedModel, Predictions, predict_dataset
from hourglass.io.eval_files import GroundTruth, ReaderError

SPLIT = "valid"
TEST_SPLIT = "test"


def dataset_params(params: ParamsConfig, loaded: LoadedModel) -> ParamsConfig:
    """The params with the checkpoint's model section: the input resolution must be the one trained on."""
    return params.model_copy(update={"model": ModelConfig.model_validate(loaded.model_config.model_dump())})


def predict(loaded: LoadedModel, dataset: PoseDataset, params: ParamsConfig, precision: Any,
             progress: bool, forward: Forward | None = None) -> Predictions:
    """The network over every person of ``dataset``, with the flip test when ``targets.flip_test`` is on;
    ``forward`` runs it on another runtime (:mod:`hourglass.inference.runtimes`), None in eager torch."""
    return predict_dataset(loaded.model, dataset, precision,
                           flip_perm=dataset.joint_set.flip if params.targets.flip_test else None,
                           shift=params.targets.flip_shift, batch_size=params.train.val_batch_size,
                           workers=resolve_workers(params.train.workers, precision.device), progress=progress,
                           forward=forward)


def source_rows(data_dir: Path, dataset_rows: np.ndarray, split: str = SPLIT) -> np.ndarray:
    """The annotation-file row (``source_row``) of each dataset row (``row`` of annotations.parquet)."""
    table = read_table(data_dir / TABLE_NAME)
    rows = table.column("row").to_numpy()
    source = table.column("source_row").to_numpy()
    splits = np.asarray(table.column("split").to_pylist())
    lookup = dict(zip(rows.tolist(), zip(source.tolist(), splits.tolist(), strict=True), strict=True))
    out = np.empty(len(dataset_rows), dtype=np.int64)
    for i, row in enumerate(dataset_rows.tolist()):
        src, name = lookup[row]
        if name != split:
            raise PreprocessError(f"{data_dir / TABLE_NAME}: row {row} belongs to split {name!r}, not {split!r}")
        out[i] = src
    return out


def align_to_ground_truth(pred: Predictions, rows: np.ndarray, gt: GroundTruth, data_dir: Path) -> dict[str, Any]:
    """Arrays with one entry per ground-truth row (NaN where a person was not predicted), after checking that the
    preprocessed people are the annotation file's people."""
    n = len(gt)
    if len(np.unique(rows)) != len(rows) or (len(rows) and (rows.min() < 0 or rows.max() >= n)):
        raise PreprocessError(f"{data_dir}: the {SPLIT} rows' source_row values do not index the {n} people of "
                              f"{gt.source}; preprocess again from that annotation file")
    if pred.joints.shape[1:] != gt.joints.shape[1:]:
        raise ReaderError(f"{gt.source}: {gt.joints.shape[1]} joints per person, but {data_dir} has "
                          f"{pred.joints.shape[1]}")
    same = np.isclose(pred.joints, gt.joints[rows], atol=1e-3, equal_nan=True).all(axis=(1, 2))
    if not same.all():
        first = int(rows[np.flatnonzero(~same)[0]])
        raise PreprocessError(f"{data_dir}: the joints of {int((~same).sum())} people differ from {gt.source} "
                              f"(first: annotation row {first}); the data was preprocessed from another file")
    joints, stacks = pred.coords.shape[1], pred.stack_coords.shape[1]
    out = {
        "preds": np.full((n, joints, 2), np.nan), "maxvals": np.full((n, joints), np.nan, np.float32),
        "stack_preds": np.full((n, stacks, joints, 2), np.nan),
        "stack_maxvals": np.full((n, stacks, joints), np.nan, np.float32),
    }
    for key, values in (("preds", pred.coords), ("maxvals", pred.maxvals), ("stack_preds", pred.stack_coords),
                        ("stack_maxvals", pred.stack_maxvals)):
        out[key][rows] = values
    return out
