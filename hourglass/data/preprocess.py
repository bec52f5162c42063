"""Crop preprocessing: every person's crop in a few HDF5 shards, every annotation in one Parquet table.

Input ``<raw>/images/<imgname>`` and ``<raw>/annot/{train,valid,test}.h5`` (the splits are the h5 files); output in
``<out>/``: ``shard-00000.h5 ...`` (dataset ``crops``, uint8 ``(n, C, C, 3)`` RGB, one HDF5 chunk per person so a
sample is one read), ``annotations.parquet`` and ``preprocess.json`` (counts, bad images, parameters, fingerprint).

Why a margin: the training augmentation zooms out and rotates (``hourglass.data.augment``); the stored square is
``margin`` times the person box (``required_margin``, 2.0 by default) so that the worst draw still sees real pixels,
and ``crop_res = ceil(margin * input_res)`` keeps the input's pixel density at the unaugmented scale.

Why shards: DVC hashes files one by one, so millions of small files would make every ``dvc status`` crawl. Images
are decoded once for all their people (rows are grouped by image), in a process pool over every core; the parent
alone writes, to a temporary directory, and moves finished shards into place only after the whole run succeeded.
A missing or corrupt image is logged by name and counted; its rows are dropped; the run fails (leaving no shard)
when more than ``max_bad_fraction`` of the images are bad. A run whose fingerprint (parameters, annotation file
digests, code digest) matches the existing ``preprocess.json`` does nothing. Images are not hashed here: the DVC
stage lists them as a dependency.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from hourglass.io.atomic import write_json_atomic
from hourglass import geometry
from hourglass.io.annotations import Annotations, read_annotations
from hourglass.config import ParamsConfig, PreprocessConfig
from hourglass.data.augment import required_margin
from hourglass.data.parallel import ordered_map
from hourglass.geometry import CROP_UNIT, crop_matrix, transform_points

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SPLITS = ("train", "valid", "test")
TABLE_NAME = "annotations.parquet"
SUMMARY_NAME = "preprocess.json"
CROPS_KEY = "crops"
SHARD_GLOB = "shard-*.h5"
EXTRA_META = b"hourglass.extra"  # Parquet schema metadata: JSON {name: trailing shape} of the h5 extra fields
# Columns written by build_table; h5 extra fields must not collide with them.
CORE_COLUMNS = ("row", "split", "source_row", "dataset", "imgname", "center", "scale", "normalize", "joints",
                "annotated", "visible", "crop_joints", "crop_scale", "shard", "shard_row")


class PreprocessError(RuntimeError):
    """The stage cannot produce a complete output (bad input layout, too many bad images)."""


@dataclass(frozen=True)
class CropSpec:
    """How people are stored: side ``margin * 200 * scale`` original px, resampled to ``crop_res`` px."""

    margin: float
    crop_res: int
    antialias: bool = True
    jpeg_eoi_check: bool = True


def crop_spec(params: ParamsConfig) -> CropSpec:
    """The stored-crop geometry for ``params``: explicit ``preprocess.margin/crop_res`` or derived from ``augment``."""
    pre = params.preprocess
    margin = pre.margin if pre.margin is not None else round(required_margin(params.augment), 9)
    # The tiny epsilon keeps 2.0000000000000004 * 256 at 512 rather than 513.
    crop_res = pre.crop_res if pre.crop_res is not None else math.ceil(margin * params.model.input_res - 1e-6)
    return CropSpec(margin=float(margin), crop_res=int(crop_res), antialias=pre.antialias,
                    jpeg_eoi_check=pre.jpeg_eoi_check)


# ----------------------------------------------------------------------------------------------------------------
# The annotation table (no images needed)


def read_splits(raw_dir: str | Path) -> dict[str, Annotations]:
    """The annotation h5 of every split present under ``<raw_dir>/annot/``, in ``SPLITS`` order."""
    annot = Path(raw_dir) / "annot"
    splits = {s: read_annotations(annot / f"{s}.h5") for s in SPLITS if (annot / f"{s}.h5").is_file()}
    if not splits:
        raise PreprocessError(f"{annot}: no annotation file; expected one or more of "
                              f"{[s + '.h5' for s in SPLITS]}")
    joints = {s: a.num_joints for s, a in splits.items()}
    if len(set(joints.values())) != 1:
        raise PreprocessError(f"{annot}: splits disagree on the number of joints: {joints}")
    return splits


def _fixed_list(values: np.ndarray, inner: pa.DataType) -> pa.Array:
    """``(N, a, b, ...)`` -> nested fixed-size lists, so Parquet keeps the shape and numpy gets it back in one go."""
    flat = pa.array(values.reshape(-1), type=inner)
    for size in reversed(values.shape[1:]):
        flat = pa.FixedSizeListArray.from_arrays(flat, size)
    return flat


def column_array(column: pa.ChunkedArray | pa.Array, dtype: type) -> np.ndarray:
    """Inverse of ``_fixed_list``: nested fixed-size lists -> ``(N, a, b, ...)`` numpy."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    shape = [len(array)]
    while pa.types.is_fixed_size_list(array.type):
        shape.append(array.type.list_size)
        array = array.flatten()
    return array.to_numpy(zero_copy_only=False).astype(dtype, copy=False).reshape(shape)


