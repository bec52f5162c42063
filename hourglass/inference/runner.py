"""Inference shared by evaluation, per-epoch validation and prediction: load a trained network from a checkpoint and
run it over a dataset of people, returning every stack's decoded joints in original-image coordinates.

What one forward pass yields per person (pose-hg-train ``src/train.lua`` valid/predict, ``src/util/pose.lua``):

* the model's heatmaps, and with the flip test those of the mirrored input mirrored back with the left/right swap
  and averaged (``hourglass.heatmaps.flip_average``; HRNet's 1-px shift only when asked);
* the *final* prediction from :func:`hourglass.supervision.final_heatmaps` -- the last stack, or for ``supervision:
  add`` the sum of the stacks, which is what that model was trained to output;
* every stack's own raw output as well, so intermediate stacks can be scored against the final one (Figure 5);
* decoding by argmax plus the quarter-pixel step toward the higher neighbour, then the inverse crop transform of the
  sample's ``center``/``scale`` (unaugmented validation samples are exactly that crop). Coordinates stay float: the
  original truncates to integers, which only adds error.

Flipping is linear, so flip-averaging each stack and then summing (``add``) equals summing and then averaging.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from hourglass.config import ModelConfig
from hourglass.data.workers import worker_context
from hourglass.heatmaps import decode, flip_average, heatmaps_to_image
from hourglass.io.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from hourglass.model import StackedHourglass, create_model
from hourglass.precision import Precision
from hourglass.supervision import final_heatmaps

# The batch hook gets the collated batch and the model's raw (unflipped) outputs (N, stacks, J, h, w), e.g. for a loss.
BatchHook = Callable[[Mapping[str, Any], Tensor], None]
# What computes a batch's raw outputs when it is not the module in eager torch: hourglass.inference.runtimes.Runtime.
Forward = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class LoadedModel:
    """A network rebuilt from a checkpoint, with what the checkpoint says about how it was made."""

    model: StackedHourglass
    model_config: ModelConfig
    config: dict[str, Any]  # the resolved params the run was trained with
    variant: str | None
    epoch: int | None
    path: Path


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the network saved in ``path`` (a checkpoint file, or a directory holding ``checkpoint.pt``) in eval
    mode. The architecture comes from the checkpoint's own config, the joint count from its weights, so a model is
    always rebuilt as trained whatever params.yaml now says. Raises :class:`CheckpointError` naming the file."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    state = load_checkpoint(path, map_location=device)
    weights, config = state.get("model"), state.get("config")
    if not isinstance(weights, Mapping) or not isinstance(config, Mapping) or "model" not in config:
        raise CheckpointError(f"{path}: checkpoint lacks the 'model' weights or the 'config' with a 'model' section")
    try:
        model_config = ModelConfig.model_validate(config["model"])
    except ValueError as err:
        raise CheckpointError(f"{path}: invalid model config in the checkpoint: {err}") from None
    try:
        model = create_model(**_network_arguments(state, model_config, path))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: invalid network arguments in the checkpoint: {err}") from None
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the model its config describes ({model_config}): "
                              f"{err}") from None
    epoch = state.get("epoch")
    return LoadedModel(model=model.to(device).eval(), model_config=model_config, config=dict(config),
                       variant=state.get("variant"), epoch=int(epoch) if epoch is not None else None, path=path)


def _network_arguments(state: Mapping[str, Any], model_config: ModelConfig, path: Path) -> dict[str, Any]:
    """``create_model``'s arguments: the checkpoint's ``network`` record (``StackedHourglass.config``), or for a file
    written before checkpoints carried it (the test fixtures, the shared anchor data's checkpoints, older training,
    serving and imported checkpoints) the config's ``model`` section with the joint count read off the output layer."""
    network = state.get("network")
    if isinstance(network, Mapping):
        return dict(network)
    head = state["model"].get("heatmaps.0.weight")
    if not isinstance(head, Tensor) or head.ndim != 4:
        raise CheckpointError(f"{path}: weights have no 'heatmaps.0.weight' output layer; not a StackedHourglass")
    return {**model_config.network_kwargs(), "joints": int(head.shape[0])}


@dataclass(frozen=True)
class Predictions:
    """Decoded joints of N people (0-based original-image pixels) and the ground truth their samples carried.

    ``coords``/``maxvals`` are the final prediction, ``stack_coords``/``stack_maxvals`` each stack's own; ``rows`` is
    the samples' ``row`` (for ``PoseDataset`` the row of annotations.parquet).
    """

    rows: np.ndarray  # (N,) int64
    coords: np.ndarray  # (N, J, 2) float64
    maxvals: np.ndarray  # (N, J) float32
    stack_coords: np.ndarray  # (N, S, J, 2) float64
    stack_maxvals: np.ndarray  # (N, S, J) float32
    joints: np.ndarray  # (N, J, 2) ground truth, NaN where not annotated
    annotated: np.ndarray  # (N, J) bool
    normalize: np.ndarray  # (N,) head or torso size

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def concatenate(cls, parts: Sequence[Predictions]) -> Predictions:
        """One set from several (batches, or the shards of several processes)."""
        if not parts:
            raise ValueError("no predictions to concatenate (the dataset is empty)")
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in cls.__dataclass_fields__})

    def sorted_by_row(self) -> Predictions:
        """The same people ordered by ``rows`` (stable), e.g. to undo a distributed sampler's interleaving."""
        order = np.argsort(self.rows, kind="stable")
        return Predictions(**{name: getattr(self, name)[order] for name in self.__dataclass_fields__})


