"""A growing COCO export: the sources check sees new labels and images (not a touched file), the import brings them
in verified, and images already in the dataset keep their split."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from coco_growth import grow_export

from hourglass.data.coco_import import import_coco
from hourglass.data.sources import changed_sources
from hourglass.dataset_card import parse_card
from hourglass.io.annotations import read_annotations
from hourglass.io.coco import read_coco

pytestmark = pytest.mark.anchor


@pytest.fixture
def export(anchor_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "export"
    shutil.copytree(anchor_dir / "mmpose/tests/data/coco", out)
    return out


def _card(export: Path):
    names = list(read_coco(export / "test_coco.json").keypoint_names)
    return parse_card({
        "name": "people", "description": "COCO people", "format": "coco", "keypoints": names,
        "flip_pairs": [[n, n.replace("left", "right")] for n in names if n.startswith("left")], "skeleton": [],
        "sides": "person", "crop": "box",
        "measure": {"metric": "PCK", "normalize": "box", "threshold": 0.2, "curve_max": 0.2},
        "coco": {"train": str(export / "test_coco.json"), "valid": None, "images": str(export),
                 "valid_fraction": 0.5},
    })


def _splits(raw: Path) -> dict[str, set[str]]:
    return {split: set(read_annotations(raw / "annot" / f"{split}.h5").imgname) for split in ("train", "valid")}


def test_new_labels_are_seen_brought_in_and_old_images_keep_their_split(export: Path, tmp_path: Path):
    card, raw = _card(export), tmp_path / "raw"
    assert changed_sources(card, raw) == [f"{raw}: not imported yet"]
    import_coco(card, raw)
    assert changed_sources(card, raw) == []
    before = _splits(raw)

    image = export / "000000000785.jpg"  # touched, not changed: no change
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    assert changed_sources(card, raw) == []

    added = grow_export(export, 8)
    changes = changed_sources(card, raw)
    assert f"annotation file changed: {export / 'test_coco.json'}" in changes
    assert {f"image added: {name}" for name in added} <= set(changes)
    import_coco(card, raw)
    assert changed_sources(card, raw) == []
    after = _splits(raw)
    for split in ("train", "valid"):
        assert before[split] <= after[split]  # nothing moved between train and validation
    assert set(added) <= after["train"] | after["valid"] and (set(added) & after["valid"])  # some land in valid
    for name in added:
        assert (raw / "images" / name).read_bytes() == (export / name).read_bytes()


def test_a_changed_image_is_seen_and_copied_again(export: Path, tmp_path: Path):
    card, raw = _card(export), tmp_path / "raw"
    import_coco(card, raw)
    image = export / "000000040083.jpg"
    image.write_bytes(image.read_bytes() + b"\0")  # the export replaced the file
    assert changed_sources(card, raw) == ["image changed: 000000040083.jpg"]
    import_coco(card, raw)
    assert (raw / "images" / "000000040083.jpg").read_bytes() == image.read_bytes()
    assert changed_sources(card, raw) == []


def test_the_command_says_unchanged_or_lists_the_changes(export: Path, tmp_path: Path, monkeypatch, capsys):
    from pipeline.sources import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "people.yaml").write_text(yaml.safe_dump(_card(export).as_record()))
    repo_params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**repo_params, "dataset": "people"}))
    import_coco(_card(export), tmp_path / "data" / "raw" / "people")
    assert main([]) == 0 and capsys.readouterr().out.strip() == "people: unchanged"
    grow_export(export, 1)
    assert main(["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["changed"] and "image added: grown_000.jpg" in report["changes"]
