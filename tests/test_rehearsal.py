"""Real-data rehearsals: the shipped recipes ``recipes/mpii.yaml`` and ``recipes/flic.yaml`` through ``dvc repro``.

A user reproduces the paper with ``python -m pipeline.recipe mpii && dvc repro``. These tests take that path in
a fresh git + DVC repository, against a mirror served from 127.0.0.1 in the datasets' real layouts, with every key
of params.yaml as the recipe makes it except the size knobs (``SIZE``), the worker counts, the MLflow store (an SQLite
file of the test's own) and the download URLs (pointed at the mirror, pinned by sha256 and size). So a recipe that
cannot run cannot land.

The mirrors:

* MPII: ``mpii_human_pose_v1.tar.gz`` whose members are ``images/<name>.jpg``, the five real MPII images of
  ``shared/anchor-data``; ``valid.h5`` is the five real validation rows of those images, ``train.h5`` the same five
  people twice (the recipe's batch of 6 must fit in the split) and ``test.h5`` the five as unlabelled test rows
  whose ``index`` points into a small annotation release built in the real struct layout
  (``mpii_human_pose_v1_u12_2.zip``).
* FLIC: ``FLIC.zip`` with ``FLIC/images/<name>.jpg``: stand-in 720 x 480 images (a stick figure on noise), named
  as rows of the real FLIC ``train.h5`` / ``valid.h5``, and those rows.

Each trains with more samples per epoch than its split holds (the case that used to stop the MPII recipe at its
first step: 8,000 x 6 samples against 22,246 people).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from dvc_project import REPO, dvc, make_project, merge  # noqa: E402
from shipped import recipe_raw  # noqa: E402

from hourglass.config.recipes import changed_keys  # noqa: E402

MPII_IMAGES = ("004645041.jpg", "005808361.jpg", "051423444.jpg", "052475643.jpg", "060754485.jpg")
MPII_ANNOT = "pose-hg-train/data/mpii/annot/valid.h5"
FLIC_ANNOT = "pose-hg-train/data/flic/annot"
FLIC_TRAIN_ROWS, FLIC_VALID_ROWS = 8, 4
STEPS = 3  # x the recipe's batch of 6 = 18 samples per epoch: more than either training split (10 and 8 people)

# Only what a rehearsal may shrink: the network's size, the run's length, the sweep, worker counts.
SIZE = {
    "model": {"stacks": 1, "features": 16, "input_res": 64, "stem_width": 16},
    "train": {"epochs": 2, "steps_per_epoch": STEPS, "val_batch_size": 8, "workers": 0},
    "preprocess": {"workers": 1},
    "synthetic": {"workers": 1},
}
SWEEP = {"mpii": ["s8m1"], "flic": ["hg"]}  # the recipes' champion variants (flows.champion_variant)


# -- the mirror ---------------------------------------------------------------------------------------------------
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def mirror_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on 127.0.0.1, and its base URL."""
    root = tmp_path_factory.mktemp("mirror")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def cut_h5(src: Path, dst: Path, rows: list[int], replace: dict[str, np.ndarray] | None = None) -> None:
    """``src``'s rows ``rows`` (every dataset, dtypes and attributes kept), with ``replace``'s datasets swapped in."""
    replace = replace or {}
    dst.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(src, "r") as h5, h5py.File(dst, "w") as out:
        out.attrs.update(dict(h5.attrs))
        for key in h5:
            out[key] = replace[key] if key in replace else h5[key][()][rows]


def _tar_gz(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))


def build_mpii_mirror(out: Path, anchor: Path) -> None:
    """The MPII mirror described in the module docstring."""
    from mpii_release import write_release_zip

    out.mkdir(parents=True)
    images = anchor / "mmpose" / "tests" / "data" / "mpii"
    _tar_gz(out / "mpii_human_pose_v1.tar.gz", {f"images/{n}": (images / n).read_bytes() for n in MPII_IMAGES})
    valid = anchor / MPII_ANNOT
    with h5py.File(valid, "r") as h5:
        names = [n.decode() for n in h5["imgname"][()]]
        rows = [names.index(n) for n in MPII_IMAGES]
        center, scale, part = h5["center"][()][rows], h5["scale"][()][rows], h5["part"][()][rows]
    cut_h5(valid, out / "valid.h5", rows)
    cut_h5(valid, out / "train.h5", rows + rows)
    # The release: one training image first (so "img_train == 0" has something to leave out), then the five as
    # test images; test.h5's index is 0-based into that annolist. objpos undoes the h5's centre adjustment.
    scale_provided = scale / 1.25
    objpos = np.stack([center[:, 0], center[:, 1] - 15 * scale_provided], axis=1)
    cut_h5(valid, out / "test.h5", rows, replace={
        "index": np.arange(1, len(rows) + 1, dtype=np.float64), "person": np.zeros(len(rows)),
        "part": np.full_like(part, -1.0), "visible": np.zeros(part.shape[:2])})
    people = [[{"objpos": tuple(p), "scale": float(s)}] for p, s in zip(objpos, scale_provided, strict=True)]
    write_release_zip(out / "mpii_human_pose_v1_u12_2.zip",
                      images=["000000000.jpg", *(names[r] for r in rows)], img_train=[1] + [0] * len(rows),
                      people=[[]] + people)


