"""What a checkpoint says about how its model was made: the data it was trained on and its validation score.

It travels with every prediction (:class:`TrainedOn`, from the checkpoint's stored config and, where present, its
per-epoch ``history`` or ``metrics``): the dataset, the family's headline validation score (``hourglass.family``)
of the epoch the weights are from, and the lineage training recorded in the config (:mod:`hourglass.lineage`: card
and data digests, people per split, git commit, params digest, first weights). A model trained on the synthetic
people is flagged, since it does poorly on real photos; a checkpoint without metrics (a serving checkpoint) has its
score "unknown". The config's ``train.target_scale`` is read here too: raw heatmap peaks are divided by it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hourglass.dataset_card import CardError
from hourglass.family import family_of_checkpoint
from hourglass.inference.runner import LoadedModel
from hourglass.io.checkpoint import CheckpointError, load_checkpoint
from hourglass.lineage import Lineage, lineage_of_config

SYNTHETIC_WARNING = ("trained on the synthetic people, not on real photos: expect poor results on real images")


def confidence_divisor(config: Mapping[str, Any], path: str | Path) -> float:
    """What raw heatmap peaks are divided by: the config's ``train.target_scale`` (1 when absent). A value that is
    not a positive number is a :class:`CheckpointError` naming the file."""
    value = (config.get("train") or {}).get("target_scale", 1.0)
    try:
        scale = float(value)
    except (TypeError, ValueError):
        scale = float("nan")
    if not (math.isfinite(scale) and scale > 0):
        raise CheckpointError(f"{path}: train.target_scale {value!r} in the checkpoint's config is not a positive "
                              "number")
    return scale


def _finite_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _epoch(value: Any) -> int | None:
    number = _finite_number(value)
    return int(number) if number is not None else None


@dataclass(frozen=True)
class TrainedOn:
    """What a checkpoint says about how its model was made: the data, and the validation score of its weights.

    ``score`` is the family's headline (``metric``, e.g. ``val/pckh/Mean``: a percentage) of the latest epoch
    with one, ``score_epoch``; None when the checkpoint stores no metrics. ``dataset`` is None when its config
    names none."""

    dataset: str | None  # the dataset card's name: mpii, flic, synthetic, a user's own
    joint_set: str | None  # the card whose keypoints the model predicts (None: unknown)
    data_format: str | None  # the card's format: synthetic, mpii_h5, flic_h5, coco
    metric: str | None  # the headline key, e.g. val/pckh/Mean
    metric_name: str | None  # as people write it, e.g. PCKh@0.5
    score: float | None
    score_epoch: int | None
    epoch: int | None  # the epoch the weights are from
    variant: str | None
    target_scale: float  # raw heatmap peaks are divided by this (CONFIDENCE_NOTE)
    lineage: Lineage | None = None  # the data, code and params that made it (None: trained before it was recorded)

    @property
    def synthetic(self) -> bool:
        return self.data_format == "synthetic"

    @classmethod
    def from_checkpoint(cls, state: Mapping[str, Any], path: str | Path) -> TrainedOn:
        """From a checkpoint's entries: ``config`` (``dataset``, ``synthetic.joint_set``, ``train.target_scale``),
        ``history`` (per-epoch metric dicts, as train.py saves them) or else ``metrics`` (one dict), ``epoch`` and
        ``variant``. Anything missing is left unknown."""
        config = state.get("config")
        config = config if isinstance(config, Mapping) else {}
        dataset = config.get("dataset") if isinstance(config.get("dataset"), str) else None
        card = config.get("dataset_card") if isinstance(config.get("dataset_card"), Mapping) else None
        family = None
        if dataset is not None or card is not None:
            try:
                family = family_of_checkpoint(config, card)
            except (CardError, ValueError):
                family = None
        score = score_epoch = None
        if family is not None:
            score, score_epoch = _headline_score(state, family.headline)
        variant = state.get("variant")
        return cls(dataset=dataset, joint_set=family.name if family else None,
                   data_format=family.card.format if family else None,
                   metric=family.headline if family else None, metric_name=family.metric if family else None,
                   score=score, score_epoch=score_epoch, epoch=_epoch(state.get("epoch")),
                   variant=variant if isinstance(variant, str) else None,
                   target_scale=confidence_divisor(config, path), lineage=lineage_of_config(config))

    def summary(self) -> str:
        """One line: the data and the score, e.g. ``MPII (real photos), variant hg, epoch 100; validation
        PCKh@0.5 (val/pckh/Mean) 88.12 % at epoch 100 (per-epoch validation, no flip test)``."""
        if self.dataset is None:
            data = "unknown (the checkpoint's config names no dataset)"
        elif self.synthetic:
            data = f"the synthetic people (card {self.joint_set or '?'}), not real photos"
        elif self.joint_set is not None:
            data = f"{self.dataset} (real photos)"
        else:
            data = f"{self.dataset!r} (not a dataset this code knows)"
        made = ", ".join(p for p in (f"variant {self.variant}" if self.variant else "",
                                     f"epoch {self.epoch}" if self.epoch is not None else "") if p)
        if self.score is None:
            why = ("the checkpoint stores no validation metrics" if self.metric else "no known dataset to score")
            score = f"validation score unknown ({why})"
        else:
            where = " on the synthetic validation split" if self.synthetic else ""
            at = f" at epoch {self.score_epoch}" if self.score_epoch is not None else ""
            score = (f"validation {self.metric_name} ({self.metric}) {self.score:.2f} %{at}{where} "
                     "(per-epoch validation, no flip test)")
        return f"{data}{', ' + made if made else ''}; {score}"

    def lineage_line(self) -> str:
        """The lineage in one line (:meth:`hourglass.lineage.Lineage.summary`), or why there is none."""
        if self.lineage is None:
            return "not recorded (a model trained before lineage was recorded, or not by this project's training)"
        return self.lineage.summary()

    def warnings(self) -> list[str]:
        """Lines to warn with (a synthetic-trained model)."""
        return [SYNTHETIC_WARNING] if self.synthetic else []

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the summary line and any warning."""
        return {"dataset": self.dataset, "joint_set": self.joint_set, "synthetic": self.synthetic,
                "metric": self.metric, "metric_name": self.metric_name,
                "score": None if self.score is None else round(self.score, 4), "score_epoch": self.score_epoch,
                "epoch": self.epoch, "variant": self.variant, "target_scale": self.target_scale,
                "summary": self.summary(), "warnings": self.warnings(),
                "lineage": None if self.lineage is None else self.lineage.to_record(),
                "lineage_summary": self.lineage_line()}


