"""The annotation table ``annotations.parquet``: one row per person of every split, built from the split h5 files.

Columns hold the original annotations (0-based pixels, NaN where not annotated), the joints in stored-crop pixels,
every extra h5 field (their trailing shapes in the schema metadata) and where the person's crop is stored. Fixed-size
list columns keep each field's shape, so numpy gets an array back in one go.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hourglass.data.crop import CropSpec
from hourglass.geometry import transform_points
from hourglass.io.annotations import Annotations, read_annotations
from hourglass.io.atomic import atomic_path

SPLITS = ("train", "valid", "test")
TABLE_NAME = "annotations.parquet"
EXTRA_META = b"hourglass.extra"  # Parquet schema metadata: JSON {name: trailing shape} of the h5 extra fields
# Columns written by build_table; h5 extra fields must not collide with them.
CORE_COLUMNS = ("row", "split", "source_row", "dataset", "imgname", "center", "scale", "normalize", "joints",
                "annotated", "visible", "crop_joints", "crop_scale", "shard", "shard_row")



class PreprocessError(RuntimeError):
    """The stage cannot produce a complete output (bad input layout, too many bad images)."""



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
    """Write ``table`` atomically, so a killed run never leaves half a table where the stage's output belongs."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_table(path: str | Path) -> pa.Table:
    """Read ``annotations.parquet`` with a clear error when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise PreprocessError(f"{path}: annotation table not found; run `python -m pipeline.preprocess` first")
    return pq.read_table(path)

