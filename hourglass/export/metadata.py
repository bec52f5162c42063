"""What travels inside an exported model, so a runtime needs no other file: the input size, the keypoints and their
flip permutation (the flip test stays in the runner), the confidence divisor (``train.target_scale``), the dataset
card's name and digest, the variant and epoch, the source checkpoint's SHA-256, the network's constructor arguments
and the training config (from which :class:`~hourglass.inference.trained_on.TrainedOn` is rebuilt as for the
checkpoint itself); an int8 export adds ``quantization`` (:mod:`hourglass.export.int8`: the settings, the calibration
set and the accuracy drop measured before it was written).

On disk it is a flat string map, each value JSON text under a ``hourglass.`` key: ONNX ``metadata_props`` and
OpenVINO ``rt_info`` hold exactly that, and ``onnx``/``ovc`` tools show it readably.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from hourglass.config import ModelConfig
from hourglass.dataset_card import CardError
from hourglass.family import family_of_checkpoint
from hourglass.inference.runner import LoadedModel
from hourglass.inference.trained_on import TrainedOn
from hourglass.io.digest import file_sha256
from hourglass.joints import JointSet
from hourglass.model import create_model

PREFIX = "hourglass."
FORMAT_VERSION = 1
INPUT_NAME = "images"  # (N, 3, R, R) float32 RGB in [0, 1]
OUTPUT_NAME = "heatmaps"  # (N, stacks, joints, R/4, R/4) float32, every stack as StackedHourglass.forward
OPTIONAL = frozenset({"quantization"})  # fields a file may lack (added after format version 1 was first written)


class MetadataError(ValueError):
    """An export's metadata is missing or malformed; the message names the file and the key."""


@dataclass(frozen=True)
class ExportMetadata:
    """The facts of one exported network (see the module docstring); every field is plain JSON."""

    format_version: int
    input_res: int
    output_res: int
    keypoints: list[str]
    flip_perm: list[int]
    target_scale: float
    flip_test: bool
    flip_shift: bool
    dataset_card: str | None
    dataset_card_digest: str | None
    variant: str | None
    epoch: int | None
    checkpoint_sha256: str
    network: dict[str, Any]  # StackedHourglass's constructor arguments (stacks, supervision, ...)
    config: dict[str, Any]  # the resolved training config stored in the checkpoint
    metrics: dict[str, Any]  # the headline validation score and its epoch, as TrainedOn reads "metrics"
    # int8 exports only (hourglass.export.int8): the method, the calibration set and the measured accuracy drop.
    # Optional on reading, so fp32 exports written before it still load.
    quantization: dict[str, Any] | None = None

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, joints: JointSet, trained_on: TrainedOn) -> ExportMetadata:
        """The metadata of a checkpoint loaded for prediction (its joint set and what it was trained on)."""
        config = loaded.config
        targets = config.get("targets") or {}
        res = int(loaded.model_config.input_res)
        metrics: dict[str, Any] = {}
        if trained_on.metric is not None and trained_on.score is not None:
            metrics = {trained_on.metric: trained_on.score, "epoch": trained_on.score_epoch}
        return cls(format_version=FORMAT_VERSION, input_res=res, output_res=res // 4, keypoints=list(joints.names),
                   flip_perm=[int(i) for i in joints.flip], target_scale=float(trained_on.target_scale),
                   flip_test=bool(targets.get("flip_test", True)), flip_shift=bool(targets.get("flip_shift", False)),
                   dataset_card=trained_on.joint_set or trained_on.dataset,
                   dataset_card_digest=_card_digest(config, trained_on), variant=loaded.variant,
                   epoch=loaded.epoch, checkpoint_sha256=file_sha256(loaded.path),
                   network=loaded.model.config.as_record(), config=dict(config), metrics=metrics)

    def to_props(self) -> dict[str, str]:
        """The flat ``hourglass.<field>`` -> JSON text map written into the model file."""
        return {f"{PREFIX}{key}": json.dumps(value, sort_keys=True, allow_nan=False)
                for key, value in asdict(self).items()}

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str | Path) -> ExportMetadata:
        """Read :meth:`to_props`'s map back; a missing key, bad JSON or another format version is a
        :class:`MetadataError` naming ``source`` and the key."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            key = f"{PREFIX}{field.name}"
            if key not in props and field.name in OPTIONAL:
                continue
            if key not in props:
                raise MetadataError(f"{source}: no '{key}' in the model's metadata; not exported by `hourglass "
                                    "export` (or by an older version), export it again")
            try:
                values[field.name] = json.loads(props[key])
            except json.JSONDecodeError as err:
                raise MetadataError(f"{source}: metadata '{key}' is not JSON ({err})") from None
        if values["format_version"] != FORMAT_VERSION:
            raise MetadataError(f"{source}: metadata '{PREFIX}format_version' is {values['format_version']!r}; this "
                                f"code reads version {FORMAT_VERSION}")
        if len(values["flip_perm"]) != len(values["keypoints"]):
            raise MetadataError(f"{source}: metadata '{PREFIX}flip_perm' has {len(values['flip_perm'])} entries for "
                                f"{len(values['keypoints'])} keypoints")
        return cls(**values)

    def loaded_model(self, path: str | Path) -> LoadedModel:
        """The exported network described as a loaded checkpoint, its module built on the meta device (no weights,
        no memory): its joints, supervision mode and parameter count read as for a checkpoint, while the export's
        runtime does the computing."""
        try:
            model_config = ModelConfig.model_validate(self.config["model"])
            with torch.device("meta"):
                model = create_model(**self.network).eval()
        except (KeyError, TypeError, ValueError) as err:
            raise MetadataError(f"{path}: metadata '{PREFIX}config' / '{PREFIX}network' do not describe a network: "
                                f"{err}") from None
        return LoadedModel(model=model, model_config=model_config, config=self.config, variant=self.variant,
                           epoch=self.epoch, path=Path(path))

    def checkpoint_state(self) -> dict[str, Any]:
        """The checkpoint entries :class:`TrainedOn` and the predictor read (config, variant, epoch, metrics)."""
        return {"config": self.config, "variant": self.variant, "epoch": self.epoch, "metrics": self.metrics}


def _card_digest(config: Mapping[str, Any], trained_on: TrainedOn) -> str | None:
    """The card's digest as training recorded it (lineage), else that of the card the config stores or names."""
    if trained_on.lineage is not None:
        return trained_on.lineage.card_digest
    try:
        return family_of_checkpoint(config, config.get("dataset_card")).card.digest()
    except (CardError, ValueError):
        return None