def build_table(splits: dict[str, Annotations], dataset: str, spec: CropSpec) -> pa.Table:
    """One row per person of every split: original and stored-crop joints, the h5 fields, ``shard = -1`` (not yet
    cropped). ``crop_joints`` are in stored-crop pixels: ``transform_points(joints, center, crop_scale, crop_res)``.
    """
    columns: dict[str, list[pa.Array]] = {}
    extra_shapes: dict[str, list[int]] = {}
    for split, table in splits.items():
        n = len(table)
        crop_scale = table.scale * spec.margin
        crop_joints = transform_points(table.joints, table.center, crop_scale, spec.crop_res) if n else table.joints
        parts = {
            "split": pa.array([split] * n, pa.string()),
            "source_row": pa.array(np.arange(n, dtype=np.int64)),
            "dataset": pa.array([dataset] * n, pa.string()),
            "imgname": pa.array(table.imgname.tolist(), pa.string()),
            "center": _fixed_list(table.center, pa.float64()),
            "scale": pa.array(table.scale, pa.float64()),
            "normalize": pa.array(table.normalize, pa.float64()),
            "joints": _fixed_list(table.joints, pa.float64()),
            "annotated": _fixed_list(table.annotated, pa.bool_()),
            "visible": _fixed_list(table.visible, pa.bool_()),
            "crop_joints": _fixed_list(crop_joints, pa.float64()),
            "crop_scale": pa.array(crop_scale, pa.float64()),
        }
        for key, values in table.extra.items():
            if key in CORE_COLUMNS:
                raise PreprocessError(f"annotation field {key!r} of split {split!r} collides with a table column")
            values = np.asarray(values)
            if values.dtype.kind in "SU":
                values = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values.reshape(-1)]
                                  ).reshape(values.shape)
            shape = list(values.shape[1:])
            if extra_shapes.setdefault(key, shape) != shape:
                raise PreprocessError(f"annotation field {key!r} has shape {shape} in split {split!r} but "
                                      f"{extra_shapes[key]} elsewhere")
            arrow_type = pa.string() if values.dtype.kind == "U" else pa.from_numpy_dtype(values.dtype)
            parts[key] = _fixed_list(values, arrow_type) if shape else pa.array(values, arrow_type)
        for key, array in parts.items():
            columns.setdefault(key, []).append(array)
    missing = {k for k in extra_shapes if len(columns[k]) != len(splits)}
    if missing:
        raise PreprocessError(f"annotation field(s) {sorted(missing)} are absent from some splits of {dataset!r}")
    merged = {k: pa.concat_arrays(v) for k, v in columns.items()}
    total = len(merged["split"])
    merged["row"] = pa.array(np.arange(total, dtype=np.int64))
    merged["shard"] = pa.array(np.full(total, -1, dtype=np.int32))
    merged["shard_row"] = pa.array(np.full(total, -1, dtype=np.int64))
    order = list(CORE_COLUMNS) + [k for k in merged if k not in CORE_COLUMNS]
    schema_meta = {EXTRA_META: json.dumps(extra_shapes).encode()}
    return pa.table({k: merged[k] for k in order}).replace_schema_metadata(schema_meta)


