"""The device check's data: generated MPII-like people through the real preprocessing stage and Dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hourglass.bench.loader import make_raw_set
from hourglass.config import ParamsConfig
from hourglass.data.dataset import create_dataset
from hourglass.data.preprocess import preprocess
from hourglass.io.annotations import read_annotations, write_annotations


def make_data(root: Path, params: ParamsConfig, people: int, seed: int = 0) -> Path:
    """Generated MPII-like people (photo-like JPEGs) through the real preprocessing stage: ``root/processed`` with
    a ``train`` split of ``people`` and a small ``valid`` split."""
    raw = root / "raw"
    make_raw_set(raw, people, np.random.default_rng(seed))
    table = read_annotations(raw / "annot" / "train.h5")
    write_annotations(raw / "annot" / "valid.h5", table.subset(slice(0, min(8, len(table)))), name="bench")
    preprocess(raw, root / "processed", params, dataset="bench", progress=False)
    return root / "processed"


def datasets(processed: Path, params: ParamsConfig) -> tuple[Any, Any]:
    """The training (augmented) and validation datasets of :func:`make_data`'s output."""
    return create_dataset(processed, "train", params, train=True), create_dataset(processed, "valid", params, False)
