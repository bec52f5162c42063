"""The sections of the data stages: download (sources, archive extraction), the synthetic generator, preprocessing."""

from __future__ import annotations

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from hourglass.config.section import Section, _relative_posix


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
