"""Crop preprocessing: real MPII images round-trip, tables keep every field, bad images, atomicity, idempotence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from shipped import recipe

from hourglass.bench.loader import make_raw_set
from hourglass.config import ParamsConfig
from hourglass.data.augment import required_margin
from hourglass.data.preprocess import crop_spec, preprocess
from hourglass.data.table import (
    PreprocessError,
    build_table,
    column_array,
    read_table,
    table_annotations,
    write_parquet,
)
from hourglass.geometry import crop_image, transform_points
from hourglass.io.annotations import read_annotations, write_annotations
from pipeline.preprocess import main as stage_main

MPII_VALID = "pose-hg-train/data/mpii/annot/valid.h5"
MMPOSE = "mmpose/tests/data/mpii"


def params(**preprocess) -> ParamsConfig:
    return recipe("mpii", {"preprocess": {"workers": 1, **preprocess}})


def assert_same_annotations(a, b) -> None:
    assert list(a.imgname) == list(b.imgname)
    for key in ("center", "scale", "joints", "normalize"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)  # NaN == NaN here
    np.testing.assert_array_equal(a.annotated, b.annotated)
    np.testing.assert_array_equal(a.visible, b.visible)
    assert sorted(a.extra) == sorted(b.extra)
    for key in a.extra:
        np.testing.assert_array_equal(a.extra[key], b.extra[key], err_msg=key)
        assert a.extra[key].dtype == b.extra[key].dtype, key


def test_default_crop_geometry_covers_worst_augmentation():
    spec = crop_spec(recipe("mpii"))
    assert spec.margin == pytest.approx(2.0) and spec.crop_res == 512
    assert required_margin(None) == 1.0
    # Rotation clipped below 45 degrees needs only cos + sin of the clip.
    narrow = recipe("mpii", {"augment": {"rotation_clip": 30.0, "scale_sigma": 0.0}}).augment
    assert required_margin(narrow) == pytest.approx(np.cos(np.pi / 6) + np.sin(np.pi / 6))


@pytest.fixture(scope="module")
def real_mpii(anchor_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    """The five mmpose MPII images with rows 0-4 of valid.h5, preprocessed."""
    root = tmp_path_factory.mktemp("mpii")
    raw, out = root / "raw", root / "processed"
    (raw / "images").mkdir(parents=True)
    table = read_annotations(anchor_dir / MPII_VALID).subset(slice(0, 5))
    for name in table.imgname:
        shutil.copy(anchor_dir / MMPOSE / name, raw / "images" / name)
    write_annotations(raw / "annot" / "valid.h5", table, name="mpii")
    summary = preprocess(raw, out, params(), dataset="mpii", progress=False)
    assert summary["rows"] == 5 and summary["bad_images"] == 0
    return raw, out


@pytest.mark.anchor
def test_real_mpii_joints_map_back_within_half_pixel(real_mpii, anchor_dir: Path):
    raw, out = real_mpii
    original = read_annotations(raw / "annot" / "valid.h5")
    # The mmpose JSON holds the same five people (1-based joints, -1 = missing): the fixture is what we think it is.
    reference = json.loads((anchor_dir / MMPOSE / "test_mpii.json").read_text())
    assert [r["image"] for r in reference] == list(original.imgname)
    for ref, joints in zip(reference, original.joints, strict=True):
        ref_joints = np.asarray(ref["joints"], dtype=float) - 1.0
        annotated = np.asarray(ref["joints_vis"]) > 0
        np.testing.assert_allclose(joints[annotated], ref_joints[annotated], atol=1.0)

    table = read_table(out / "annotations.parquet")
    crop = column_array(table.column("crop_joints"), np.float64)
    back = transform_points(crop, column_array(table.column("center"), np.float64),
                            table.column("crop_scale").to_numpy(), int(json.loads(
                                (out / "preprocess.json").read_text())["crop_res"]), inverse=True)
    annotated = original.annotated
    assert annotated.sum() > 50
    assert np.abs(back[annotated] - original.joints[annotated]).max() < 0.5
    assert np.isnan(back[~annotated]).all()


@pytest.mark.anchor
def test_real_mpii_stored_pixels_align_with_the_crop_transform(real_mpii):
    """The stored crop (box pre-shrink + warp) shows the same content, unshifted, as one direct bilinear crop."""
    import h5py

    raw, out = real_mpii
    table = read_table(out / "annotations.parquet")
    summary = json.loads((out / "preprocess.json").read_text())
    with h5py.File(out / "shard-00000.h5", "r") as h5:
        crops = h5["crops"][()]
    assert crops.shape == (5, 512, 512, 3) and crops.dtype == np.uint8
    centers = column_array(table.column("center"), np.float64)
    for k, name in enumerate(table.column("imgname").to_pylist()):
        image = cv2.cvtColor(cv2.imread(str(raw / "images" / name)), cv2.COLOR_BGR2RGB)
        direct = crop_image(image, centers[k], table.column("crop_scale")[k].as_py(), summary["crop_res"])
        stored = crops[table.column("shard_row")[k].as_py()]
        blur = [cv2.GaussianBlur(x.astype(np.float32).mean(axis=2), (0, 0), 3) for x in (stored, direct)]
        (dx, dy), _ = cv2.phaseCorrelate(blur[0], blur[1])
        assert abs(dx) < 0.05 and abs(dy) < 0.05, (name, dx, dy)  # measured < 0.01
        assert np.abs(blur[0] - blur[1]).mean() < 4.0, name


@pytest.mark.anchor
@pytest.mark.parametrize("path,rows", [(MPII_VALID, 2958), ("pose-hg-train/data/flic/annot/train.h5", 3987),
                                       ("pose-hg-train/data/flic/annot/valid.h5", 1016)])
def test_annotation_files_load_into_the_table_intact(anchor_dir: Path, tmp_path: Path, path: str, rows: int):
    original = read_annotations(anchor_dir / path)
    table = build_table({"valid": original}, "x", crop_spec(recipe("mpii")))
    write_parquet(table, tmp_path / "annotations.parquet")
    loaded = read_table(tmp_path / "annotations.parquet")
    assert loaded.num_rows == rows
    assert_same_annotations(table_annotations(loaded, "valid"), original)
    assert loaded.column("source_row").to_pylist() == list(range(rows))
    assert set(loaded.column("split").to_pylist()) == {"valid"}


@pytest.fixture()
def raw_set(tmp_path: Path) -> Path:
    """Ten synthetic images with two people each; one image truncated, one missing."""
    raw = tmp_path / "raw"
    make_raw_set(raw, 20, np.random.default_rng(1))
    data = (raw / "images" / "im-0003.jpg").read_bytes()
    (raw / "images" / "im-0003.jpg").write_bytes(data[: len(data) // 2])
    (raw / "images" / "im-0007.jpg").unlink()
    return raw


def test_bad_images_are_named_counted_and_dropped(raw_set: Path, tmp_path: Path, caplog):
    out = tmp_path / "out"
    summary = preprocess(raw_set, out, params(max_bad_fraction=0.25, shard_rows=7), dataset="s", progress=False)
    assert summary["bad_images"] == 2 and summary["rows"] == 16 and summary["rows_dropped"] == 4
    assert {b["image"] for b in summary["bad"]} == {"im-0003.jpg", "im-0007.jpg"}
    assert {b["error"].split(":")[0] for b in summary["bad"]} == {"corrupt", "missing"}
    assert "im-0003.jpg" in caplog.text and "im-0007.jpg" in caplog.text
    table = read_table(out / "annotations.parquet")
    assert not {"im-0003.jpg", "im-0007.jpg"} & set(table.column("imgname").to_pylist())
    assert table.column("row").to_pylist() == list(range(16))
    assert [s["rows"] for s in summary["shards"]] == [7, 7, 2]
    assert sorted(p.name for p in out.iterdir()) == [
        "annotations.parquet", "preprocess.json", "shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    pairs = set(zip(table.column("shard").to_pylist(), table.column("shard_row").to_pylist(), strict=True))
    assert len(pairs) == 16


def test_too_many_bad_images_fail_and_leave_no_shard(raw_set: Path, tmp_path: Path):
    out = tmp_path / "out"
    with pytest.raises(PreprocessError, match="max_bad_fraction"):
        preprocess(raw_set, out, params(max_bad_fraction=0.1), dataset="s", progress=False)
    assert list(out.iterdir()) == []


def test_rerun_is_a_no_op_and_a_param_change_rebuilds(raw_set: Path, tmp_path: Path):
    out = tmp_path / "out"
    first = preprocess(raw_set, out, params(max_bad_fraction=0.25), dataset="s", progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = preprocess(raw_set, out, params(max_bad_fraction=0.25, workers=2), dataset="s", progress=False)
    assert again["skipped"] and again["fingerprint"] == first["fingerprint"]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    changed = preprocess(raw_set, out, params(max_bad_fraction=0.25, shard_rows=5), dataset="s", progress=False)
    assert not changed["skipped"] and len(changed["shards"]) == 4
    assert sorted(p.name for p in out.glob("shard-*.h5")) == [f"shard-0000{i}.h5" for i in range(4)]


def test_stage_cli_uses_a_worker_pool_and_reports_failure(raw_set: Path, tmp_path: Path):
    config = recipe("mpii").model_dump(mode="json")
    config["preprocess"].update(workers=2, chunk_images=2, max_bad_fraction=0.25)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    argv = ["--params", str(params_file), "--raw", str(raw_set), "--out", str(out), "--no-progress"]
    assert stage_main(argv) == 0
    pooled = read_table(out / "annotations.parquet")
    assert pooled.num_rows == 16

    config["preprocess"]["max_bad_fraction"] = 0.0
    params_file.write_text(yaml.safe_dump(config))
    assert stage_main(argv[:-2] + [str(tmp_path / "out2"), "--no-progress"]) == 1
    assert not list((tmp_path / "out2").glob("shard-*"))
