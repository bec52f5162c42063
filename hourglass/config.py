"""The params.yaml schema: one validated config object, built once and passed down.

The schema holds types, bounds and meanings, never values: every key is required, so each setting has one home
(params.yaml, the CPU preset; the recipes in ``recipes/`` hold only what differs from it, see
:mod:`hourglass.recipes`) and a key left out is an error naming it, not a silent default. Every section forbids
unknown keys, so a typo fails loudly (:mod:`hourglass.params_file` reads the file and words the errors).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

if TYPE_CHECKING:
    from hourglass.dataset_card import DatasetCard


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(Section):
    """The network (hourglass.model.create_model); joints come from the dataset."""

    stacks: int = Field(ge=1)
    features: int = Field(ge=4, multiple_of=4)
    modules: int = Field(ge=1)
    supervision: Literal["intermediate", "final", "add", "resolutions"]  # see hourglass.model
    input_res: int = Field(ge=64, multiple_of=64)
    stem_width: int = Field(ge=4, multiple_of=4)  # the stem's channels (the original's 128)

    def network_kwargs(self) -> dict[str, Any]:
        """The arguments of ``hourglass.model.create_model`` this section fixes (joints come from the data)."""
        return {"stacks": self.stacks, "features": self.features, "modules": self.modules,
                "supervision": self.supervision, "stem_width": self.stem_width}


class TargetConfig(Section):
    """Heatmap targets and decoding (hourglass.heatmaps)."""

    sigma: float = Field(gt=0)
    radius: int = Field(ge=0)  # Gaussian cut off this many px from its peak: the original's 7x7 patch
    flip_test: bool
    flip_shift: bool  # HRNet's 1-px shift of the flipped heatmap; not in the original


def _relative_posix(value: str) -> str:
    """A path inside the dataset directory: relative, no ``..``, so params never point a write elsewhere."""
    parts = value.replace("\\", "/").split("/")
    if not value or value.startswith(("/", "\\")) or ".." in parts:
        raise ValueError(f"must be a relative path without '..' (got {value!r})")
    return value


class ExtractConfig(Section):
    """Which archive members become the dataset's files (hourglass.data.archive.safe_extract).

    Members under ``member_prefix`` land in ``into`` with the prefix stripped; all other members are skipped
    (but still safety-checked). MPII's tar holds ``images/``; FLIC.zip is assumed to hold ``FLIC/images/``.
    """

    member_prefix: str
    into: str

    _check_into = field_validator("into")(_relative_posix)


class SourceConfig(Section):
    """One file to fetch. ``path`` is relative to ``<root>/<dataset>/``; any pinned digest is verified."""

    url: str = Field(pattern=r"^(https?|file)://\S+$")  # file:///abs/path: a local copy (a lab's mirror)
    path: str
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    git_blob: str | None = Field(None, pattern=r"^[0-9a-f]{40}$")  # sha1 of b"blob <size>\0" + content
    size: int | None = Field(None, ge=0)
    extract: ExtractConfig | None = None

    _check_path = field_validator("path")(_relative_posix)


class DownloadConfig(Section):
    """The download stage (pipeline.download): where datasets land and the HTTP retry policy (the sources are the
    dataset card's ``download`` list)."""

    root: str
    retries: int = Field(ge=0)  # consecutive failed attempts retried (an attempt with progress resets it)
    backoff: float = Field(ge=0)  # seconds before the first retry, doubled for each further one
    timeout: float = Field(gt=0)  # seconds without a byte before a connection counts as failed
    chunk_bytes: int = Field(ge=1024)
    rehash_existing: bool  # re-hash present files instead of trusting manifest size + mtime


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


class PreprocessConfig(Section):
    """Crop preprocessing into HDF5 shards + annotations.parquet (hourglass.data.preprocess).

    ``margin`` and ``crop_res`` null: values derived from ``augment`` and ``model.input_res`` (null = derive).
    """

    margin: float | None = Field(ge=1, le=8)  # stored crop side / (200 * scale)
    crop_res: int | None = Field(ge=16, le=4096)  # stored crop side in px
    shard_rows: int = Field(ge=1)  # people per HDF5 shard
    workers: int = Field(ge=0)  # 0 = every core
    chunk_images: int = Field(ge=1)  # images per worker task (Pool.imap chunksize)
    antialias: bool  # INTER_AREA pre-shrink before large downscales
    max_bad_fraction: float = Field(ge=0, le=1)  # fail when more images than this are missing/corrupt
    jpeg_eoi_check: bool  # a JPEG without its end marker counts as corrupt (truncated download)


def _check_names(kind: str, names: Any) -> None:
    """Names become directory and DVC stage names (models/<name>/, train@<name>)."""
    for name in names:
        if not name or not all(c.isalnum() or c in "_-" for c in name):
            raise ValueError(f"{kind} name {name!r} must be non-empty letters, digits, '_' or '-'")


class VariantConfig(Section):
    """One ablation variant: the ``model`` fields it changes (unset fields keep the ``model`` section's values), and
    optionally the weights it starts from (``train.init_from`` for this variant only: a sweep can set a fine-tuned
    network beside one trained from scratch)."""

    stacks: int | None = Field(None, ge=1)
    features: int | None = Field(None, ge=4, multiple_of=4)
    modules: int | None = Field(None, ge=1)
    supervision: Literal["intermediate", "final", "add", "resolutions"] | None = None
    stem_width: int | None = Field(None, ge=4, multiple_of=4)
    init_from: str | None = Field(None, min_length=1)

    def model_overrides(self) -> dict[str, Any]:
        """The ``model`` fields this variant sets."""
        return self.model_dump(exclude_none=True, exclude={"init_from"})


class TrainConfig(Section):
    """The training loop (hourglass.train.loop). The paper's recipe (recipes/mpii.yaml): RMSprop 2.5e-4, learning rate
    divided by 5 when validation accuracy plateaus, the original code's batch of 6."""

    batch_size: int = Field(ge=1)  # global: split evenly over DDP processes
    epochs: int = Field(ge=1)
    # Global batches per epoch, as the original's trainIters: as many shuffled passes over the training people as
    # they need (hourglass.data.sampler). None: one pass per epoch.
    steps_per_epoch: int | None = Field(ge=1)
    val_batch_size: int = Field(ge=1)
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
    # (adam, sgd) else foreach on CUDA, torch's own for-loop on the CPU (hourglass.train.fastpath)
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


class MlflowConfig(Section):
    """MLflow tracking of training runs (hourglass.tracking.runs). The store is ``MLFLOW_TRACKING_URI`` when set, else
    ``sqlite:///<working directory>/mlflow.db``."""

    enabled: bool  # False: DVC files only (tests, quick experiments)
    experiment: str = Field(min_length=1)
    registered_model: str | None  # the base name: models register as <registered_model>-<dataset>; None: not at all
    log_model: bool
    log_onnx: bool  # with log_model: the network exported to ONNX too, for HOURGLASS_RUNTIME=onnxruntime/openvino
    system_metrics: bool
    sweep: str | None  # runs with the same sweep name nest under one parent (HOURGLASS_PARENT_RUN_ID wins)


class SyntheticConfig(Section):
    """The procedural people dataset (hourglass.data.synthetic), the offline default. Pairs are [low, high] ranges.

    Image ``i`` of a split is drawn from ``SeedSequence([seed, split, i])``, so the data do not depend on ``workers``
    or on the training ``seeds``.
    """

    seed: int = Field(ge=0)
    train_images: int = Field(ge=1)
    valid_images: int = Field(ge=1)
    width: tuple[int, int]  # image width range, px
    height: tuple[int, int]  # image height range, px
    person_height: tuple[int, int]  # standing height of the main person, px (capped by the image)
    distractors: tuple[int, int]  # other people per image
    occluders: tuple[int, int]  # objects drawn in front of people
    annotate_distractors: bool  # other people that are mostly inside the image get their own rows, as in MPII
    jpeg_quality: int = Field(ge=30, le=100)
    workers: int = Field(ge=0)  # 0 = every core

    @model_validator(mode="after")
    def _ranges(self) -> SyntheticConfig:
        for key in ("width", "height", "person_height", "distractors", "occluders"):
            low, high = getattr(self, key)
            if low > high or low < 0:
                raise ValueError(f"{key} must be [low, high] with 0 <= low <= high, got [{low}, {high}]")
        if min(self.width[0], self.height[0]) < 32:
            raise ValueError(f"images must be at least 32 px on a side, got width {self.width}, height {self.height}")
        if self.person_height[0] < 24:
            raise ValueError(f"person_height must be at least 24 px, got {list(self.person_height)}")
        return self


class FlowsConfig(Section):
    """Scheduled retraining (pipeline.flows) and the champion policy (hourglass.champion, hourglass.registry)."""

    cron: str  # when the served deployment retrains: 5 cron fields or a macro such as @daily
    timezone: str  # IANA zone the cron is read in
    champion_variant: str = Field(min_length=1)  # the train@<variant> that competes for `champion`
    # As hourglass.train.loop logs it to the run; null: the dataset family's headline (val/pckh/Mean, val/pck/Mean).
    champion_metric: str | None = Field(min_length=1)
    higher_is_better: bool
    download_retries: int = Field(ge=0, le=10)  # retries of the fetch-data task (downloads are flaky)
    download_retry_delay: float = Field(ge=0)  # seconds before the first retry; doubles each time
    # The contest: the candidate must beat the champion by at least min_improvement (metric points) and the paired
    # bootstrap interval of their difference on the same validation people must exclude 0 at `confidence`.
    min_improvement: float = Field(ge=0)
    confidence: float = Field(gt=0, lt=1)
    warm_start: Literal["none", "champion"]  # champion: a retrain fine-tunes from the served model when it fits
    notify_url: str | None = Field(pattern=r"^https?://\S+$")  # POSTed a JSON message on a promotion or failure
    lock_wait: float = Field(ge=0)  # seconds a stage waits for another run's DVC lock before it fails
    git_pull: bool  # before a scheduled run: `git pull --ff-only` the checkout
    dvc_pull: bool  # ... and `dvc pull` from the configured remote
    dvc_push: bool  # after it: `dvc push` what it produced
    # trainings at a time: 1 runs them one by one through dvc repro; more runs them on a local Dask cluster
    # (pipeline.sweep), each committed to DVC as it ends
    parallel: int = Field(ge=1, le=64)

    @field_validator("cron")
    @classmethod
    def _cron_shape(cls, value: str) -> str:
        fields = value.split()
        if not (len(fields) == 5 or (len(fields) == 1 and value.startswith("@"))):
            raise ValueError(f"cron {value!r}: need 5 fields (min hour day month weekday) or a macro (@daily)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {value!r} is not an IANA zone name (UTC, Europe/Berlin)") from None
        return value


class ReportConfig(Section):
    """The results report (hourglass.report, pipeline.report)."""

    examples: int = Field(ge=1, le=24)  # people in each of the best-cases and worst-cases figures
    example_variant: str | None  # whose predictions the examples show; None: the variant with the best Mean


PORT_PROJECT = "princeton-vl/pytorch_stacked_hourglass"  # the official PyTorch port, whose releases imports name


class ImportConfig(Section):
    """A released checkpoint of princeton-vl/pytorch_stacked_hourglass scored beside the sweep: the ``import@<name>``
    stage converts it into ``models/<name>/`` (hourglass.weights.releases), ``evaluate_import@<name>`` scores it."""

    path: str = Field(min_length=1)  # the port's checkpoint file; a DVC dependency of import@<name>
    input_res: int = Field(ge=64, multiple_of=64)  # the crop size it was trained at (the port's: 256)
    commit: str | None  # the port's git commit the checkpoint was trained with, recorded in the checkpoint


class ParamsConfig(Section):
    """The whole params.yaml: one section per stage, plus the dataset choice and the ablation sweep."""

    # The dataset card's name: datasets/<dataset>.yaml (mpii, flic, synthetic, synthetic_flic, or a user's own).
    dataset: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    # The training seeds the sweep trains: dvc.yaml's train/evaluate stages are a matrix of sweep x seeds, and a
    # run's own seed comes from its command (``pipeline.train --seed N``; by hand the default is the first one).
    seeds: tuple[Annotated[int, Field(ge=0, strict=True)], ...] = Field(min_length=1)
    # The variants (names in train.variants) that dvc.yaml trains, evaluates and reports: its foreach list.
    sweep: tuple[str, ...]
    # Released weights scored beside the sweep (name -> the checkpoint), into models/<name>/: dvc.yaml's import and
    # evaluate_import stages iterate over it.
    imports: dict[str, ImportConfig]
    model: ModelConfig
    targets: TargetConfig
    download: DownloadConfig
    augment: AugmentConfig
    preprocess: PreprocessConfig
    train: TrainConfig
    synthetic: SyntheticConfig
    mlflow: MlflowConfig
    flows: FlowsConfig
    report: ReportConfig

    # Where this project's cards are: ``datasets/`` beside the params file it was read from (the validation
    # context's ``card_dirs``, set by hourglass.params_file), so a run started from another directory finds them.
    _card_dirs: tuple[Path, ...] = PrivateAttr(default=())

    @field_validator("dataset")
    @classmethod
    def _card_exists(cls, value: str, info: ValidationInfo) -> str:
        from hourglass.dataset_card import CardError, card_path, card_search  # local: the card module imports config

        try:
            card_path(value, card_search((info.context or {}).get("card_dirs", ())))
        except CardError as err:
            raise ValueError(str(err)) from None
        return value

    @model_validator(mode="after")
    def _remember_card_dirs(self, info: ValidationInfo) -> ParamsConfig:
        self._card_dirs = tuple(Path(p) for p in (info.context or {}).get("card_dirs", ()))
        return self

    @property
    def card_search(self) -> tuple[Path, ...]:
        """The folders this run's cards are looked up in, first match wins."""
        from hourglass.dataset_card import card_search

        return card_search(self._card_dirs)

    def card(self) -> DatasetCard:
        """The run's dataset card (``datasets/<dataset>.yaml``)."""
        from hourglass.dataset_card import load_card

        return load_card(self.dataset, self.card_search)

    @model_validator(mode="after")
    def _sweep_names_variants(self) -> ParamsConfig:
        known = sorted(self.train.variants)
        unknown = [name for name in self.sweep if name not in self.train.variants]
        if unknown:
            raise ValueError(f"sweep: {unknown} not in train.variants (defined: {known})")
        if len(set(self.sweep)) != len(self.sweep):
            raise ValueError(f"sweep: names must be unique, got {list(self.sweep)}")
        _check_names("imports", self.imports)
        clash = sorted(set(self.imports) & set(self.train.variants))
        if clash:
            raise ValueError(f"imports: {clash} also name train.variants; both would write models/<name>/")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: must be unique, got {list(self.seeds)}")
        if self.sweep and self.flows.champion_variant not in self.sweep:
            raise ValueError(f"flows.champion_variant: {self.flows.champion_variant!r} is not in sweep "
                             f"{list(self.sweep)}; the champion must be a variant the pipeline trains")
        return self
