"""A runtime's score on the validation split of the preprocessed data: what an int8 export's accuracy drop is
measured with, and the benchmark's per-runtime score.

The score is the evaluate stage's headline for the model's dataset card (PCKh@0.5 Mean for MPII, PCK@0.2 Mean for
FLIC, the card's own measure otherwise), computed as the evaluate stage computes it: every validation person's
unaugmented crop, the flip test when the model's ``targets.flip_test`` says so (the default), the quarter-pixel
decoding, scored against the joints the preprocessed table carries (the annotation file's, which the evaluate stage
checks they are). Only the network's runtime changes, so two runtimes' scores differ by what the runtime computes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from hourglass.data.dataset import PoseDataset
from hourglass.evaluation.split_predictions import SPLIT
from hourglass.family import DatasetFamily
from hourglass.inference.runner import Forward, LoadedModel, predict_dataset
from hourglass.precision import select_precision

VALIDATION_BATCH = 8


@dataclass(frozen=True)
class ValidationScore:
    """One runtime's headline on the validation split, and how it was computed."""

    metric: str  # e.g. "PCKh@0.5 Mean"
    score: float
    people: int
    flip_test: bool

    def record(self) -> dict[str, Any]:
        return asdict(self)


def validation_score(loaded: LoadedModel, family: DatasetFamily, data_dir: str | Path, forward: Forward,
                     flip_test: bool | None = None, batch_size: int = VALIDATION_BATCH) -> ValidationScore:
    """``forward``'s headline on ``data_dir``'s validation split; ``flip_test`` None follows the model's config.
    ``loaded.model`` only combines the stacks (it may live on the meta device)."""
    targets = loaded.config.get("targets") or {}
    flip = bool(targets.get("flip_test", True)) if flip_test is None else flip_test
    dataset = PoseDataset(data_dir, SPLIT, input_res=int(loaded.model_config.input_res), joint_set=family.joints)
    precision = select_precision("fp32", torch.device("cpu"), channels_last=False)
    try:
        pred = predict_dataset(loaded.model, dataset, precision, flip_perm=family.joints.flip if flip else None,
                               shift=bool(targets.get("flip_shift", False)), batch_size=batch_size, workers=0,
                               forward=forward)
    finally:
        dataset.close()
    result = family.score(pred.coords, pred.joints, pred.annotated, pred.normalize)
    return ValidationScore(metric=f"{family.metric} Mean", score=float(result.mean), people=len(pred),
                           flip_test=flip)
