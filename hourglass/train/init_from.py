"""Start a training run from another model's weights (``train.init_from``): fine-tuning, not resuming.

The source is any model :mod:`hourglass.weights.source` can name: a checkpoint of ours (``models/<variant>/``, one
written by ``hourglass import`` from the official PyTorch port's release, or its ``checkpoint.pt``) or an MLflow
model URI (``models:/hourglass@champion``). Only its weights are taken; the optimiser, the learning-rate schedule,
the epoch counter and the sampler start fresh, and the run trains its own ``train.epochs``.

Every tensor of the new network must come from the source under the same name with the same shape: the ``model``
section has to describe the source's architecture (stacks, features, modules, stem width), and a difference is an
error naming the first tensor that does not fit. Two exceptions, both logged:

* the joint-count layers -- each stack's ``heatmaps`` (features -> joints), ``remap_heatmaps`` (joints -> features)
  and the ``auxiliary_heatmaps`` of ``supervision: resolutions`` -- keep their fresh initialisation when the source
  predicts a different number of joints (fine-tuning MPII's 16 joints to FLIC's 11);
* the ``auxiliary_heatmaps`` exist only to be trained: a source without them (any other supervision) leaves them
  freshly initialised, and a source's are dropped when this network has none.

A warm start (``flows.warm_start: champion``, :func:`warm_start`) is the same fine-tuning with the source chosen for
the run: the current champion of the dataset card's registered model, used only when its version says it was
trained on the same card and has the same architecture; otherwise the run trains fresh and says why. An explicit
``train.init_from`` wins over it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from hourglass.config import ParamsConfig
from hourglass.io.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from hourglass.io.digest import file_sha256
from hourglass.tracking.store import architecture, registered_name
from hourglass.weights.source import resolve_checkpoint

JOINT_LAYERS = ("heatmaps.", "remap_heatmaps.", "auxiliary_heatmaps.")  # whose shapes follow the joint count
TRAINING_ONLY_LAYERS = ("auxiliary_heatmaps.",)


class InitFromError(CheckpointError):
    """The source's weights do not fit the network being trained; the message names the source and the tensor."""


@dataclass(frozen=True)
class InitReport:
    """What :func:`initialise_from` did, for the log, the MLflow params and the run's ``config.yaml``."""

    source: str  # as given in train.init_from
    sha256: str  # of the checkpoint file read
    source_joints: int
    joints: int
    loaded: int  # tensors copied from the source
    reinitialised: tuple[str, ...]  # layers left at their fresh initialisation
    dropped: tuple[str, ...]  # source layers this network has no place for

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "sha256": self.sha256, "source_joints": self.source_joints,
                "joints": self.joints, "loaded_tensors": self.loaded, "reinitialised": list(self.reinitialised),
                "dropped": list(self.dropped)}

    def describe(self) -> str:
        """One log line: where the weights came from and which layers did not."""
        text = f"initialised from {self.source} (sha256 {self.sha256[:12]}): {self.loaded} tensors"
        if self.reinitialised:
            why = (f"the source predicts {self.source_joints} joints, this data {self.joints}"
                   if self.source_joints != self.joints else "the source has no such layers")
            text += f"; re-initialised {', '.join(self.reinitialised)} ({why})"
        if self.dropped:
            text += f"; dropped the source's {', '.join(self.dropped)} (not in this network)"
        return text


def _layer(key: str) -> str:
    """``heatmaps.1.weight`` -> ``heatmaps.1``."""
    return key.rsplit(".", 1)[0]


def _is(key: str, prefixes: tuple[str, ...]) -> bool:
    return key.startswith(prefixes)


def _source_joints(weights: Mapping[str, Tensor], where: str) -> int:
    head = weights.get("heatmaps.0.weight")
    if not isinstance(head, Tensor) or head.ndim != 4:
        raise InitFromError(f"{where}: no 'heatmaps.0.weight' output layer; not a stacked hourglass checkpoint")
    return int(head.shape[0])


def merge_weights(network: nn.Module, weights: Mapping[str, Tensor], where: str,
                  source: str = "") -> tuple[dict[str, Tensor], InitReport]:
    """The state dict to load into ``network`` -- the source's tensors where they fit, the network's own where the
    rules above allow -- and the report of what came from where (``sha256`` left empty)."""
    own = network.state_dict()
    source_joints = _source_joints(weights, where)
    joints = _source_joints(own, "the network")
    state: dict[str, Tensor] = {}
    fresh: dict[str, None] = {}
    for key, mine in own.items():
        theirs = weights.get(key)
        if theirs is None:
            if _is(key, TRAINING_ONLY_LAYERS):
                fresh[_layer(key)] = None
                state[key] = mine
                continue
            raise InitFromError(f"{where}: has no tensor {key!r} that this network needs; train.init_from needs a "
                                f"model of the same architecture (the model section: stacks, features, modules, "
                                f"stem_width)")
        if tuple(theirs.shape) != tuple(mine.shape):
            if _is(key, JOINT_LAYERS) and source_joints != joints:
                fresh[_layer(key)] = None
                state[key] = mine
                continue
            raise InitFromError(f"{where}: tensor {key!r} is {tuple(theirs.shape)}, this network's is "
                                f"{tuple(mine.shape)}; set the model section to the source's architecture")
        state[key] = theirs.to(dtype=mine.dtype)
    # a joint-count layer whose bias happens to fit (remap_heatmaps: features wide) is re-initialised whole
    for key in own:
        if _layer(key) in fresh:
            state[key] = own[key]
    dropped: dict[str, None] = {}
    for key in weights:
        if key not in own:
            if not _is(key, TRAINING_ONLY_LAYERS):
                raise InitFromError(f"{where}: tensor {key!r} has no place in this network; train.init_from needs "
                                    f"a model of the same architecture (the model section: stacks, features, "
                                    f"modules, stem_width)")
            dropped[_layer(key)] = None
    loaded = sum(1 for key in state if _layer(key) not in fresh)
    return state, InitReport(source=source, sha256="", source_joints=source_joints, joints=joints, loaded=loaded,
                             reinitialised=tuple(fresh), dropped=tuple(dropped))


