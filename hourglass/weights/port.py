"""Import a checkpoint of princeton-vl/pytorch_stacked_hourglass (the official PyTorch port) as one of ours.

``hourglass import CHECKPOINT --out models/<name>`` (or :func:`import_port_checkpoint`) reads the port's file with
``torch.load(weights_only=True)`` -- its ``train.py`` dict ``{'state_dict', 'optimizer', 'epoch'}`` whose keys start
with ``model.module.`` (a ``Trainer`` around ``DataParallel(PoseNet)``), or a bare state dict with or without that
prefix -- and writes ``<out>/checkpoint.pt`` in our format: the weights of a :class:`~hourglass.model.StackedHourglass`
and a config that ``hourglass predict --model``, the evaluate stage and the served model read
(:func:`hourglass.inference.runner.load_model`).

The two networks are the same network (hg.lua's), so the import is a renaming, written out layer by layer in
:mod:`hourglass.weights.port_keys` and checked both ways: every tensor of our network must come from exactly one
tensor of the port's, with the same shape, and every tensor of the port's must be used -- except the ``skip_layer`` of
each ``Residual`` whose input and output widths are equal, which the port registers but never runs (it adds the
input itself); those are dropped and counted. Anything else (a missing or left-over tensor, a shape that does not fit)
raises :class:`PortImportError` naming the first such key, and nothing is written -- save BatchNorm's
``num_batches_tracked`` counters, which files written by PyTorch before 0.4.1 lack and which no evaluation reads:
those are set to 0 and counted.

What is read from the tensors' shapes: ``stacks`` (the number of ``hgs``), ``features`` (the port's ``inp_dim``),
``joints`` (``oup_dim``) and the stem width (twice the 7x7 convolution's 64 channels, our ``stem_width=128``). The
port's hourglass always has one residual per location (our ``modules: 1``) and depth 4 (ours is fixed at 4); its
``increase`` option (wider lower branches) has no counterpart here and fails on the first mis-shaped tensor.

Input convention: the port's ``PoseNet.forward`` takes NHWC tensors and permutes them to NCHW itself; ours takes
NCHW. Both take RGB scaled to [0, 1] with no mean or std subtracted (the port's ``test.py`` feeds ``img / 255`` of an
RGB crop; ours ``hourglass.data.augment.to_float_chw``). So ``ours(x.permute(0, 3, 1, 2))`` equals ``port(x)``; that
layout is the only difference. Both return every stack's heatmaps as ``(N, stacks, joints, 64, 64)``. The port's
stacks add ``merge_preds`` before ``merge_features`` and ours the other way round, which only moves float32 rounding.

Crops: the port cuts the window between the integer parts of ``centre -+ 100 * scale`` and resizes it bilinearly;
ours maps the centre to the crop's middle exactly and anti-aliases large downscales. Given the port's window, ours
reproduces the port's crop of the five real MPII people to 0.20-0.58/255 (mean absolute difference after a 2-px
blur); with our own centring the difference is 0.92-2.31/255, a shift of half a source pixel plus the truncation (under
one input pixel at 256 px, a quarter of a heatmap pixel) (tests/test_port_conventions.py). Our evaluate stage and
``hourglass predict`` decode through the inverse of the crop they cut, so the shift moves no coordinate; what it
costs the port's weights in accuracy was not measured here (the released files are not available offline).

The written config: ``dataset: mpii`` (the port's released models are MPII's 16 joints), the complete ``model``
section (``supervision: intermediate`` -- the port sums every stack's loss -- and ``input_res`` 256 by default),
``targets`` with the flip test on and no shift (the port's ``test.py`` flip-averages, unshifted), ``train`` with
``target_scale: 1`` (its Gaussian targets peak at 1), and ``imported_from``: the file, its sha256, the source
project, its commit when given, the epoch and the dropped tensors. There is no training history, so ``hourglass
predict`` reports the validation score as unknown until the evaluate stage has scored the model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from hourglass.config import PORT_PROJECT
from hourglass.io.checkpoint import CHECKPOINT_NAME, CheckpointError, save_checkpoint
from hourglass.io.digest import file_sha256
from hourglass.model import HOURGLASS_DEPTH, count_parameters, create_model
from hourglass.weights.port_keys import PORT_STEM_CHANNELS, PortArchitecture, port_key_map

PORT_PREFIXES = ("model.module.", "module.")  # Trainer(DataParallel(PoseNet)), DataParallel(PoseNet)
SUPERVISION = "intermediate"  # the port's loss sums every stack's (PoseNet.calc_loss)


class PortImportError(CheckpointError):
    """A file is not a pytorch_stacked_hourglass checkpoint this importer can map; the message names the file and
    the first key or shape that does not fit."""


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_port_checkpoint` wrote and how."""

    path: Path  # the checkpoint written
    source: Path
    sha256: str
    epoch: int | None
    architecture: PortArchitecture
    prefix: str  # the key prefix stripped ("" for a bare PoseNet state dict)
    mapped: int  # tensors copied
    dropped: tuple[str, ...]  # the port's unused skip_layer tensors (keys without the prefix)
    filled: tuple[str, ...]  # our BN num_batches_tracked absent from the file (PyTorch < 0.4.1), set to 0
    parameters: int  # trainable parameters of our network

    @property
    def dropped_layers(self) -> int:
        """Unused ``skip_layer`` convolutions dropped (each a weight and a bias)."""
        return len({key.rsplit(".", 2)[0] for key in self.dropped})

    def summary(self) -> str:
        arch = self.architecture
        epoch = f", epoch {self.epoch}" if self.epoch is not None else ""
        return (f"imported {self.source} ({PORT_PROJECT}{epoch}; sha256 {self.sha256[:12]}) -> {self.path}: "
                f"{arch.stacks} stacks, {arch.features} features, {arch.joints} joints, stem width "
                f"{arch.stem_width}; {self.mapped} tensors mapped, {self.dropped_layers} unused skip_layer "
                f"convolutions ({len(self.dropped)} tensors) dropped; "
                + (f"{len(self.filled)} missing BatchNorm num_batches_tracked set to 0; " if self.filled else "")
                + f"{self.parameters:,} parameters")


