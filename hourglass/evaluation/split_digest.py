"""The digest of the validation split a model is scored on: two scores are comparable only when their digests agree.

The champion contest (:mod:`hourglass.tracking.champion`) compares a candidate with the model holding the alias only
on the same people, scored the same way; the evaluate stage writes this digest into ``eval/metrics.json``
(``split_digest``) and onto the training run (tag ``eval.split_digest``), and a champion re-scored for a contest records
it beside its score.

What it covers, each part hashed with SHA-256 and the parts hashed together as sorted JSON:

* ``ground_truth``: the bytes of the annotation file the predictions are scored against (``annot/valid.h5``): which
  people, their joints and normalisers;
* ``people``: the validation rows of the preprocessed ``annotations.parquet``, i.e. the people that were cropped and
  how (source row, image name, centre, scale, joints, crop geometry). Rows of other splits are left out, so new
  training data alone leaves the digest as it was;
* ``images``: the content of every image file those rows come from (``<raw>/images/<imgname>``; a missing file is
  recorded as missing);
* ``crop``: the preprocessing settings that change the crops' pixels but not the table (``margin``, ``crop_res``,
  ``antialias`` from ``preprocess.json``);
* ``protocol``: ``targets.flip_test`` and ``targets.flip_shift``, which change every prediction.

The model itself, the precision and the batch size are not in it: they belong to the score, not the split.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from hourglass.config import ParamsConfig
from hourglass.data.table import TABLE_NAME, column_array, read_table
from hourglass.io.digest import file_sha256

SPLIT = "valid"
SUMMARY_NAME = "preprocess.json"  # the preprocess stage's summary beside the table
# The table columns that say who is scored and from which crop; row/shard/shard_row depend on the other splits.
PEOPLE_COLUMNS = ("source_row", "imgname", "center", "scale", "normalize", "joints", "annotated", "visible",
                  "crop_joints", "crop_scale")
CROP_KEYS = ("margin", "crop_res")


def _people_digest(data_dir: Path) -> tuple[str, list[str]]:
    """(SHA-256 of the validation rows' ``PEOPLE_COLUMNS``, their image names in table order)."""
    table = read_table(data_dir / TABLE_NAME)
    mask = np.asarray(table.column("split").to_pylist()) == SPLIT
    table = table.filter(mask)
    digest = hashlib.sha256()
    names = [str(name) for name in table.column("imgname").to_pylist()]
    for column in PEOPLE_COLUMNS:
        if column == "imgname":
            values = "\n".join(names).encode()
        else:
            values = np.ascontiguousarray(column_array(table.column(column), np.float64)).tobytes()
        digest.update(column.encode() + b"\0" + hashlib.sha256(values).digest())
    return digest.hexdigest(), names


def _images_digest(images_dir: Path, names: list[str]) -> str:
    """SHA-256 over each distinct image's name and content digest (``missing`` when the file is absent)."""
    digest = hashlib.sha256()
    for name in sorted(set(names)):
        path = images_dir / name
        digest.update(f"{name}\0{file_sha256(path) if path.is_file() else 'missing'}\n".encode())
    return digest.hexdigest()


def _crop_settings(data_dir: Path) -> dict[str, Any]:
    path = data_dir / SUMMARY_NAME
    try:
        summary = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"summary": "missing"}
    settings = {key: summary.get(key) for key in CROP_KEYS}
    settings["antialias"] = (summary.get("params") or {}).get("antialias")
    return settings


def split_parts(data_dir: str | Path, gt_path: str | Path, params: ParamsConfig) -> dict[str, Any]:
    """The parts the digest is made of (see the module notes), for a message that says which one changed."""
    data_dir, gt_path = Path(data_dir), Path(gt_path)
    if not gt_path.is_file():
        raise FileNotFoundError(f"{gt_path}: the validation annotation file is missing; run the download stage")
    people, names = _people_digest(data_dir)
    return {
        "ground_truth": file_sha256(gt_path),
        "people": people,
        "images": _images_digest(gt_path.parent.parent / "images", names),
        "crop": _crop_settings(data_dir),
        "protocol": {"flip_test": params.targets.flip_test, "flip_shift": params.targets.flip_shift},
    }


def split_digest(data_dir: str | Path, gt_path: str | Path, params: ParamsConfig) -> str:
    """The hex SHA-256 of :func:`split_parts`: equal digests, equal people scored the same way."""
    parts = split_parts(data_dir, gt_path, params)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