def _headline_score(state: Mapping[str, Any], headline: str) -> tuple[float | None, int | None]:
    """(score, its epoch) from the latest ``history`` entry holding a finite ``headline``, else ``metrics``."""
    history = state.get("history")
    if isinstance(history, (list, tuple)):
        for entry in reversed(history):
            if isinstance(entry, Mapping) and _finite_number(entry.get(headline)) is not None:
                return float(entry[headline]), _epoch(entry.get("epoch"))
    metrics = state.get("metrics")
    if isinstance(metrics, Mapping) and _finite_number(metrics.get(headline)) is not None:
        return float(metrics[headline]), _epoch(metrics.get("epoch", state.get("epoch")))
    return None, None


def read_trained_on(loaded: LoadedModel) -> TrainedOn:
    """:class:`TrainedOn` of a loaded model, reading its checkpoint's history and metrics again (memory-mapped:
    the weights are not read a second time); the config and epoch of ``loaded`` when that read fails."""
    try:
        state = torch.load(loaded.path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, OSError, ValueError):  # not a zip-format file: no mmap, read it plainly
        try:
            state = load_checkpoint(loaded.path)
        except CheckpointError:
            state = {}
    if not isinstance(state, Mapping):
        state = {}
    return TrainedOn.from_checkpoint({**state, "config": loaded.config, "variant": loaded.variant,
                                      "epoch": loaded.epoch}, loaded.path)
