"""The training criterion, built once per run from the params and passed to the loop, the per-epoch validation and
the benchmarks: the original ``nn.ParallelCriterion`` of per-output MSEs with equal weights, over the outputs the
supervision mode says (:mod:`hourglass.supervision`), plus for ``resolutions`` (HG-Int) the lower-resolution maps
against the max-pooled target (:mod:`hourglass.train.losses` holds the two sums)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor, nn

from hourglass.model import HeatmapOutputs
from hourglass.network_config import Supervision
from hourglass.precision import Precision
from hourglass.supervision import supervised
from hourglass.train.losses import auxiliary_loss, heatmap_loss


@dataclass(frozen=True)
class HeatmapCriterion:
    """The loss of a supervision mode, with the targets scaled by ``target_scale`` (``train.target_scale``)."""

    supervision: Supervision
    target_scale: float = 1.0

    def __call__(self, outputs: HeatmapOutputs, target: Tensor) -> Tensor:
        """The training loss: the supervised stacks against ``target`` (N, J, H, W), plus the lower-resolution maps
        when the network returned any (``resolutions``)."""
        loss = heatmap_loss(supervised(outputs.stacks, self.supervision), target, self.target_scale)
        if outputs.levels:
            loss = loss + auxiliary_loss(outputs.levels, target, self.target_scale)
        return loss

    def validation_loss(self, stacks: Tensor, target: Tensor) -> Tensor:
        """The full-resolution part only, so the validation loss stays comparable across variants."""
        return heatmap_loss(supervised(stacks, self.supervision), target, self.target_scale)


def build_criterion(supervision: Supervision, target_scale: float = 1.0) -> HeatmapCriterion:
    """The criterion of ``model.supervision`` and ``train.target_scale``."""
    return HeatmapCriterion(supervision, target_scale)


def forward_loss(model: nn.Module, criterion: HeatmapCriterion, batch: Mapping[str, Tensor],
                 precision: Precision) -> Tensor:
    """The training loss of one batch, the forward pass under the run's precision (``model`` may be DDP- or
    compile-wrapped: the network returns the ``resolutions`` heads' maps from that pass, so DDP sees them used)."""
    images = batch["image"].to(precision.device, memory_format=precision.memory_format, non_blocking=True)
    target = batch["target"].to(precision.device, non_blocking=True)
    with precision.autocast():
        outputs = model(images)
    return criterion(outputs, target)
