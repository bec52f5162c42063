"""A format: coco card's files into data/raw/<name>/ and through preprocessing, on the real COCO export: what is
read, skipped and missing is counted and named; the rows keep the COCO ids the evaluate stage's results need."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from shipped import preset_raw

from hourglass.config.params_file import parse_params
from hourglass.data.coco_import import import_coco, import_skips
from hourglass.data.preprocess import preprocess
from hourglass.data.table import PreprocessError
from hourglass.dataset_card import parse_card
from hourglass.io.annotations import read_annotations
from hourglass.io.coco import CocoError, read_coco

pytestmark = pytest.mark.anchor


def _card(train: Path, images: Path, valid: Path | None = None, keypoints: list[str] | None = None):
    people = read_coco(train)
    names = keypoints or list(people.keypoint_names)
    return parse_card({
        "name": "people", "description": "COCO people", "format": "coco", "keypoints": names,
        "flip_pairs": [[n, n.replace("left", "right")] for n in names if n.startswith("left")],
        "skeleton": [list(e) for e in people.skeleton if set(e) <= set(names)], "sides": "person", "crop": "box",
        "measure": {"metric": "PCK", "normalize": "box", "threshold": 0.2, "curve_max": 0.2},
        "coco": {"train": str(train), "valid": None if valid is None else str(valid), "images": str(images),
                 "valid_fraction": 0.5},
    })


@pytest.fixture
def export(anchor_dir: Path, tmp_path: Path) -> Path:
    """A copy of the COCO export that a test may change (images deleted, annotations marked as crowd)."""
    out = tmp_path / "export"
    shutil.copytree(anchor_dir / "mmpose/tests/data/coco", out)
    return out


def test_import_writes_rows_with_box_crops_and_coco_ids(export: Path, tmp_path: Path):
    raw = tmp_path / "raw"
    summary = import_coco(_card(export / "test_coco.json", export), raw)
    assert "people" in summary and (raw / "images" / "000000000785.jpg").is_file()
    data = json.loads((export / "test_coco.json").read_text())
    by_id = {a["id"]: a for a in data["annotations"]}
    rows = 0
    for split in ("train", "valid"):
        table = read_annotations(raw / "annot" / f"{split}.h5")
        rows += len(table)
        for i, ann_id in enumerate(table.extra["annotation_id"]):
            ann = by_id[int(ann_id)]
            x, y, w, h = ann["bbox"]
            assert table.normalize[i] == pytest.approx(max(w, h))  # PCK by the box's longer side
            np.testing.assert_allclose(table.center[i], [x + w / 2, y + h / 2])
            assert table.scale[i] == pytest.approx(1.25 * max(w, h) / 200)  # the prediction path's box crop
            kp = np.asarray(ann["keypoints"], float).reshape(-1, 3)
            np.testing.assert_array_equal(table.annotated[i], kp[:, 2] > 0)
            np.testing.assert_allclose(table.joints[i][kp[:, 2] > 0], kp[kp[:, 2] > 0, :2])
    assert rows == 12  # 14 annotations, 2 without a labelled keypoint
    valid = json.loads((raw / "annot" / "valid.json").read_text())  # the validation people as a COCO file
    assert len(valid["annotations"]) == len(read_annotations(raw / "annot" / "valid.h5"))
    assert import_skips(raw) == {str(export / "test_coco.json"): {"no_keypoints": 2}}


def test_crowd_annotations_are_skipped_and_counted_through_preprocessing(export: Path, tmp_path: Path):
    data = json.loads((export / "test_coco.json").read_text())
    data["annotations"][0]["iscrowd"] = 1
    (export / "test_coco.json").write_text(json.dumps(data))
    raw = tmp_path / "raw"
    import_coco(_card(export / "test_coco.json", export), raw)
    params = parse_params(preset_raw({"preprocess": {"workers": 1}, "model": {"input_res": 64}}))
    summary = preprocess(raw, tmp_path / "processed", params, dataset="people", progress=False)
    assert summary["skipped_annotations"] == {str(export / "test_coco.json"): {"crowd": 1, "no_keypoints": 2}}
    assert summary["rows"] == 11


def test_a_missing_image_is_named_and_counted_against_the_bad_fraction(export: Path, tmp_path: Path):
    (export / "000000040083.jpg").unlink()
    raw = tmp_path / "raw"
    import_coco(_card(export / "test_coco.json", export), raw)
    assert json.loads((raw / "import.json").read_text())["missing_images"] == ["000000040083.jpg"]
    strict = parse_params(preset_raw({"preprocess": {"workers": 1, "max_bad_fraction": 0.0},
                                      "model": {"input_res": 64}}))
    with pytest.raises(PreprocessError, match=r"1 of 4 images are missing or corrupt.*first: 000000040083.jpg"):
        preprocess(raw, tmp_path / "processed", strict, dataset="people", progress=False)
    lenient = parse_params(preset_raw({"preprocess": {"workers": 1, "max_bad_fraction": 0.5},
                                       "model": {"input_res": 64}}))
    summary = preprocess(raw, tmp_path / "processed", lenient, dataset="people", progress=False)
    assert summary["bad_images"] == 1 and summary["bad"][0]["image"] == "000000040083.jpg"


def test_a_card_whose_keypoints_differ_from_the_file_is_an_error_naming_both(export: Path, tmp_path: Path):
    names = list(read_coco(export / "test_coco.json").keypoint_names)
    card = _card(export / "test_coco.json", export, keypoints=[*names[1:], names[0]])
    with pytest.raises(CocoError, match=r"test_coco.json: the category's keypoints \['nose', .* differ from the card"):
        import_coco(card, tmp_path / "raw")


def test_an_empty_split_is_an_error_saying_how_to_fix_it(export: Path, tmp_path: Path):
    card = _card(export / "test_coco.json", export)
    card = card.model_copy(update={"coco": card.coco.model_copy(update={"valid_fraction": 0.0})})
    with pytest.raises(CocoError, match=r"the valid split has no people .*raise coco.valid_fraction"):
        import_coco(card, tmp_path / "raw")