# -- reading the port's file ---------------------------------------------------------------------------------------
def read_port_state(path: str | Path) -> tuple[dict[str, Tensor], str, int | None]:
    """``(state dict without its prefix, the prefix, epoch)`` of a port checkpoint, read with ``weights_only``."""
    path = Path(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise PortImportError(f"{path}: checkpoint not found") from None
    except Exception as err:  # truncated, not a torch file, or holding objects weights_only refuses
        raise PortImportError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(raw, Mapping):
        raise PortImportError(f"{path}: holds a {type(raw).__name__}, not a state dict or a dict with 'state_dict'")
    if "format_version" in raw and "model" in raw:
        raise PortImportError(f"{path}: already a stacked-hourglass checkpoint of this project; use it directly")
    epoch = None
    if "state_dict" in raw:
        state, epoch_value = raw["state_dict"], raw.get("epoch")
        if not isinstance(state, Mapping):
            raise PortImportError(f"{path}: 'state_dict' is a {type(state).__name__}, not a state dict")
        if isinstance(epoch_value, (int, float)) and not isinstance(epoch_value, bool):
            epoch = int(epoch_value)
    else:
        state = raw
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise PortImportError(f"{path}: entry {key!r} of the state dict is a {type(value).__name__}, "
                                  "not a tensor")
    if not state:
        raise PortImportError(f"{path}: the state dict is empty")
    first = next(iter(state))
    prefix = next((p for p in PORT_PREFIXES if first.startswith(p)), "")
    stripped: dict[str, Tensor] = {}
    for key, value in state.items():
        if not key.startswith(prefix):
            raise PortImportError(f"{path}: key {key!r} lacks the prefix {prefix!r} of the first key {first!r}")
        stripped[key[len(prefix):]] = value
    return stripped, prefix, epoch


def _shape_of(state: Mapping[str, Tensor], key: str, ndim: int, where: str) -> tuple[int, ...]:
    tensor = state.get(key)
    if tensor is None:
        raise PortImportError(f"{where}: no tensor {key!r}; not a pytorch_stacked_hourglass PoseNet")
    if tensor.ndim != ndim:
        raise PortImportError(f"{where}: {key!r} has shape {tuple(tensor.shape)}, expected {ndim} dimensions")
    return tuple(tensor.shape)


def infer_architecture(state: Mapping[str, Tensor], where: str = "checkpoint") -> PortArchitecture:
    """Stacks, features, joints and stem width from the tensors' shapes (keys without prefix); also checks the
    hourglass depth, which ours fixes at 4."""
    stacks = len({m.group(1) for key in state if (m := re.match(r"hgs\.(\d+)\.", key))})
    if stacks == 0:
        raise PortImportError(f"{where}: no 'hgs.<i>.' tensors; not a pytorch_stacked_hourglass PoseNet")
    stem = _shape_of(state, "pre.0.conv.weight", 4, where)
    features = _shape_of(state, "pre.4.conv3.conv.weight", 4, where)[0]
    joints = _shape_of(state, "outs.0.conv.weight", 4, where)[0]
    # the deepest 'low2.' chain of the first hourglass: depth - 1 nested hourglasses, then the bottom residual
    chain = max((len(re.match(r"hgs\.0\.0\.((?:low2\.)*)", key).group(1)) // len("low2.")
                 for key in state if key.startswith("hgs.0.0.")), default=0)
    if chain != HOURGLASS_DEPTH:
        raise PortImportError(f"{where}: the port's hourglass has depth {chain} (nested 'low2'), ours "
                              f"{HOURGLASS_DEPTH}")
    arch = PortArchitecture(stacks=stacks, features=features, joints=joints, stem_width=2 * stem[0])
    if features < 4 or features % 4:
        raise PortImportError(f"{where}: features {features} (from 'pre.4.conv3.conv.weight') is not a positive "
                              "multiple of 4, which our network needs")
    if stem[0] < 2 or stem[0] % 2:  # the port's is 64 (stem_width 128); ours needs a multiple of 4
        raise PortImportError(f"{where}: 'pre.0.conv.weight' has shape {stem}; its {stem[0]} output channels give "
                              f"no stem width our network takes (the port's has {PORT_STEM_CHANNELS})")
    return arch


def convert_state_dict(state: Mapping[str, Tensor], arch: PortArchitecture, where: str = "checkpoint",
                       prefix: str = "") -> tuple[dict[str, Tensor], list[str], list[str]]:
    """``(our network's state dict, the unused port keys dropped, our BN counters filled)`` from the port's state
    dict (keys without prefix). Every tensor must be present with our shape and every port tensor used; the first
    that is not raises. The one exception: BatchNorm's ``num_batches_tracked``, which PyTorch before 0.4.1 did not
    save (the port's README says its models were made with 0.4) and which no forward pass reads unless BN momentum
    is None (ours is 0.1); missing ones are set to 0 and listed. Errors name keys as the file has them (with
    ``prefix``)."""
    network = create_model(**arch.network_kwargs())
    target = network.state_dict()
    mapping, unused = port_key_map(arch)
    if set(mapping) != set(target):  # the map must cover our network exactly: a check of this code
        stray = sorted(set(mapping) ^ set(target))
        raise AssertionError(f"port_key_map does not cover StackedHourglass: {stray[:5]}")
    converted: dict[str, Tensor] = {}
    filled: list[str] = []
    for ours in target:
        port = mapping[ours]
        tensor = state.get(port)
        if tensor is None and ours.endswith(".num_batches_tracked"):
            converted[ours] = torch.zeros_like(target[ours])
            filled.append(ours)
            continue
        if tensor is None:
            raise PortImportError(f"{where}: missing tensor {prefix + port!r} (for our {ours!r}); the file is not a "
                                  f"complete {arch.stacks}-stack PoseNet")
        if tuple(tensor.shape) != tuple(target[ours].shape):
            raise PortImportError(f"{where}: {prefix + port!r} has shape {tuple(tensor.shape)}, but our {ours!r} needs "
                                  f"{tuple(target[ours].shape)} ({arch.stacks} stacks, {arch.features} features, "
                                  f"{arch.joints} joints)")
        if tensor.is_floating_point() != target[ours].is_floating_point():
            raise PortImportError(f"{where}: {prefix + port!r} is {tensor.dtype}, our {ours!r} {target[ours].dtype}")
        converted[ours] = tensor.detach().to(dtype=target[ours].dtype).contiguous().clone()
    used = set(mapping.values())
    dropped = [key for key in unused if key in state]
    for key in state:
        if key not in used and key not in unused:
            raise PortImportError(f"{where}: left-over tensor {prefix + key!r} has no place in our network (shape "
                                  f"{tuple(state[key].shape)})")
    # the unused skip layers are not required: a state dict saved without them imports the same
    network.load_state_dict(converted)  # strict: one more check that every key and shape fits
    return converted, dropped, filled


def import_port_checkpoint(
    path: str | Path,
    out_dir: str | Path,
    *,
    input_res: int = 256,
    dataset: str = "mpii",
    variant: str | None = None,
    source_commit: str | None = None,
    overwrite: bool = False,
) -> ImportResult:
    """Convert the port checkpoint ``path`` into ``out_dir/checkpoint.pt`` (``out_dir`` may also name the ``.pt``
    file itself), atomically; nothing is written when it fails (:class:`PortImportError`). ``variant`` defaults to
    the output directory's name (the evaluate stage ``evaluate@<variant>`` checks it). An existing checkpoint is
    only replaced with ``overwrite``."""
    source = Path(path)
    out = Path(out_dir)
    target = out if out.suffix == ".pt" else out / CHECKPOINT_NAME
    if target.exists() and not overwrite:
        raise PortImportError(f"{target}: already exists (pass overwrite=True / --force to replace it)")
    if input_res < 64 or input_res % 64:
        raise PortImportError(f"input_res {input_res}: must be a positive multiple of 64")
    state, prefix, epoch = read_port_state(source)
    arch = infer_architecture(state, str(source))
    weights, dropped, filled = convert_state_dict(state, arch, str(source), prefix)
    sha256 = file_sha256(source)
    name = variant if variant is not None else (target.parent.name or None)
    model_section = {"stacks": arch.stacks, "features": arch.features, "modules": 1, "supervision": SUPERVISION,
                     "stem_width": arch.stem_width, "input_res": int(input_res)}
    config = {
        "dataset": dataset,
        "model": model_section,
        "targets": {"flip_test": True, "flip_shift": False},
        "train": {"target_scale": 1.0},
        "imported_from": {
            "path": str(source.resolve()), "sha256": sha256, "project": PORT_PROJECT, "commit": source_commit,
            "epoch": epoch, "key_prefix": prefix, "joints": arch.joints,
            "dropped_unused_skip_layers": len({key.rsplit(".", 2)[0] for key in dropped}),
            "dropped_tensors": len(dropped),
            "filled_num_batches_tracked": len(filled),
            "input": "ours NCHW, the port NHWC; both RGB in [0, 1]",
        },
    }
    network = create_model(**arch.network_kwargs())
    save_checkpoint({"model": weights, "network": network.config.as_record(), "config": config, "variant": name,
                     "epoch": epoch}, target)
    parameters = count_parameters(network)
    return ImportResult(path=target, source=source, sha256=sha256, epoch=epoch, architecture=arch, prefix=prefix,
                        mapped=len(weights) - len(filled), dropped=tuple(dropped), filled=tuple(filled),
                        parameters=parameters)


IMPORT_EXPERIMENT = "hourglass-imports"


def register_imported(checkpoint: str | Path, name: str, tracking_uri: str | None = None,
                      experiment: str = IMPORT_EXPERIMENT) -> tuple[str, str]:
    """Log an imported checkpoint as the pose pyfunc (:func:`hourglass.tracking.runs.log_pose_model`, as training logs
    its models) in one MLflow run of ``experiment`` and register it as ``name``; the version is tagged like a trained
    one (variant, dataset, architecture, metric, epochs) plus ``source.project``, ``source.sha256`` and
    ``source.commit``.
    Returns ``(model URI, version)``. Unlike training's best-effort logging, a failing store raises."""
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient
    from mlflow.tracking.context.registry import resolve_tags

    from hourglass.io.checkpoint import load_checkpoint
    from hourglass.tracking.runs import flatten_params, log_pose_model
    from hourglass.tracking.store import default_tracking_uri, ensure_experiment, version_tags

    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        checkpoint = checkpoint / CHECKPOINT_NAME
    state = load_checkpoint(checkpoint)
    config = dict(state.get("config") or {})
    source = dict(config.get("imported_from") or {})
    if not source:
        raise PortImportError(f"{checkpoint}: has no 'imported_from' record; not an imported checkpoint")
    variant, epoch = state.get("variant"), state.get("epoch")
    source_tags = {"source.project": str(source.get("project") or PORT_PROJECT),
                   "source.sha256": str(source.get("sha256") or "")}
    if source.get("commit"):
        source_tags["source.commit"] = str(source["commit"])
    uri = tracking_uri or default_tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    experiment_id = ensure_experiment(client, experiment)
    run_id = client.create_run(experiment_id, run_name=f"import-{variant or checkpoint.parent.name}",
                               tags=resolve_tags({**source_tags, "hourglass.imported": "true"})).info.run_id
    try:
        params = [Param(k, v[:6000]) for k, v in flatten_params(config).items()]
        for i in range(0, len(params), 100):  # log_batch caps a request at 100 params
            client.log_batch(run_id, params=params[i:i + 100])
        info = log_pose_model(uri, run_id, checkpoint, name)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    version = str(info.registered_model_version)
    tags = {**version_tags(config, variant if isinstance(variant, str) else None,
                           int(epoch) if epoch is not None else None), **source_tags}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return info.model_uri, version