def table_annotations(table: pa.Table, split: str | None = None) -> Annotations:
    """The rows of ``table`` (of one ``split``, or all) back as an :class:`Annotations` (0-based, NaN, extras)."""
    if split is not None:
        mask = np.asarray(table.column("split").to_pylist()) == split
        table = table.filter(pa.array(mask))
    shapes = json.loads((table.schema.metadata or {}).get(EXTRA_META, b"{}"))
    extra = {}
    for key in shapes:
        column = table.column(key)
        if pa.types.is_fixed_size_list(column.type) or shapes[key]:
            extra[key] = column_array(column, object).reshape([len(table)] + shapes[key])
        else:
            extra[key] = column.to_numpy()
        if extra[key].dtype == object:
            extra[key] = np.asarray(extra[key].tolist())
    return Annotations(
        imgname=np.asarray(table.column("imgname").to_pylist(), dtype=str),
        center=column_array(table.column("center"), np.float64),
        scale=table.column("scale").to_numpy(),
        joints=column_array(table.column("joints"), np.float64),
        annotated=column_array(table.column("annotated"), bool),
        visible=column_array(table.column("visible"), bool),
        normalize=table.column("normalize").to_numpy(),
        extra=extra,
    )


def write_parquet(table: pa.Table, path: str | Path) -> None:
    """Write ``table`` atomically (temporary name, then ``os.replace``)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_table(path: str | Path) -> pa.Table:
    """Read ``annotations.parquet`` with a clear error when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise PreprocessError(f"{path}: annotation table not found; run `python -m pipeline.preprocess` first")
    return pq.read_table(path)


# ----------------------------------------------------------------------------------------------------------------
# Cropping (runs in the worker processes)


@dataclass(frozen=True)
class ImageTask:
    """All people of one image: their table rows, centres and scales (original 0-based pixels)."""

    imgname: str
    rows: np.ndarray
    centers: np.ndarray
    scales: np.ndarray


@dataclass(frozen=True)
class ImageResult:
    imgname: str
    rows: np.ndarray
    crops: np.ndarray | None  # (people, C, C, 3) uint8 RGB, or None when the image is bad
    error: str | None


