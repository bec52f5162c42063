"""What each supervision mode means for the network's outputs, in one place: which of the stacks' heatmaps the loss
compares with the target (:func:`supervised`, used by :mod:`hourglass.train.criterion`) and which heatmaps are the
prediction (:func:`final_heatmaps`, used by :mod:`hourglass.inference.runner`).

* ``intermediate``: every stack is supervised (the paper's default; Figure 4's HG-Stacked-Int);
* ``final`` and ``resolutions``: the last stack only (HG, HG-Stacked; ``resolutions`` adds the lower-resolution maps
  of the last hourglass, which the criterion takes from ``HeatmapOutputs.levels``: Figure 4's HG-Int);
* ``add``: one output, the sum of all stacks (HG-Stacked-Add).

The prediction is the last supervised output: the last stack, or for ``add`` the sum.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

    from hourglass.network_config import Supervision


def supervised(stacks: Tensor, supervision: Supervision) -> Tensor:
    """The heatmaps the loss applies to, (N, K, joints, H, W), from every stack's ``stacks`` (N, S, joints, H, W)."""
    if supervision == "intermediate":
        return stacks
    if supervision in ("final", "resolutions"):
        return stacks[:, -1:]
    if supervision == "add":
        return stacks.sum(dim=1, keepdim=True)
    raise ValueError(f"supervision={supervision!r} is not a supervision mode")


def final_heatmaps(stacks: Tensor, supervision: Supervision) -> Tensor:
    """The prediction (N, joints, H, W): the last supervised output."""
    return supervised(stacks, supervision)[:, -1]
