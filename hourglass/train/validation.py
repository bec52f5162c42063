"""Per-epoch validation: the validation loss and the dataset family's official metric, sharded over processes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from hourglass.config import ParamsConfig
from hourglass.data.workers import resolve_workers
from hourglass.family import family_of
from hourglass.inference.runner import Predictions, predict_dataset
from hourglass.precision import Precision
from hourglass.train.criterion import HeatmapCriterion
from hourglass.train.distributed import SINGLE_PROCESS, DistInfo, gather_objects
from hourglass.train.seeding import seed_worker


def validation_people(people: int, wanted: int | None) -> range | list[int]:
    """The positions per-epoch validation scores: all ``people``, or ``wanted`` of them evenly spaced over the split
    (the same every epoch and run, so the curve's points compare; spread out, so no one part of the split decides)."""
    if wanted is None or wanted >= people:
        return range(people)
    return [i * people // wanted for i in range(wanted)]


@torch.no_grad()
def validate(model: nn.Module, criterion: HeatmapCriterion, dataset: Dataset, params: ParamsConfig,
             precision: Precision, info: DistInfo = SINGLE_PROCESS, workers: int | None = None) -> dict[str, float]:
    """Validation loss and the official metric of ``dataset`` (each process scores a strided shard, no padding),
    loaded by ``workers`` processes (None: ``train.workers`` resolved for the device).

    No flip test, and ``train.val_people`` of the people (:func:`validation_people`): per-epoch validation tracks
    progress at the cost of one pass over them; ``hourglass.evaluation.stage`` scores every person with the flip test.
    The loss is ``criterion``'s full-resolution part (:meth:`HeatmapCriterion.validation_loss`).
    """
    indices = validation_people(len(dataset), params.train.val_people)[info.rank::info.world_size]
    loss = {"sum": 0.0, "count": 0}

    def add_loss(batch: Mapping[str, Any], outputs: Tensor) -> None:
        target = batch["target"].to(precision.device)
        loss["sum"] += float(criterion.validation_loss(outputs, target)) * len(outputs)
        loss["count"] += len(outputs)

    if workers is None:
        workers = resolve_workers(params.train.workers, precision.device, info.processes_here)
    shard = None
    if len(indices):
        shard = predict_dataset(model, dataset, precision, batch_size=params.train.val_batch_size,
                                workers=workers, indices=indices, on_batch=add_loss, worker_init_fn=seed_worker)
    gathered = gather_objects({"pred": shard, "loss_sum": loss["sum"], "count": loss["count"]}, info)
    parts = [g["pred"] for g in gathered if g["pred"] is not None]
    if not parts:
        raise ValueError("validation set is empty")
    merged = Predictions.concatenate(parts).sorted_by_row()
    family = family_of(params)
    out = family.validation_metrics(family.score(merged.coords, merged.joints, merged.annotated, merged.normalize))
    out["val/loss"] = sum(g["loss_sum"] for g in gathered) / sum(g["count"] for g in gathered)
    return out