def decode_image(data: bytes, check_eoi: bool = True) -> np.ndarray:
    """Encoded bytes -> RGB uint8, decoded straight to RGB (no per-crop conversion).

    EXIF orientation is ignored: the annotations refer to the stored pixel grid, as Torch's ``image.load`` read it.
    Raises ``ValueError`` on undecodable or truncated data: libjpeg decodes a truncated JPEG with a grey bottom and
    only a warning, so a JPEG must end with its EOI marker (allowing a little trailing padding).
    """
    if check_eoi and data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-1024:]:
        raise ValueError("truncated JPEG (no end-of-image marker)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None or image.size == 0:
        raise ValueError("not a decodable image")
    return image


def _aligned(lo: int, hi: int, size: int, unit: int) -> tuple[int, int]:
    """Grow ``[lo, hi)`` within ``[0, size)`` to a multiple of ``unit`` long; trim the far end only when the range
    already spans the whole image (those last < unit pixels then read as zero padding)."""
    short = -(hi - lo) % unit
    grow = min(short, size - hi)
    hi, short = hi + grow, short - grow
    grow = min(short, lo)
    lo, short = lo - grow, short - grow
    if short:
        hi -= unit - short
    return lo, hi


def crop_person(image: np.ndarray, center: np.ndarray, scale: float, spec: CropSpec) -> np.ndarray:
    """The stored crop ``crop_matrix(center, margin * scale, crop_res)`` of an image, same channel order.

    For downscales beyond 2x the window's bounding box is first shrunk by 2^m with 2x2 box averages (``INTER_AREA``
    at an integer factor, OpenCV's fast path), leaving at most 2x to the bilinear warp, so the crop does not alias
    (the original scaled the image with ``image.scale`` before cropping for the same reason). The warp matrix
    accounts for the shrink exactly, so pixels stay where ``transform_points`` puts the joints.
    """
    res = spec.crop_res
    crop_scale = scale * spec.margin
    matrix = crop_matrix(center, crop_scale, res)
    source = image
    side = CROP_UNIT * crop_scale
    factor = side / res
    if spec.antialias and factor > 2.0:
        height, width = image.shape[:2]
        unit = 2 ** math.ceil(math.log2(factor / 2.0))
        half = side / 2.0 + 1.0
        x0, x1 = max(0, math.floor(center[0] - half)), min(width, math.ceil(center[0] + half) + 1)
        y0, y1 = max(0, math.floor(center[1] - half)), min(height, math.ceil(center[1] + half) + 1)
        x0, x1 = _aligned(x0, x1, width, unit)
        y0, y1 = _aligned(y0, y1, height, unit)
        if x1 - x0 >= unit and y1 - y0 >= unit:
            source = image[y0:y1, x0:x1]
            for _ in range(int(math.log2(unit))):
                source = cv2.resize(source, (source.shape[1] // 2, source.shape[0] // 2),
                                    interpolation=cv2.INTER_AREA)
            # A 2^m box shrink maps pixel centres as u = (x - x0 + 0.5) / unit - 0.5; invert that and compose.
            back = np.array([[unit, 0.0, 0.5 * unit - 0.5 + x0], [0.0, unit, 0.5 * unit - 0.5 + y0],
                             [0.0, 0.0, 1.0]])
            matrix = matrix @ back
    return cv2.warpAffine(source, matrix, (res, res), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)


def process_image(task: ImageTask, images_dir: Path, spec: CropSpec) -> ImageResult:
    """Read, decode and crop one image; a bad image becomes an ``ImageResult`` with an error, never an exception."""
    path = images_dir / task.imgname
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ImageResult(task.imgname, task.rows, None, f"missing: {path}")
    except OSError as err:
        return ImageResult(task.imgname, task.rows, None, f"unreadable: {path}: {err}")
    try:
        image = decode_image(data, spec.jpeg_eoi_check)
    except (ValueError, cv2.error) as err:
        return ImageResult(task.imgname, task.rows, None, f"corrupt: {path}: {err}")
    crops = np.stack([crop_person(image, c, s, spec) for c, s in zip(task.centers, task.scales)])
    return ImageResult(task.imgname, task.rows, crops, None)


def _init_worker() -> None:
    """Pool workers each own one core: no OpenCV thread pool inside them."""
    cv2.setNumThreads(1)


def image_tasks(table: pa.Table) -> list[ImageTask]:
    """Group the table's rows by image (first-appearance order) so each image is decoded once."""
    names = np.asarray(table.column("imgname").to_pylist(), dtype=object)
    centers = column_array(table.column("center"), np.float64)
    scales = table.column("scale").to_numpy()
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(name, []).append(i)
    return [ImageTask(name, np.asarray(rows), centers[rows], scales[rows]) for name, rows in groups.items()]


def run_tasks(tasks: list[ImageTask], images_dir: Path, spec: CropSpec, workers: int,
              chunk: int) -> Iterator[ImageResult]:
    """Results in task order, from ``workers`` spawned processes (in-process when 1)."""
    work = partial(process_image, images_dir=images_dir, spec=spec)
    if workers <= 1 or len(tasks) <= 1:
        yield from map(work, tasks)
        return
    yield from ordered_map(work, tasks, workers, chunksize=chunk, initializer=_init_worker)


# ----------------------------------------------------------------------------------------------------------------
# Writing


class ShardWriter:
    """Appends crops to ``shard-NNNNN.h5`` files of at most ``shard_rows`` people inside ``directory``."""

    def __init__(self, directory: Path, spec: CropSpec, shard_rows: int):
        self.directory, self.spec, self.shard_rows = directory, spec, shard_rows
        self.counts: list[int] = []
        self._file: h5py.File | None = None
        self._crops: h5py.Dataset | None = None

    def _open(self) -> None:
        res = self.spec.crop_res
        self._file = h5py.File(self.directory / shard_name(len(self.counts)), "w")
        self._file.attrs.update(margin=self.spec.margin, crop_res=res, format_version=FORMAT_VERSION)
        self._crops = self._file.create_dataset(
            CROPS_KEY, shape=(self.shard_rows, res, res, 3), maxshape=(None, res, res, 3), dtype=np.uint8,
            chunks=(1, res, res, 3))  # one chunk per person: a sample is one contiguous read, nothing to decompress
        self.counts.append(0)

    def append(self, crop: np.ndarray) -> tuple[int, int]:
        """Store one crop; returns its (shard, row in shard)."""
        if self._file is None:
            self._open()
        shard, row = len(self.counts) - 1, self.counts[-1]
        self._crops[row] = crop
        self.counts[-1] += 1
        if self.counts[-1] == self.shard_rows:
            self._close_current()
        return shard, row

    def _close_current(self) -> None:
        if self._file is not None:
            self._crops.resize(self.counts[-1], axis=0)
            self._file.close()
            self._file = None

    def close(self) -> list[int]:
        """Finish the last shard; returns the row count of every shard."""
        self._close_current()
        return list(self.counts)


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.h5"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# How the work is spread over processes, not what it computes: left out of the fingerprint and the summary, so
# changing them neither rebuilds the shards nor changes an output (dvc.yaml does not declare them either).
SPEED_ONLY_KEYS = ("workers", "chunk_images")


def fingerprint(raw_dir: Path, dataset: str, spec: CropSpec, config: PreprocessConfig) -> str:
    """Digest of everything that determines the output: parameters, annotation files, this code and the geometry.

    ``workers`` and ``chunk_images`` only change the speed, so they are left out.
    """
    code = {Path(m.__file__).name: _sha256_file(Path(m.__file__)) for m in (geometry,)}
    code[Path(__file__).name] = _sha256_file(Path(__file__))
    annot = raw_dir / "annot"
    payload = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "spec": spec.__dict__,
        "shard_rows": config.shard_rows,
        "max_bad_fraction": config.max_bad_fraction,
        "annotations": {s: _sha256_file(annot / f"{s}.h5") for s in SPLITS if (annot / f"{s}.h5").is_file()},
        "code": code,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _is_current(out_dir: Path, print_: str) -> dict | None:
    """The existing summary when ``out_dir`` holds a complete output with fingerprint ``print_``."""
    try:
        summary = json.loads((out_dir / SUMMARY_NAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if summary.get("fingerprint") != print_ or not (out_dir / TABLE_NAME).is_file():
        return None
    if not all((out_dir / s["name"]).is_file() for s in summary.get("shards", [])):
        return None
    return summary


def preprocess(raw_dir: str | Path, out_dir: str | Path, params: ParamsConfig, dataset: str | None = None,
               progress: bool = True) -> dict:
    """Run the stage: crops of every person of ``raw_dir`` into shards + table in ``out_dir``; returns the summary.

    Idempotent (a matching fingerprint returns the existing summary with ``"skipped": True``); raises
    ``PreprocessError`` when the bad images exceed ``preprocess.max_bad_fraction``, leaving ``out_dir`` untouched.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    config = params.preprocess
    dataset = dataset or params.dataset
    spec = crop_spec(params)
    splits = read_splits(raw_dir)
    print_ = fingerprint(raw_dir, dataset, spec, config)
    current = _is_current(out_dir, print_)
    if current is not None:
        log.info("%s is up to date (fingerprint %s); nothing to do", out_dir, print_[:12])
        return {**current, "skipped": True}

    table = build_table(splits, dataset, spec)
    tasks = image_tasks(table)
    workers = config.workers or os.cpu_count() or 1
    allowed_bad = math.floor(config.max_bad_fraction * len(tasks))
    out_dir.mkdir(parents=True, exist_ok=True)
    for leftover in out_dir.glob(".tmp-preprocess-*"):  # from a run that was killed before it could clean up
        shutil.rmtree(leftover, ignore_errors=True)
    tmp_dir = out_dir / f".tmp-preprocess-{os.getpid()}"
    tmp_dir.mkdir()
    start = time.perf_counter()
    results: Iterator[ImageResult] | None = None
    try:
        shard = np.full(len(table), -1, dtype=np.int32)
        shard_row = np.full(len(table), -1, dtype=np.int64)
        bad: list[dict[str, str]] = []
        writer = ShardWriter(tmp_dir, spec, config.shard_rows)
        results = run_tasks(tasks, raw_dir / "images", spec, workers, config.chunk_images)
        for result in tqdm(results, total=len(tasks), unit="img", desc=f"preprocess {dataset}", disable=not progress):
            if result.error is not None:
                log.warning("bad image %s (%d people dropped): %s", result.imgname, len(result.rows), result.error)
                bad.append({"image": result.imgname, "error": result.error})
                if len(bad) > allowed_bad:
                    raise PreprocessError(
                        f"{raw_dir}: {len(bad)} of {len(tasks)} images are missing or corrupt, more than "
                        f"preprocess.max_bad_fraction={config.max_bad_fraction} allows ({allowed_bad}); "
                        f"first: {bad[0]['image']} ({bad[0]['error']})")
                continue
            for row, crop in zip(result.rows, result.crops):
                shard[row], shard_row[row] = writer.append(crop)
        counts = writer.close()
        seconds = time.perf_counter() - start
        kept = shard >= 0
        table = table.set_column(table.schema.get_field_index("shard"), "shard", pa.array(shard))
        table = table.set_column(table.schema.get_field_index("shard_row"), "shard_row", pa.array(shard_row))
        table = table.filter(pa.array(kept))
        table = table.set_column(0, "row", pa.array(np.arange(len(table), dtype=np.int64)))
        split_names = np.asarray(table.column("split").to_pylist(), dtype=object)
        summary = {
            "fingerprint": print_,
            "format_version": FORMAT_VERSION,
            "dataset": dataset,
            "joints": splits[next(iter(splits))].num_joints,
            "margin": spec.margin,
            "crop_res": spec.crop_res,
            "params": config.model_dump(mode="json", exclude=set(SPEED_ONLY_KEYS)),
            "rows": int(len(table)),
            "rows_dropped": int((~kept).sum()),
            "split_rows": {s: int((split_names == s).sum()) for s in splits},
            "images": len(tasks),
            "bad_images": len(bad),
            "bad": bad,
            "shards": [{"name": shard_name(i), "rows": n} for i, n in enumerate(counts)],
            "seconds": round(seconds, 3),
            "images_per_s": round(len(tasks) / seconds, 2) if seconds > 0 else None,
        }
        _install(tmp_dir, out_dir, table, summary)
    finally:
        if results is not None:
            results.close()  # stops the worker pool at once when the loop was left by an error
        shutil.rmtree(tmp_dir, ignore_errors=True)
    log.info("%s: %d people from %d images in %d shard(s), %d bad image(s), %.1f s", out_dir, summary["rows"],
             summary["images"], len(summary["shards"]), len(bad), summary["seconds"])
    return {**summary, "skipped": False}


def _install(tmp_dir: Path, out_dir: Path, table: pa.Table, summary: dict) -> None:
    """Move a complete output into place: the old summary goes first (so an interrupted install is never taken for
    current), then stale shards, then the new shards, the table, and the summary last."""
    (out_dir / SUMMARY_NAME).unlink(missing_ok=True)
    for stale in out_dir.glob(SHARD_GLOB):
        stale.unlink()
    for entry in summary["shards"]:
        os.replace(tmp_dir / entry["name"], out_dir / entry["name"])
    write_parquet(table, out_dir / TABLE_NAME)
    write_json_atomic(out_dir / SUMMARY_NAME, summary, sort_keys=True)
