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
import numpy as np
import pyarrow as pa
from tqdm import tqdm

from hourglass import geometry
from hourglass.config import ParamsConfig, PreprocessConfig
from hourglass.data import crop as crop_module
from hourglass.data import shards as shards_module
from hourglass.data import table as table_module
from hourglass.data.augment import required_margin
from hourglass.data.coco_import import import_skips
from hourglass.data.crop import CropSpec, crop_person
from hourglass.data.parallel import ordered_map
from hourglass.data.shards import FORMAT_VERSION, SHARD_GLOB, SUMMARY_NAME, ShardWriter, shard_name
from hourglass.data.table import (
    SPLITS,
    TABLE_NAME,
    PreprocessError,
    build_table,
    column_array,
    read_splits,
    write_parquet,
)
from hourglass.io.atomic import write_json_atomic
from hourglass.io.digest import file_sha256
from hourglass.io.images import decode_rgb, single_threaded_cv2

log = logging.getLogger(__name__)



def crop_spec(params: ParamsConfig) -> CropSpec:
    """The stored-crop geometry for ``params``: explicit ``preprocess.margin/crop_res`` or derived from ``augment``."""
    pre = params.preprocess
    margin = pre.margin if pre.margin is not None else round(required_margin(params.augment), 9)
    # The tiny epsilon keeps 2.0000000000000004 * 256 at 512 rather than 513.
    crop_res = pre.crop_res if pre.crop_res is not None else math.ceil(margin * params.model.input_res - 1e-6)
    return CropSpec(margin=float(margin), crop_res=int(crop_res), antialias=pre.antialias,
                    jpeg_eoi_check=pre.jpeg_eoi_check)


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
        image = decode_rgb(data, apply_orientation=False, check_eoi=spec.jpeg_eoi_check)
    except (ValueError, cv2.error) as err:
        return ImageResult(task.imgname, task.rows, None, f"corrupt: {path}: {err}")
    crops = np.stack([crop_person(image, c, s, spec) for c, s in zip(task.centers, task.scales, strict=True)])
    return ImageResult(task.imgname, task.rows, crops, None)


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
    yield from ordered_map(work, tasks, workers, chunksize=chunk, initializer=single_threaded_cv2)


# How the work is spread over processes, not what it computes: left out of the fingerprint and the summary, so
# changing them neither rebuilds the shards nor changes an output (dvc.yaml does not declare them either).
SPEED_ONLY_KEYS = ("workers", "chunk_images")


def fingerprint(raw_dir: Path, dataset: str, spec: CropSpec, config: PreprocessConfig) -> str:
    """Digest of everything that determines the output: parameters, annotation files, the code (this
    stage, the crop, the shards, the table, the geometry).

    ``workers`` and ``chunk_images`` only change the speed, so they are left out.
    """
    modules = (geometry, crop_module, shards_module, table_module)
    code = {Path(m.__file__).name: file_sha256(m.__file__) for m in modules}
    code[Path(__file__).name] = file_sha256(__file__)
    annot = raw_dir / "annot"
    payload = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "spec": spec.__dict__,
        "shard_rows": config.shard_rows,
        "max_bad_fraction": config.max_bad_fraction,
        "annotations": {s: file_sha256(annot / f"{s}.h5") for s in SPLITS if (annot / f"{s}.h5").is_file()},
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
    skipped = import_skips(raw_dir)
    if skipped:
        log.info("annotations skipped when the data came in (data/raw import.json): %s", skipped)
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
            for row, crop in zip(result.rows, result.crops, strict=True):
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
            "skipped_annotations": skipped,  # crowd / unlabelled annotations the COCO import left out
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
    # The shards are renamed out of the run's private directory rather than written through io.atomic: h5py fills
    # each one over many appends, and none may appear in ``out_dir`` before the whole run has succeeded.
    for entry in summary["shards"]:
        os.replace(tmp_dir / entry["name"], out_dir / entry["name"])
    write_parquet(table, out_dir / TABLE_NAME)
    write_json_atomic(out_dir / SUMMARY_NAME, summary, sort_keys=True)
