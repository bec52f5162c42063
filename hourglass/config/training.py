"""The sections of the network and its training: model (from hourglass.network_config), targets, augment, the
training loop and the ablation variants that override them."""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    create_model,
    field_validator,
    model_validator,
)

from hourglass.config.section import Section, _check_names
from hourglass.network_config import NetworkConfig


class _ModelSection(Section):
    """What :data:`ModelConfig` adds to its fields."""

    def network_kwargs(self) -> dict[str, Any]:
        """The arguments of ``hourglass.model.create_model`` this section fixes (joints come from the data)."""
        return {name: getattr(self, name) for name in NETWORK_KEYS}


# The network's fields are hourglass.model.NetworkConfig's, written there once with their bounds; here every one is
# required (params.yaml has no defaults) and `joints` is left to the dataset.
NETWORK_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(NetworkConfig) if f.name != "joints")
_NETWORK_TYPES = typing.get_type_hints(NetworkConfig, include_extras=True)
ModelConfig = create_model(
    "ModelConfig",
    __base__=_ModelSection,
    __module__=__name__,
    __doc__="The network (hourglass.model.NetworkConfig's fields but joints, which come from the dataset) and the "
            "input size it is trained and run at.",
    **{name: (_NETWORK_TYPES[name], ...) for name in NETWORK_KEYS},
    input_res=(Annotated[int, Field(ge=64, multiple_of=64)], ...),  # px, square crops; the heatmaps are 1/4 of it
)


class TargetConfig(Section):
    """Heatmap targets and decoding (hourglass.heatmaps)."""

    sigma: float = Field(gt=0)
    radius: int = Field(ge=0)  # Gaussian cut off this many px from its peak: the original's 7x7 patch
    flip_test: bool
    flip_shift: bool  # HRNet's 1-px shift of the flipped heatmap; not in the original

class AugmentConfig(Section):
    """Training augmentation of pose-hg-train ``src/util/pose.lua``; every part can be turned off.

    Scale factor ``2^clip(N(0, scale_sigma^2), +-scale_clip * scale_sigma)``, rotation
    ``clip(N(0, rotation_sigma^2), +-rotation_clip)`` degrees applied with ``rotation_prob``, mirror with ``flip_prob``,
    and a per-channel colour multiplier ``U(colour_low, colour_high)`` with the result clamped to [0, 1].
    """

    enabled: bool
    scale_sigma: float = Field(ge=0, le=2)  # log2 units
    scale_clip: float = Field(ge=0, le=10)  # in sigmas
    rotation_sigma: float = Field(ge=0, le=180)  # degrees
    rotation_clip: float = Field(ge=0, le=180)  # degrees
    rotation_prob: float = Field(ge=0, le=1)
    flip_prob: float = Field(ge=0, le=1)
    colour_low: float = Field(ge=0)
    colour_high: float = Field(ge=0)

    @model_validator(mode="after")
    def _colour_range(self) -> AugmentConfig:
        if self.colour_low > self.colour_high:
            raise ValueError(f"colour_low ({self.colour_low}) must not exceed colour_high ({self.colour_high})")
        return self

VARIANT_SECTIONS = ("model", "targets", "augment", "train")  # the sections a variant may change


