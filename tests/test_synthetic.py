"""The synthetic people dataset: real layout, determinism, occlusion labels, FLIC variant, and difficulty.

Budget: under 60 s on 2 cores (one medium dataset is generated once per module and shared).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from shipped import paper, write_params

from hourglass.config.params_file import ConfigError
from hourglass.data.synthetic import generate_dataset
from hourglass.data.synthetic_drawing import OCCLUDER, Canvas, draw_person, place
from hourglass.data.synthetic_figure import sample_skeleton
from hourglass.data.synthetic_look import Outfit
from hourglass.data.synthetic_scene import label_person
from hourglass.io.annotations import read_annotations
from hourglass.joints import FLIC, MPII
from hourglass.metrics import mpii_pckh
from pipeline.synthesize import main as synthesize_main

FIELDS = {"center", "scale", "part", "visible", "normalize", "imgname", "index", "person", "torsoangle"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    generate_dataset(paper("synthetic", train_images=160, valid_images=60, workers=2), out, progress=False)
    return out


def test_writes_the_real_layout(dataset: Path) -> None:
    for split in ("train", "valid"):
        path = dataset / "annot" / f"{split}.h5"
        with h5py.File(path, "r") as h5:
            assert FIELDS <= set(h5), f"{path}: missing {FIELDS - set(h5)}"
            assert h5.attrs["name"] == "mpii"
            part = h5["part"][()]
        table = read_annotations(path)
        assert table.joints.shape[1:] == (16, 2) and len(table) >= {"train": 160, "valid": 60}[split]
        assert part[table.annotated].min() >= 1.0, "on disk coordinates are 1-based"
        # MPII's head-derived scale: normalize = 0.1 * 200 * scale on every real row, and here too.
        np.testing.assert_allclose(table.normalize / (200 * table.scale), 0.1, rtol=1e-9)
        assert not (table.visible & ~table.annotated).any()
        for name in np.unique(table.imgname):
            assert (dataset / "images" / name).is_file(), f"{name} listed but not written"
        h, w = cv2.imread(str(dataset / "images" / table.imgname[0])).shape[:2]
        assert 240 <= h <= 360 and 320 <= w <= 480
        rows = table.imgname == table.imgname[0]
        inside = table.joints[rows][table.annotated[rows]]
        assert (inside >= 0).all() and (inside[:, 0] <= w - 1).all() and (inside[:, 1] <= h - 1).all()
    train = read_annotations(dataset / "annot" / "train.h5")
    side = 200 * train.scale
    rel = (train.joints - train.center[:, None]) / side[:, None, None]
    assert np.nanpercentile(np.abs(rel), 99) < 0.5, "the 200*scale crop must contain the person"
    assert 0.5 < train.visible.sum() / train.annotated.sum() < 0.95, "occlusion must hide some joints"
    assert train.extra["person"].max() >= 1, "other people are annotated as their own rows"
    assert not set(train.imgname) & set(read_annotations(dataset / "annot" / "valid.h5").imgname)


def test_mean_pose_scores_below_20_percent(dataset: Path) -> None:
    train = read_annotations(dataset / "annot" / "train.h5")
    valid = read_annotations(dataset / "annot" / "valid.h5")
    mean_pose = np.nanmean((train.joints - train.center[:, None]) / (200 * train.scale)[:, None, None], axis=0)
    pred = valid.center[:, None] + mean_pose[None] * (200 * valid.scale)[:, None, None]
    score = mpii_pckh(pred, valid.joints, valid.annotated, valid.normalize).as_dict()["Mean"]
    print(f"mean-pose PCKh@0.5 on the synthetic validation split: {score:.1f}%")
    assert 1.0 < score < 20.0


def _tables(out: Path) -> dict[str, dict[str, np.ndarray]]:
    result = {}
    for split in ("train", "valid"):
        with h5py.File(out / "annot" / f"{split}.h5", "r") as h5:
            result[split] = {k: h5[k][()] for k in h5}
    return result


def test_same_seed_gives_identical_files_regardless_of_workers(tmp_path: Path) -> None:
    cfg = paper("synthetic", train_images=6, valid_images=3, workers=1)
    generate_dataset(cfg, tmp_path / "a", progress=False)
    generate_dataset(cfg.model_copy(update={"workers": 2}), tmp_path / "b", progress=False)
    generate_dataset(cfg.model_copy(update={"seed": 1}), tmp_path / "c", progress=False)
    names = sorted(p.name for p in (tmp_path / "a" / "images").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b" / "images").iterdir()) and len(names) == 9
    for name in names:
        assert (tmp_path / "a" / "images" / name).read_bytes() == (tmp_path / "b" / "images" / name).read_bytes()
    a, b, c = _tables(tmp_path / "a"), _tables(tmp_path / "b"), _tables(tmp_path / "c")
    for split in a:
        assert a[split].keys() == b[split].keys()
        for key in a[split]:
            np.testing.assert_array_equal(a[split][key], b[split][key], err_msg=f"{split}/{key}")
    assert not np.array_equal(a["train"]["center"][:3], c["train"]["center"][:3]), "the seed must matter"


def test_occluded_joints_stay_annotated_but_not_visible() -> None:
    rng = np.random.default_rng(3)
    canvas = Canvas(np.zeros((400, 400, 3), np.float32), np.full((400, 400), -1, np.int32))
    person = place(sample_skeleton(rng), 200.0, np.array([200.0, 200.0]), Outfit.sample(rng, 200.0))
    draw_person(canvas, person, 0)
    clear = label_person(canvas, person, 0, MPII, rng)
    assert clear.annotated.all() and clear.visible.sum() >= 8
    canvas.ids[:] = OCCLUDER  # an object covering everything
    covered = label_person(canvas, person, 0, MPII, rng)
    assert covered.annotated.all() and not covered.visible.any()
    np.testing.assert_array_equal(covered.joints, clear.joints)


def test_flic_variant_is_observer_centric_with_torso_normalisation(tmp_path: Path) -> None:
    generate_dataset(paper("synthetic", train_images=8, valid_images=2, workers=1), tmp_path, progress=False,
                     joint_set=FLIC)
    with h5py.File(tmp_path / "annot" / "train.h5", "r") as h5:
        assert h5.attrs["name"] == "flic"
    table = read_annotations(tmp_path / "annot" / "train.h5")
    assert table.joints.shape[1:] == (FLIC.count, 2)
    lsho, rsho = table.joints[:, FLIC.index("l_shoulder")], table.joints[:, FLIC.index("r_shoulder")]
    both = table.annotated[:, FLIC.index("l_shoulder")] & table.annotated[:, FLIC.index("r_shoulder")]
    assert both.any() and (lsho[both, 0] >= rsho[both, 0]).all()
    assert (table.normalize > 0).all()


def test_cli_writes_dataset_and_rejects_bad_params(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = tmp_path / "params.yaml"
    write_params(params, {"synthetic": {"train_images": 3, "valid_images": 2, "workers": 1}}, base="preset")
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    (out / "images" / "train_999999.jpg").write_bytes(b"stale")
    assert synthesize_main(["--params", str(params), "--out", str(out)]) == 0
    assert not (out / "images" / "train_999999.jpg").exists(), "stale images of an earlier run are removed"
    assert len(read_annotations(out / "annot" / "valid.h5")) >= 2
    write_params(params, {"synthetic": {"width": [500, 300]}}, base="preset")
    assert synthesize_main(["--params", str(params), "--out", str(out)]) == 2
    assert "synthetic: Value error, width must be [low, high]" in capsys.readouterr().err


def test_config_rejects_inverted_ranges() -> None:
    with pytest.raises(ConfigError, match=r"person_height must be \[low, high\]"):
        paper("synthetic", person_height=(200, 100))