@torch.no_grad()
def predict_heatmaps(model: StackedHourglass, images: Tensor, precision: Precision,
                     flip_perm: Sequence[int] | None = None, shift: bool = False,
                     outputs: Tensor | None = None, forward: Forward | None = None) -> tuple[Tensor, Tensor]:
    """``(final (N, J, h, w), stacks (N, S, J, h, w))`` float32 heatmaps of ``images`` already on the device.

    With ``flip_perm`` (``JointSet.flip``) each is the flip-test average. ``outputs`` (the model's raw output for
    ``images``) may be passed when the caller already has it, so the unflipped pass is not repeated. ``forward``
    computes the raw outputs instead of ``model`` (an exported runtime, :mod:`hourglass.inference.runtimes`);
    ``model`` then only says how its stacks are combined (its ``config.supervision``).
    """
    run = forward if forward is not None else (lambda x: _forward(model, x, precision))
    if outputs is None:
        outputs = run(images)
    stacks = outputs.float()
    if flip_perm is not None:
        mirrored = run(images.flip(-1)).float()
        stacks = flip_average(stacks, mirrored, flip_perm, shift)
    return final_heatmaps(stacks, model.config.supervision), stacks


def _forward(model: nn.Module, images: Tensor, precision: Precision) -> Tensor:
    with precision.autocast():
        return model(images.contiguous(memory_format=precision.memory_format)).stacks


def decode_to_image(final: Tensor, stacks: Tensor, center: np.ndarray,
                    scale: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Heatmaps -> ``(coords, maxvals, stack_coords, stack_maxvals)`` in the original image of each crop."""
    res = final.shape[-1]
    coords, maxvals = decode(final.cpu())
    stack_coords, stack_maxvals = decode(stacks.cpu())
    return (heatmaps_to_image(coords, center, scale, res), maxvals.numpy(),
            heatmaps_to_image(stack_coords, center, scale, res), stack_maxvals.numpy())


def predict_dataset(
    model: StackedHourglass,
    dataset: Dataset,
    precision: Precision,
    *,
    flip_perm: Sequence[int] | None = None,
    shift: bool = False,
    batch_size: int = 16,
    workers: int = 0,
    indices: Sequence[int] | None = None,
    on_batch: BatchHook | None = None,
    worker_init_fn: Callable[[int], None] | None = None,
    progress: bool = False,
    forward: Forward | None = None,
) -> Predictions:
    """Run ``model`` over ``dataset`` (or its ``indices``) in eval mode and decode every person.

    ``flip_perm`` turns the flip test on (pass ``dataset.joint_set.flip``). Samples must carry ``image``, ``row``,
    ``center``, ``scale``, ``joints``, ``annotated`` and ``normalize`` (``PoseDataset`` validation samples do).
    ``on_batch`` sees each batch with the raw unflipped outputs. The model's train/eval mode is restored. ``forward``
    runs the batches instead of ``model`` (an exported runtime; see :func:`predict_heatmaps`).
    No OpenCV thread setting in the workers by default: ``cv2.setNumThreads`` in a worker forked from a process
    whose OpenCV pool is running can hang (seen under DDP), so the caller opts in with ``worker_init_fn``.
    """
    subset = dataset if indices is None else Subset(dataset, list(indices))
    loader = DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        multiprocessing_context=worker_context(workers),
                        worker_init_fn=worker_init_fn, pin_memory=precision.device.type == "cuda")
    was_training = model.training
    model.eval()
    parts: list[Predictions] = []
    try:
        with torch.no_grad():
            for batch in tqdm(loader, desc="predict", unit="batch", disable=not progress, leave=False):
                images = batch["image"].to(precision.device, non_blocking=True)
                outputs = forward(images) if forward is not None else _forward(model, images, precision)
                if on_batch is not None:
                    on_batch(batch, outputs)
                final, stacks = predict_heatmaps(model, images, precision, flip_perm, shift, outputs=outputs,
                                                 forward=forward)
                center = batch["center"].numpy().astype(np.float64)
                scale = batch["scale"].numpy().astype(np.float64)
                coords, maxvals, stack_coords, stack_maxvals = decode_to_image(final, stacks, center, scale)
                parts.append(Predictions(
                    rows=batch["row"].numpy().astype(np.int64), coords=coords, maxvals=maxvals,
                    stack_coords=stack_coords, stack_maxvals=stack_maxvals,
                    joints=batch["joints"].numpy().astype(np.float64),
                    annotated=batch["annotated"].numpy().astype(bool),
                    normalize=batch["normalize"].numpy().astype(np.float64)))
    finally:
        model.train(was_training)
    return Predictions.concatenate(parts)