def _stand_in(joints: np.ndarray, seed: int) -> bytes:
    """A 720 x 480 JPEG: noise with a stick figure through the row's joints (1-based pixels)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(40, 120, size=(480, 720, 3), dtype=np.uint8)
    points = [tuple(int(v) for v in p - 1) for p in joints]
    for a, b in ((0, 1), (1, 2), (3, 4), (4, 5), (0, 3), (0, 6), (3, 7), (6, 7), (8, 10), (9, 10)):
        cv2.line(image, points[a], points[b], (230, 200, 160), 6)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def build_flic_mirror(out: Path, anchor: Path) -> None:
    """The FLIC mirror described in the module docstring."""
    out.mkdir(parents=True)
    members = {}
    for split, count in (("train", FLIC_TRAIN_ROWS), ("valid", FLIC_VALID_ROWS)):
        src = anchor / FLIC_ANNOT / f"{split}.h5"
        cut_h5(src, out / f"{split}.h5", list(range(count)))
        with h5py.File(src, "r") as h5:
            for i in range(count):
                members[f"FLIC/images/{h5['imgname'][i].decode()}"] = _stand_in(h5["part"][i], seed=i)
    with zipfile.ZipFile(out / "FLIC.zip", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


MIRRORS = {"mpii": build_mpii_mirror, "flic": build_flic_mirror}


def mirrored_sources(shipped: list[dict[str, Any]], folder: Path, base_url: str) -> list[dict[str, Any]]:
    """The recipe's download sources with each URL pointed at the mirror's file of the same name, pinned by its
    sha256 and size. Paths and extraction stay as shipped: the mirror must have the real layout."""
    out = []
    for source in shipped:
        name = source["url"].rsplit("/", 1)[-1]
        local = folder / name
        assert local.is_file(), f"the mirror has no {name} for the recipe's source {source['url']}"
        data = local.read_bytes()
        mirrored = {k: v for k, v in source.items() if k not in ("url", "sha256", "git_blob", "size")}
        out.append({**mirrored, "url": f"{base_url}/{folder.name}/{name}",
                    "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    return out


def recipe_params(dataset: str) -> dict[str, Any]:
    """params.yaml with the shipped recipe applied, and only the rehearsal's overrides."""
    return merge(recipe_raw(dataset), merge(SIZE, {"sweep": SWEEP[dataset]}))


def mirror_card(dataset: str, folder: Path, base_url: str) -> dict[str, dict[str, Any]]:
    """The shipped card's download list pointed at the mirror (make_project's ``cards``)."""
    shipped = yaml.safe_load((REPO / "datasets" / f"{dataset}.yaml").read_text())["download"]
    return {dataset: {"download": mirrored_sources(shipped, folder, base_url)}}


@pytest.fixture(scope="module", params=["mpii", "flic"])
def rehearsal(request, mirror_root, anchor_dir, tmp_path_factory, _migrated_db):
    """``dvc repro`` of the recipe in a fresh repository; (dataset, root, env, output of dvc repro)."""
    dataset = request.param
    served, base_url = mirror_root
    MIRRORS[dataset](served / dataset, anchor_dir)
    root = tmp_path_factory.mktemp(f"rehearsal-{dataset}")
    env = make_project(root, recipe_params(dataset), mlflow_db=_migrated_db,
                       cards=mirror_card(dataset, served / dataset, base_url))
    env["HOURGLASS_ANCHOR_DATA"] = str(anchor_dir)
    done = dvc(["repro"], root, env)
    return dataset, root, env, done.stdout + done.stderr