class VariantConfig(Section):
    """One ablation variant: partial overrides of the ``model``, ``targets``, ``augment`` and ``train`` sections (a
    key left out keeps the section's value), e.g. ``{model: {stacks: 1}, train: {lr: 1.0e-3}}``. A fine-tuned variant
    beside ones trained from scratch sets ``train: {init_from: ...}``. :meth:`ParamsConfig.with_variant` applies
    them, and every variant is validated applied, so a bad override is an error naming the variant."""

    model: dict[str, Any] = Field(default_factory=dict)
    targets: dict[str, Any] = Field(default_factory=dict)
    augment: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _sections_only(cls, value: Any) -> Any:
        if isinstance(value, dict):
            flat = sorted(k for k in value if k not in VARIANT_SECTIONS)
            if flat:
                raise ValueError(f"{flat} are not sections; a variant overrides keys of {list(VARIANT_SECTIONS)}, "
                                 f"e.g. {{model: {{{flat[0]}: ...}}}}")
        return value

    @field_validator("train")
    @classmethod
    def _no_nested_variants(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "variants" in value:
            raise ValueError("a variant cannot define variants")
        return value

    def overrides(self) -> dict[str, dict[str, Any]]:
        """The sections this variant changes, each with the keys it sets."""
        return {name: getattr(self, name) for name in VARIANT_SECTIONS if getattr(self, name)}


class TrainConfig(Section):
    """The training loop (hourglass.train.loop). The paper's recipe (recipes/mpii.yaml): RMSprop 2.5e-4, learning rate
    divided by 5 when validation accuracy plateaus, the original code's batch of 6."""

    batch_size: int = Field(ge=1)  # global: split evenly over DDP processes
    epochs: int = Field(ge=1)
    # Global batches per epoch, as the original's trainIters: as many shuffled passes over the training people as
    # they need (hourglass.data.sampler). None: one pass per epoch.
    steps_per_epoch: int | None = Field(ge=1)
    val_batch_size: int = Field(ge=1)
    # People the per-epoch validation scores: a fixed, evenly spaced subset of the validation split, the same every
    # epoch and run (None: all). The curve is cheaper; the evaluate stage still scores every person, with flip test.
    val_people: int | None = Field(ge=1)
    # Data loader processes per training process (spawned); auto: derived from the cores and the processes on this
    # machine (hourglass.data.dataset.auto_workers: none on the CPU, where they would compete with the compute threads)
    workers: Annotated[int, Field(ge=0)] | Literal["auto"]
    prefetch_factor: int = Field(ge=1)  # batches each loader worker prepares ahead (only with workers > 0)
    pin_memory: bool  # CUDA: batches in page-locked memory, so the host-to-GPU copies run asynchronously
    persistent_workers: bool  # keep the loader workers from one epoch to the next (only with workers > 0)
    optimizer: Literal["rmsprop", "adam", "sgd"]
    sgd_momentum: float = Field(ge=0, lt=1)  # optimizer: sgd only
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    schedule: Literal["plateau", "step", "cosine", "constant"]
    plateau_factor: float = Field(gt=0, lt=1)  # the paper's "divided by 5"
    plateau_patience: int = Field(ge=0)  # epochs without improvement tolerated before dropping
    plateau_threshold: float = Field(ge=0)  # PCKh percentage points that count as an improvement
    plateau_max_drops: int | None = Field(ge=0)  # the paper drops the rate once; null: at every plateau
    milestones: tuple[int, ...]  # epochs at which "step" multiplies the rate by step_factor
    step_factor: float = Field(gt=0, lt=1)
    min_lr: float = Field(ge=0)
    warmup_steps: int = Field(ge=0)  # linear warm-up from lr/warmup_steps to lr over these optimiser steps
    target_scale: float = Field(gt=0)  # heatmap targets are multiplied by this in the loss
    precision: Literal["auto", "fp32", "bf16", "fp16"]  # auto: bf16 where supported, else fp32
    channels_last: bool
    compile: bool | Literal["auto"]  # torch.compile the training model; auto: on CUDA, eager on the CPU
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
    tf32: bool  # CUDA: TF32 tensor cores for fp32 matmuls and convolutions (fp32 runs, and what autocast keeps fp32)
    cudnn_benchmark: bool  # CUDA: cuDNN times its convolution algorithms per shape and keeps the fastest
    # fused / foreach (multi-tensor) / for_loop optimiser steps; auto: fused where torch offers it for the optimiser
    # (adam, sgd) else foreach, on every device (hourglass.train.fastpath)
    optimizer_impl: Literal["auto", "fused", "foreach", "for_loop"]
    sync_batchnorm: bool  # DDP only; false: plain per-process BatchNorm, as data-parallel Torch did
    deterministic: bool  # deterministic kernels (CPU resume is then bitwise identical)
    log_every: int = Field(ge=1)  # optimiser steps between loss/lr records
    # Fine-tuning: a checkpoint (models/<name>/, e.g. from `hourglass import`) or an MLflow model URI whose weights
    # start the run; the optimiser and schedule start fresh (hourglass.train.init_from). None: random initialisation.
    init_from: str | None = Field(min_length=1)
    variants: dict[str, VariantConfig]

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, value: dict[str, VariantConfig]) -> dict[str, VariantConfig]:
        _check_names("variant", value)
        return value

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(b <= a for a, b in zip(value, value[1:], strict=False)) or any(m < 1 for m in value):
            raise ValueError(f"milestones must be increasing positive epochs, got {list(value)}")
        return value
