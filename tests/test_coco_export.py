"""A COCO export given by URL, as a team's CVAT or Label Studio server publishes it: the card names the archive,
the download stage fetches and verifies it, the sources check asks the server for its ETag (downloading nothing when
it is unchanged, the whole archive when the server names no version), and a grown export is brought in with every
earlier image in its split. The archives hold mmpose's real COCO test images and labels, grown by shifted copies."""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from coco_growth import grow_export
from dvc_project import REPO, dvc, make_project, merge, run
from export_server import serving

from hourglass.data.archive import UnsafeArchiveError
from hourglass.data.coco_export import cache_dir, ensure_archive, export_changes
from hourglass.data.coco_import import import_coco
from hourglass.data.fetch import DownloadError
from hourglass.data.sources import changed_sources, recorded_state
from hourglass.dataset_card import parse_card
from hourglass.io.annotations import read_annotations
from hourglass.io.coco import read_coco

pytestmark = pytest.mark.anchor

ANNOTATIONS = "annotations/person_keypoints_default.json"  # CVAT's "COCO Keypoints 1.0" export layout


def write_zip(export: Path, archive: Path) -> Path:
    """``export`` (test_coco.json beside its images) as CVAT lays out its export zip."""
    tmp = archive.with_name(archive.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as z:
        z.write(export / "test_coco.json", ANNOTATIONS)
        for image in sorted(export.glob("*.jpg")):
            z.write(image, f"images/{image.name}")
    tmp.replace(archive)
    return archive


@pytest.fixture
def export(anchor_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "export"
    shutil.copytree(anchor_dir / "mmpose/tests/data/coco", out)
    return out


def _card(url: str, export: Path, **coco):
    names = list(read_coco(export / "test_coco.json").keypoint_names)
    return parse_card({
        "name": "people", "description": "COCO people", "format": "coco", "keypoints": names,
        "flip_pairs": [[n, n.replace("left", "right")] for n in names if n.startswith("left")], "skeleton": [],
        "sides": "person", "crop": "box",
        "measure": {"metric": "PCK", "normalize": "box", "threshold": 0.2, "curve_max": 0.2},
        "coco": {"train": ANNOTATIONS, "valid": None, "images": "images", "valid_fraction": 0.5, "url": url,
                 **coco},
    })


def _splits(raw: Path) -> dict[str, set[str]]:
    return {split: set(read_annotations(raw / "annot" / f"{split}.h5").imgname) for split in ("train", "valid")}


def test_an_unchanged_export_is_asked_not_fetched_and_a_grown_one_is_seen(export: Path, tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    write_zip(export, site / "export.zip")
    raw = tmp_path / "raw" / "people"
    with serving(site) as server:
        card = _card(server.url("export.zip"), export)
        assert changed_sources(card, raw) == [f"{raw}: not imported yet"]
        import_coco(card, raw)
        assert server.gets["/export.zip"] == 1
        state = recorded_state(raw)["export"]
        assert state["url"] == server.url("export.zip") and state["etag"].startswith('"')
        assert len(state["sha256"]) == 64 and state["bytes"] == (site / "export.zip").stat().st_size
        assert changed_sources(card, raw) == []
        import_coco(card, raw)  # a forced rerun with the same export: the cached archive, no download
        assert server.gets["/export.zip"] == 1
        before = _splits(raw)
        assert before["train"] and before["valid"]
        grown = grow_export(export, 12)
        write_zip(export, site / "export.zip")
        changes = changed_sources(card, raw)
        assert len(changes) == 1 and changes[0].startswith(f"export changed: {server.url('export.zip')} (ETag ")
        assert server.gets["/export.zip"] == 1  # the check asked the server (HEAD); it downloaded nothing
        import_coco(card, raw)
        assert server.gets["/export.zip"] == 2 and changed_sources(card, raw) == []
    after = _splits(raw)
    assert before["train"] <= after["train"] and before["valid"] <= after["valid"]  # no image changed split
    assert set(grown) <= after["train"] | after["valid"] and set(grown) & after["valid"]
    assert all((raw / "images" / name).is_file() for name in grown)
    record = json.loads((raw / "import.json").read_text())
    assert record["splits"]["train"]["source"] == f"{server.url('export.zip')}#{ANNOTATIONS}"
    assert not list(raw.parent.glob(".export-*"))  # the temporary extraction is gone
    assert (raw.parent / ".exports" / ".gitignore").read_text().rstrip().endswith("*")


def test_a_server_that_names_no_version_is_checked_by_content_hash(export: Path, tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    write_zip(export, site / "export.zip")
    raw = tmp_path / "raw" / "people"
    with serving(site, validators=False) as server:
        card = _card(server.url("export.zip"), export)
        import_coco(card, raw)
        assert recorded_state(raw)["export"]["etag"] is None
        assert changed_sources(card, raw) == []  # downloaded and hashed: the same content
        assert server.gets["/export.zip"] == 2
        grow_export(export, 2)
        write_zip(export, site / "export.zip")
        changes = changed_sources(card, raw)
        assert len(changes) == 1 and "(SHA-256 " in changes[0]


def test_a_file_url_export_is_checked_by_size_and_mtime(export: Path, tmp_path: Path):
    archive = write_zip(export, tmp_path / "export.zip")
    raw = tmp_path / "raw" / "people"
    card = _card(archive.as_uri(), export)
    import_coco(card, raw)
    assert changed_sources(card, raw) == []
    grow_export(export, 2)
    write_zip(export, archive)
    assert changed_sources(card, raw)[0].startswith(f"export changed: {archive.as_uri()} (Last-Modified ")


def test_a_pinned_digest_that_does_not_match_fails_and_writes_nothing(export: Path, tmp_path: Path):
    archive = write_zip(export, tmp_path / "export.zip")
    raw = tmp_path / "raw" / "people"
    card = _card(archive.as_uri(), export, sha256="0" * 64)
    with pytest.raises(DownloadError, match=r"export\.zip: verification failed, download deleted: sha256: expected 0+"):
        import_coco(card, raw)
    assert not (raw / "import.json").exists() and not (raw / "annot").exists()
    assert not list(cache_dir(raw).glob("*.zip"))


def test_an_archive_member_leaving_its_folder_is_refused(export: Path, tmp_path: Path):
    archive = write_zip(export, tmp_path / "export.zip")
    with zipfile.ZipFile(archive, "a") as z:
        z.writestr("../../escape.txt", "x")
    raw = tmp_path / "raw" / "people"
    with pytest.raises(UnsafeArchiveError, match="contains '..'"):
        import_coco(_card(archive.as_uri(), export), raw)
    assert not (raw / "import.json").exists() and not (tmp_path / "escape.txt").exists()


def test_the_card_names_a_missing_file_inside_the_export(export: Path, tmp_path: Path):
    archive = write_zip(export, tmp_path / "export.zip")
    card = _card(archive.as_uri(), export, train="annotations/other.json")
    with pytest.raises(Exception, match=rf"coco.train 'annotations/other.json' not in the export .*{ANNOTATIONS}"):
        import_coco(card, tmp_path / "raw" / "people")


def test_archive_paths_must_stay_inside_it(export: Path):
    from hourglass.dataset_card import CardError

    with pytest.raises(CardError, match=r"coco.images '\.\./x'.*inside the archive"):
        _card("https://example.org/export.zip", export, images="../x")
    with pytest.raises(CardError, match="coco.sha256 pins the archive at coco.url"):
        parse_card({**_card("https://example.org/e.zip", export).model_dump(mode="json"),
                    "coco": {"train": "a.json", "valid": None, "images": "i", "valid_fraction": 0.1,
                             "sha256": "0" * 64}})


def test_export_changes_name_a_new_url(export: Path, tmp_path: Path):
    archive = write_zip(export, tmp_path / "export.zip")
    card = _card(archive.as_uri(), export)
    recorded = {"url": "https://old.example/export.zip", "etag": '"1"'}
    assert export_changes(card.coco, recorded, tmp_path) == [
        f"export URL changed: https://old.example/export.zip -> {archive.as_uri()}"]
    _, state = ensure_archive(archive.as_uri(), None, tmp_path / "cache")
    assert state["size"] == archive.stat().st_size


# Only size knobs shrunk: a tiny network, one variant, one epoch.
TINY = {
    "preprocess": {"workers": 1},
    "model": {"features": 16, "input_res": 64},
    "train": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4, "val_batch_size": 8, "workers": 0,
              "optimizer": "adam", "lr": 1e-3, "precision": "fp32"},
    "mlflow": {"enabled": False},
    "sweep": ["hg_stacked_int"],
}


def test_the_users_path_add_by_url_repro_grow_check_and_repro(export: Path, tmp_path: Path):
    """`pipeline.dataset add --url` (files found inside the export) -> `dvc repro preprocess` -> the sources check
    and the retrain flow's check task say unchanged -> the export grows on the server -> both name the change ->
    `dvc repro -f download preprocess` (what the flow runs) brings the new people in."""
    from prefect.logging import disable_run_logger

    from pipeline.flows import check_sources

    site = tmp_path / "site"
    site.mkdir()
    write_zip(export, site / "export.zip")
    root = tmp_path / "project"
    root.mkdir()
    env = make_project(root, merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY))
    with serving(site) as server:
        url = server.url("export.zip")
        added = run([sys.executable, "-m", "pipeline.dataset", "add", "people", "--url", url,
                     "--valid-fraction", "0.5"], root, env).stdout
        assert f"wrote {Path('datasets') / 'people.yaml'}" in added
        card = yaml.safe_load((root / "datasets" / "people.yaml").read_text())
        assert card["coco"] == {"train": ANNOTATIONS, "valid": None, "images": "images", "valid_fraction": 0.5,
                                "category_ids": None, "url": url, "sha256": None}
        params = yaml.safe_load((root / "params.yaml").read_text())
        (root / "params.yaml").write_text(yaml.safe_dump({**params, "dataset": "people"}, sort_keys=False))
        run(["git", "add", "-A"], root, env)
        run(["git", "commit", "-qm", "dataset people, by URL"], root, env)
        dvc(["repro", "preprocess"], root, env)
        raw = root / "data" / "raw" / "people"
        before = _splits(raw)
        assert json.loads(_sources(root, env)) == {"dataset": "people", "changed": False, "changes": []}
        with disable_run_logger():
            assert check_sources.fn(str(root), str(root / "params.yaml")) == []
        assert ".exports" not in run(["git", "status", "--porcelain", "--ignored=no"], root, env).stdout  # ignored
        grown = grow_export(export, 8)
        write_zip(export, site / "export.zip")
        check = json.loads(_sources(root, env))
        assert check["changed"] and check["changes"][0].startswith(f"export changed: {url} (ETag ")
        with disable_run_logger():
            assert check_sources.fn(str(root), str(root / "params.yaml")) == check["changes"]
        dvc(["repro", "-f", "download"], root, env)
        dvc(["repro", "preprocess"], root, env)
        assert json.loads(_sources(root, env))["changed"] is False
    after = _splits(raw)
    assert before["train"] <= after["train"] and before["valid"] <= after["valid"]
    assert set(grown) <= after["train"] | after["valid"]
    table = json.loads((root / "data" / "processed" / "people" / "preprocess.json").read_text())
    assert table  # preprocess ran on the grown import


def _sources(root: Path, env: dict[str, str]) -> str:
    return run([sys.executable, "-m", "pipeline.sources", "--json"], root, env).stdout.strip().splitlines()[-1]