def test_only_the_allowed_keys_differ_from_the_shipped_recipe(rehearsal):
    dataset, root, _, _ = rehearsal
    shipped = recipe_raw(dataset)
    used = yaml.safe_load((root / "params.yaml").read_text())
    allowed = {"model.stacks", "model.features", "model.input_res", "model.stem_width", "train.epochs",
               "train.steps_per_epoch", "train.val_batch_size", "train.workers", "preprocess.workers",
               "synthetic.workers", "sweep"}
    assert changed_keys(shipped, used) <= allowed
    card = yaml.safe_load((root / "datasets" / f"{dataset}.yaml").read_text())  # the mirror: its URLs only
    shipped_card = yaml.safe_load((REPO / "datasets" / f"{dataset}.yaml").read_text())
    assert {k for k in card if card[k] != shipped_card[k]} == {"download"}


def test_training_takes_more_samples_per_epoch_than_the_split_holds(rehearsal):
    dataset, root, _, output = rehearsal
    people = 10 if dataset == "mpii" else FLIC_TRAIN_ROWS
    assert (f"an epoch is {STEPS} steps of 6 = {STEPS * 6} samples, {STEPS * 6 / people:.2f} passes over the "
            f"{people} training people") in output
    (variant,) = SWEEP[dataset]
    metrics = json.loads((root / "models" / variant / "seed-0" / "metrics.json").read_text())
    assert metrics["steps"] == 2 * STEPS


def test_metrics_have_the_datasets_layout(rehearsal):
    dataset, root, _, _ = rehearsal
    (variant,) = SWEEP[dataset]
    evaluated = json.loads((root / "models" / variant / "seed-0" / "eval" / "metrics.json").read_text())
    trained = json.loads((root / "models" / variant / "seed-0" / "metrics.json").read_text())
    if dataset == "mpii":
        assert evaluated["metric"] == "PCKh@0.5" and evaluated["num_people"] == len(MPII_IMAGES)
        assert {"Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean"} <= set(evaluated["final"])
        assert "val/pckh/Mean" in trained and "val/figure4" in trained
        assert len(evaluated["stacks"]) == 8  # s8m1: every stack scored on its own
    else:
        assert evaluated["metric"] == "PCK@0.2" and evaluated["num_people"] == FLIC_VALID_ROWS
        assert {"Elbow", "Wrist", "Mean"} <= set(evaluated["final"])
        assert "val/pck/Elbow" in trained and "val/pck/Wrist" in trained and "val/pckh/Mean" not in trained


def test_report_is_in_its_real_data_form_beside_the_papers_numbers(rehearsal):
    dataset, root, _, _ = rehearsal
    report = (root / "reports" / "results.md").read_text()
    (variant,) = SWEEP[dataset]
    assert f"**{variant}**" in report and "on the **synthetic** people" not in report
    if dataset == "mpii":
        assert "Validation PCKh@0.5" in report and "97.7" in report  # the paper's Head figure
        assert "authors' released model (measured)" in report
    else:
        assert "Validation PCK@0.2" in report and "99.0" in report and "97.0" in report  # the paper's FLIC table
    summary = json.loads((root / "reports" / "summary.json").read_text())
    assert summary["dataset"] == dataset and variant in summary["variants"]


def test_mpii_test_people_become_a_submission_file(rehearsal):
    """MPII: the test people are predicted and written in the annotation release's layout, read back to the same
    predictions; FLIC has no test server and says so."""
    from hourglass.io.eval_files import read_predictions
    from hourglass.io.mpii_submission import read_submission

    dataset, root, _, _ = rehearsal
    (variant,) = SWEEP[dataset]
    test_dir = root / "models" / variant / "seed-0" / "eval" / "test"
    status = json.loads((test_dir / "status.json").read_text())
    if dataset == "flic":
        assert status == {"test_split": False, "reason": "dataset 'flic' has no test server"}
        return
    assert status["test_split"] and status["people"] == len(MPII_IMAGES) and status["people_missing"] == 0
    preds = read_predictions(test_dir / "test_preds.h5")
    with h5py.File(root / "data" / "raw" / "mpii" / "annot" / "test.h5", "r") as h5:
        names = [n.decode() for n in h5["imgname"][()]]
    back = read_submission(test_dir / "pred_keypoints_mpii.mat")
    assert sorted(back) == sorted((name, 0) for name in names)
    for row, name in enumerate(names):
        np.testing.assert_allclose(back[(name, 0)], preds[row])


def test_a_second_repro_does_nothing(rehearsal):
    _, root, env, _ = rehearsal
    assert json.loads(dvc(["status", "--json"], root, env).stdout) == {}
    again = dvc(["repro"], root, env)
    assert "Running stage" not in again.stdout + again.stderr
