"""What a stacked hourglass network is, as one frozen dataclass: :class:`hourglass.model.StackedHourglass` is built
from a :class:`NetworkConfig` and carries it, checkpoints record it, and the params schema (``hourglass.config``)
takes its ``model`` section's fields and bounds from it, so each field is written once. A module of its own, without
torch, so that the stages that only read params (download, preprocess) do not import, and so do not depend on, the
network's code (dvc.yaml's code deps are each stage's import closure).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal, get_args

from annotated_types import Ge, MultipleOf

Supervision = Literal["intermediate", "final", "add", "resolutions"]
SUPERVISION_MODES: tuple[str, ...] = get_args(Supervision)
HOURGLASS_DEPTH = 4  # 64 -> 32 -> 16 -> 8 -> 4 px, as in hg.lua


@dataclass(frozen=True)
class NetworkConfig:
    """What the network is. ``StackedHourglass`` is built from one and carries it (``model.config``); checkpoints
    record it as a dict (:meth:`as_record`); params.yaml's ``model`` section is these fields, bounds included
    (``hourglass.config`` reads them from here), except ``joints``, which the dataset decides. Defaults: the paper's
    8-stack MPII network."""

    stacks: Annotated[int, Ge(1)] = 8
    features: Annotated[int, Ge(4), MultipleOf(4)] = 256  # channels of every hourglass (nFeats)
    modules: Annotated[int, Ge(1)] = 1  # residual modules per location (nModules)
    joints: Annotated[int, Ge(1)] = 16
    supervision: Supervision = "intermediate"  # the loss's policy, see the module docstring
    # The stem's channels: hg.lua's are 64 then 128 whatever nFeats is (128). At twice the hourglass's resolution the
    # stem dominates the compute of a narrow model, so CPU presets narrow it too (NOTES.md).
    stem_width: Annotated[int, Ge(4), MultipleOf(4)] = 128

    def __post_init__(self) -> None:
        if self.supervision not in SUPERVISION_MODES:
            raise ValueError(f"supervision={self.supervision!r}; expected one of {SUPERVISION_MODES}")
        if self.stacks < 1 or self.modules < 1 or self.joints < 1:
            raise ValueError(f"stacks, modules and joints must be >= 1, got {self.stacks}, {self.modules}, "
                             f"{self.joints}")
        if self.features < 4 or self.features % 4:
            raise ValueError(f"features must be a positive multiple of 4, got {self.features}")
        if self.stem_width < 4 or self.stem_width % 4:
            raise ValueError(f"stem_width must be a positive multiple of 4, got {self.stem_width}")

    def as_record(self) -> dict[str, Any]:
        """Plain values, as checkpoints (loaded with ``weights_only=True``) and logged models store them."""
        return asdict(self)