def initialise_from(network: nn.Module, source: str | Path, tracking_uri: str | None = None,
                    setting: str = "train.init_from") -> InitReport:
    """Load ``source``'s weights into ``network`` in place, by the rules of this module. The file is read with
    ``weights_only=True``; an MLflow URI's checkpoint is downloaded to a temporary directory first. ``setting``
    names what chose the source in error messages."""
    with tempfile.TemporaryDirectory(prefix="hourglass-init-") as tmp:
        path = resolve_checkpoint(str(source), tmp, tracking_uri)
        if path.is_dir():
            path = path / CHECKPOINT_NAME
        where = f"{setting} {source}" + (f" ({path})" if str(path) != str(source) else "")
        try:
            state = load_checkpoint(path)
        except CheckpointError as err:
            hint = ("; a checkpoint of princeton-vl/pytorch_stacked_hourglass is converted first: hourglass import "
                    "FILE --out models/<name>") if path.is_file() else ""
            raise InitFromError(f"{where}: {err}{hint}") from None
        weights = state.get("model")
        if not isinstance(weights, Mapping):
            raise InitFromError(f"{where}: the checkpoint holds no 'model' weights")
        merged, report = merge_weights(network, weights, where, str(source))
        digest = file_sha256(path)
    network.load_state_dict(merged)
    return replace(report, sha256=digest)


# -- warm start: flows.warm_start = champion ------------------------------------------------------------------------
CHAMPION_ALIAS = "champion"


@dataclass(frozen=True)
class WarmStart:
    """What :func:`warm_start` did: ``report`` when the network now holds the champion's weights (None: it kept its
    fresh initialisation), and ``note``, the one line that says which champion or why not."""

    report: InitReport | None
    note: str
    version: str | None = None  # the champion's registered version, when there is one


def _fresh(note: str, version: str | None = None) -> WarmStart:
    return WarmStart(report=None, note=f"trained fresh: {note}", version=version)


def warm_start(network: nn.Module, params: ParamsConfig, tracking_uri: str) -> WarmStart:
    """Load the current champion of ``params``'s card (``models:/<card model>@champion``) into ``network`` when its
    version's tags say it was trained on the same card (digest) and has the same architecture (the ``model``
    section); otherwise leave ``network`` as it is and say why (no registered model, no champion yet, another card,
    another architecture, weights that do not fit, an unreadable store). The weights are read by version, not by
    alias, so a promotion during the download cannot mix two models."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    name = registered_name(params)
    if name is None:
        return _fresh("mlflow.registered_model is null, so there is no champion to start from")
    alias = f"models:/{name}@{CHAMPION_ALIAS}"
    try:
        champion = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).get_model_version_by_alias(
            name, CHAMPION_ALIAS)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return _fresh(f"no champion yet ({alias} does not exist in {tracking_uri})")
        return _fresh(f"the MLflow store {tracking_uri} could not be read ({err.error_code}: {err.message})")
    version = str(champion.version)
    tags = champion.tags or {}
    card = params.card()
    theirs = tags.get("lineage.card_digest") or tags.get("dataset_card") or ""
    if not theirs or not card.digest().startswith(theirs):
        recorded = f"card {tags.get('dataset', '?')} {theirs[:12]}" if theirs else "no dataset card"
        return _fresh(f"another card: {alias} (version {version}) records {recorded}, this run's is card "
                      f"{params.dataset} {card.digest()[:12]}", version)
    mine, theirs_arch = architecture(params.model.model_dump(mode="json")), tags.get("architecture", "")
    if theirs_arch != mine:
        return _fresh(f"another architecture: {alias} (version {version}) is {theirs_arch or 'not recorded'}, "
                      f"this run's model section is {mine}", version)
    source = f"models:/{name}/{version}"
    try:
        report = initialise_from(network, source, tracking_uri, setting="flows.warm_start")
    except InitFromError as err:  # the tags said it fits; the weights say otherwise
        return _fresh(f"the weights of {alias} (version {version}) do not fit: {err}", version)
    return WarmStart(report=report, note=f"fine-tuned from {alias} (version {version})", version=version)
