"""``hourglass predict``: keypoints in original-image pixels from images, folders and videos, the flip symmetry of the
prediction, the outputs (JSON, CSV, overlay, JSON lines + annotated video), and clear errors for bad input; what the
command says about its model (training data, validation score), the whole-image warning, the confidence scale, the
two-sided overlay and its legend, and the outputs' file mode.

The model is an untrained 1-stack, 32-feature network at 64 px (its keypoints are arbitrary but deterministic), run
in fp32 so results do not depend on bf16 rounding.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from shipped import recipe_raw

from hourglass.cli import build_parser, main
from hourglass.geometry import flip_points
from hourglass.inference.errors import PredictError
from hourglass.inference.inputs import as_rgb_array
from hourglass.inference.people import Person
from hourglass.inference.predictor import PosePredictor
from hourglass.inference.trained_on import confidence_divisor
from hourglass.io.checkpoint import CheckpointError, save_checkpoint
from hourglass.joints import MPII
from hourglass.model import create_model
from hourglass.params_file import parse_params

MPII_IMAGE = "mmpose/tests/data/mpii/004645041.jpg"  # 1280 x 720
BOX = (440, 160, 840, 560)  # the crop (1.25 x 400 px around the box centre) lies inside that image


def make_checkpoint(path: Path, stacks: int = 1, features: int = 32, input_res: int = 64, seed: int = 0,
                    overrides: dict | None = None, extra: dict | None = None, joints: int = 16) -> Path:
    """A small untrained network saved as training saves one (weights + resolved params, the MPII recipe with
    ``overrides``; ``extra`` checkpoint entries such as ``history``); returns the path."""
    params = parse_params(recipe_raw("mpii", {"model": {"stacks": stacks, "features": features,
                                                                 "input_res": input_res}, **(overrides or {})}))
    torch.manual_seed(seed)
    model = create_model(stacks=stacks, features=features, joints=joints)
    save_checkpoint({"model": model.state_dict(), "config": params.model_dump(mode="json"), "variant": "tiny",
                     "epoch": 1, **(extra or {})}, path)
    return path


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("predict-model") / "tiny" / "checkpoint.pt")


@pytest.fixture(scope="module")
def predictor(checkpoint: Path) -> PosePredictor:
    return PosePredictor.from_checkpoint(checkpoint, device="cpu", precision="fp32")


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Photo-like RGB content (blurred noise), so crops are not flat."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def cli(*args: str) -> int:
    return main(["predict", *args, "--precision", "fp32", "--no-progress"])


def test_real_image_json_csv_and_overlay(anchor_dir, checkpoint, tmp_path):
    image_path = anchor_dir / MPII_IMAGE
    box = ",".join(map(str, BOX))
    assert cli(str(image_path), "--model", str(checkpoint.parent), "--box", box, "--json", str(tmp_path / "p.json"),
               "--csv", str(tmp_path / "p.csv"), "--overlay", str(tmp_path / "overlay")) == 0

    document = json.loads((tmp_path / "p.json").read_text())
    assert document["joint_names"] == list(MPII.names)
    [record] = document["images"]
    assert (record["image"], record["width"], record["height"]) == (str(image_path), 1280, 720)
    [person] = record["people"]
    keypoints = np.array(person["keypoints"])
    assert keypoints.shape == (16, 3)
    side = 1.25 * 400
    assert person["center"] == [640.0, 360.0] and person["scale"] == pytest.approx(side / 200)
    # Every keypoint lies in the crop window, which lies inside the image.
    assert np.all(np.abs(keypoints[:, 0] - 640) <= side / 2) and np.all(np.abs(keypoints[:, 1] - 360) <= side / 2)

    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert [r["joint"] for r in rows] == list(MPII.names)
    assert np.allclose([[float(r["x"]), float(r["y"]), float(r["confidence"])] for r in rows], keypoints)

    overlay = cv2.imread(str(tmp_path / "overlay" / "004645041_pose.png"))
    original = cv2.imread(str(image_path))
    assert overlay.shape == original.shape
    # The skeleton's colour appears around the predicted joints; elsewhere only the legend, a small box in a corner.
    changed = np.abs(overlay.astype(int) - original.astype(int)).max(axis=2) > 60
    ys, xs = np.nonzero(changed)
    window = (np.abs(xs - 640) <= side / 2 + 10) & (np.abs(ys - 360) <= side / 2 + 10)
    assert window.sum() > 500
    xs, ys = xs[~window], ys[~window]
    assert len(xs)  # the legend
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    assert (x0 < 15 or x1 > 1280 - 15) and (y0 < 15 or y1 > 720 - 15)
    assert (x1 - x0) * (y1 - y0) < 0.06 * 1280 * 720

    # The library gives the same numbers as the command (same crop, flip test, decoding).
    again = PosePredictor.from_checkpoint(checkpoint, precision="fp32").predict_image(
        as_rgb_array(image_path.read_bytes()), [Person.from_box(BOX, 1280, 720)])
    assert np.allclose(again[0].keypoints, keypoints, atol=0.01)


def test_mirrored_image_gives_mirrored_keypoints(predictor):
    # 128 px wide at 64 px input: the crop samples exactly halfway between pixels, symmetric under mirroring.
    image = smooth_image(128, 128, seed=3)
    people = [Person.whole_image(128, 128)]
    [pose] = predictor.predict_image(image, people)
    [mirrored] = predictor.predict_image(np.ascontiguousarray(image[:, ::-1]), people)
    expected = flip_points(pose.keypoints[:, :2], 128, MPII.flip)
    assert np.allclose(mirrored.keypoints[:, :2], expected, atol=1e-6)
    assert np.allclose(mirrored.keypoints[:, 2], pose.keypoints[np.argsort(MPII.flip), 2], atol=1e-5)
    assert not np.allclose(mirrored.keypoints[:, :2], pose.keypoints[:, :2])  # the test is not vacuous


def test_default_person_is_the_whole_image_and_mpii_scale_is_adjusted():
    assert Person.whole_image(640, 480) == Person((319.5, 239.5), 3.2)
    assert Person.from_mpii((100, 200), 2.0, 640, 480) == Person((100.0, 230.0), 2.5)
    assert Person.from_box((10, 20, 110, 420), 640, 480) == Person((60.0, 220.0), 2.5)


def test_batched_folder_equals_one_by_one(predictor, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    images = [smooth_image(90 + 10 * i, 120, seed=i) for i in range(3)]
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"im{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    batched = predictor.predict([(im, [Person.whole_image(120, im.shape[0])]) for im in images])
    for image, poses in zip(images, batched, strict=True):
        [alone] = predictor.predict_image(image)
        assert np.allclose(poses[0].keypoints, alone.keypoints, atol=1e-4)


def test_folder_reports_bad_files_and_goes_on(anchor_dir, checkpoint, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a_good.jpg").write_bytes((anchor_dir / MPII_IMAGE).read_bytes())
    (folder / "b_noise.jpg").write_bytes(b"this is not an image")
    data = (anchor_dir / MPII_IMAGE).read_bytes()
    (folder / "c_truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    out = tmp_path / "p.json"
    assert cli(str(folder), "--model", str(checkpoint), "--json", str(out)) == 1
    err = capsys.readouterr().err
    assert "b_noise.jpg: not a decodable image" in err and "c_truncated.jpg: truncated JPEG" in err
    assert "2 of 3 image(s) failed" in err
    records = {Path(r["image"]).name: r for r in json.loads(out.read_text())["images"]}
    assert sorted(records) == ["a_good.jpg", "b_noise.jpg", "c_truncated.jpg"]
    assert len(records["a_good.jpg"]["people"][0]["keypoints"]) == 16 and "error" not in records["a_good.jpg"]
    assert records["b_noise.jpg"]["people"] == [] and "not a decodable" in records["b_noise.jpg"]["error"]


def test_box_outside_the_image_is_named(anchor_dir, checkpoint, capsys):
    assert cli(str(anchor_dir / MPII_IMAGE), "--model", str(checkpoint), "--box", "1500,10,1700,300") == 1
    assert "box 1500,10,1700,300 lies outside the 1280x720 image" in capsys.readouterr().err
    with pytest.raises(PredictError, match="x2 > x1"):
        Person.from_box((50, 10, 40, 30), 100, 100)
    assert cli(str(anchor_dir / MPII_IMAGE), "--model", str(checkpoint), "--box", "1,2,3") == 1
    assert "--box '1,2,3': expected 4 comma-separated numbers" in capsys.readouterr().err


class _Touch:
    """Unpickling this would create ``path``: proof that a checkpoint load ran code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.mark.parametrize("kind", ["missing", "pickle", "text", "foreign"])
def test_wrong_model_file_is_a_clear_error_and_nothing_is_unpickled(anchor_dir, tmp_path, capsys, kind):
    model = tmp_path / f"model-{kind}.pt"
    marker = tmp_path / "code-ran"
    if kind == "pickle":
        torch.save({"model": _Touch(marker)}, model)
    elif kind == "text":
        model.write_text("not a checkpoint")
    elif kind == "foreign":
        torch.save({"weights": torch.zeros(2)}, model)  # readable, but not one of ours
    assert cli(str(anchor_dir / MPII_IMAGE), "--model", str(model)) == 1
    err = capsys.readouterr().err
    assert str(model) in err
    expected = {"missing": "checkpoint not found", "pickle": "not a readable checkpoint",
                "text": "not a readable checkpoint", "foreign": "not a version-1 hourglass checkpoint"}[kind]
    assert expected in err
    assert not marker.exists()


def test_video_gives_json_lines_and_an_annotated_video(checkpoint, tmp_path):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 80))
    for i in range(7):
        writer.write(smooth_image(80, 96, seed=i))
    writer.release()
    assert cli(str(video), "--model", str(checkpoint), "--json", str(tmp_path / "f.jsonl"), "--csv",
               str(tmp_path / "f.csv"), "--overlay", str(tmp_path / "out"), "--batch-size", "3") == 0
    lines = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(7))
    assert lines[3]["time_s"] == pytest.approx(0.3)
    assert all(np.array(line["people"][0]["keypoints"]).shape == (16, 3) for line in lines)
    assert len(list(csv.DictReader(open(tmp_path / "f.csv")))) == 7 * 16
    capture = cv2.VideoCapture(str(tmp_path / "out" / "clip_pose.mp4"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 7 and frames[0].shape == (80, 96, 3)
    assert not list((tmp_path / "out").glob(".*"))  # no temporary file left behind

    # A run that fails part-way (a box outside the frames) leaves no output and no temporary file at all.
    failed = tmp_path / "failed"
    assert cli(str(video), "--model", str(checkpoint), "--box", "500,500,600,600", "--json",
               str(failed / "f.jsonl"), "--csv", str(failed / "f.csv"), "--overlay", str(failed)) == 1
    assert sorted(p.name for p in failed.iterdir()) == []


def test_every_option_is_explained_and_both_entry_points_run(checkpoint):
    predict = build_parser()._subparsers._group_actions[0].choices["predict"]
    for action in predict._actions:
        assert action.help, f"option {action.option_strings or action.dest} has no help"
    result = subprocess.run([sys.executable, "-m", "hourglass.inference", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "--box" in result.stdout and "--overlay" in result.stdout
    assert "models:/hourglass@champion" in result.stdout


def test_image_arrays_and_base64_decode_alike(anchor_dir):
    data = (anchor_dir / MPII_IMAGE).read_bytes()
    import base64

    from_bytes = as_rgb_array(data)
    assert from_bytes.shape == (720, 1280, 3)
    assert np.array_equal(as_rgb_array(base64.b64encode(data).decode()), from_bytes)
    assert np.array_equal(as_rgb_array(from_bytes.astype(np.float32)), from_bytes)
    with pytest.raises(PredictError, match="row 3: not a decodable image"):
        as_rgb_array(b"garbage", "row 3")
    with pytest.raises(PredictError, match=r"shape \(4, 4, 7\)"):
        as_rgb_array(np.zeros((4, 4, 7), np.uint8))
    assert pickle.loads(pickle.dumps(Person((1.0, 2.0), 3.0))) == Person((1.0, 2.0), 3.0)


def test_predict_benchmark_prints_latency_and_throughput_as_json(capsys):
    from hourglass.bench.__main__ import main as bench

    assert bench(["predict", "--stacks", "1", "--features", "16", "--res", "64", "--batch", "2", "--iters", "1",
                  "--warmup", "0", "--height", "120", "--width", "160", "--precision", "fp32"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["benchmark"] == "predict" and result["batch"] == 2 and result["flip_test"] is True
    assert result["latency_ms"] > 0 and result["batched_img_s"] > 0
    assert result["model"] == {"stacks": 1, "features": 16, "input_res": 64, "checkpoint": None}


# ---------------------------------------------------------------------------------------------------------------
# What predict says about its model (issue 14, item 8)


def _png(path: Path, height: int = 96, width: int = 80, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(smooth_image(height, width, seed), cv2.COLOR_RGB2BGR))
    return path


def _serving_checkpoint(path: Path, config: dict) -> Path:
    from hourglass.tracking.runs import serving_checkpoint

    torch.manual_seed(0)
    save_checkpoint(serving_checkpoint(create_model(stacks=1, features=32), 64, config, "hg", 3), path)
    return path


@pytest.mark.parametrize("kind", ["mpii-history", "synthetic-flic", "serving-synthetic", "no-dataset"])
def test_predict_says_what_the_model_was_trained_on_and_its_score(tmp_path, capsys, kind):
    real_history = [{"epoch": 1.0, "val/pckh/Mean": 12.5, "val/loss": 0.01},
                    {"epoch": 2.0, "val/pckh/Mean": 20.25, "val/pck/Mean": 99.0}]
    if kind == "mpii-history":
        model = make_checkpoint(tmp_path / "m.pt", extra={"history": real_history, "epoch": 2})
    elif kind == "synthetic-flic":  # the FLIC family's headline, not the PCKh a decoy entry also holds
        model = make_checkpoint(tmp_path / "m.pt", joints=11,
                                overrides={"dataset": "synthetic", "synthetic": {"joint_set": "flic"}},
                                extra={"history": [{"epoch": 1.0, "val/pck/Mean": 31.0, "val/pckh/Mean": 77.0},
                                                   {"epoch": 2.0, "val/pck/Mean": float("nan")}], "epoch": 2})
    elif kind == "serving-synthetic":  # hourglass.tracking.runs.serving_checkpoint: config, variant, epoch, no history
        config = parse_params(recipe_raw("mpii", {"dataset": "synthetic"})).model_dump(mode="json")
        model = _serving_checkpoint(tmp_path / "m.pt", config)
    else:
        model = _serving_checkpoint(tmp_path / "m.pt", {})
    out = tmp_path / "p.json"
    assert cli(str(_png(tmp_path / "a.png")), "--model", str(model), "--json", str(out)) == 0
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if line.startswith("trained on: ")]
    trained_on = json.loads(out.read_text())["trained_on"]
    assert trained_on["summary"] == line.removeprefix("trained on: ")
    synthetic_warning = ("warning: trained on the synthetic people, not on real photos: expect poor results on "
                         "real images")
    if kind == "mpii-history":
        assert line.startswith("trained on: MPII (real photos), variant tiny, epoch 2;")
        assert "validation PCKh@0.5 (val/pckh/Mean) 20.25 % at epoch 2" in line
        assert (trained_on["score"], trained_on["score_epoch"], trained_on["synthetic"]) == (20.25, 2, False)
        assert synthetic_warning not in err
    elif kind == "synthetic-flic":
        assert line.startswith("trained on: the synthetic people (FLIC joints), not real photos")
        assert "validation PCK@0.2 (val/pck/Mean) 31.00 % at epoch 1 on the synthetic validation split" in line
        assert (trained_on["metric"], trained_on["score"], trained_on["joint_set"]) == ("val/pck/Mean", 31.0, "flic")
        assert synthetic_warning in err and trained_on["warnings"] == [synthetic_warning.removeprefix("warning: ")]
    elif kind == "serving-synthetic":
        assert line.startswith("trained on: the synthetic people (MPII joints), not real photos, variant hg, epoch 3")
        assert "validation score unknown (the checkpoint stores no validation metrics)" in line
        assert trained_on["score"] is None and trained_on["synthetic"] is True
        assert synthetic_warning in err
    else:
        assert line == ("trained on: unknown (the checkpoint's config names no dataset), variant hg, epoch 3; "
                        "validation score unknown (no known dataset to score)")
        assert trained_on["dataset"] is None and synthetic_warning not in err


def test_whole_image_person_is_warned_about_by_image_name(checkpoint, tmp_path, capsys):
    folder = tmp_path / "images"
    first, second = _png(folder / "first.png"), _png(folder / "second.png", seed=1)
    assert cli(str(folder), "--model", str(checkpoint), "--json", str(tmp_path / "p.json")) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert warnings == [f"warning: {p}: no --box or --center/--scale given, so the whole image is taken as one "
                        "person, centred and filling it; a smaller or off-centre person gets a skeleton on the "
                        "background: give --box" for p in (first, second)]
    for given in (["--box", "10,10,70,90"], ["--center", "40,40", "--scale", "0.3"]):
        assert cli(str(first), "--model", str(checkpoint), "--json", str(tmp_path / "q.json"), *given) == 0
        assert "warning" not in capsys.readouterr().err
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for i in range(2):
        writer.write(smooth_image(48, 64, seed=i))
    writer.release()
    assert cli(str(video), "--model", str(checkpoint), "--json", str(tmp_path / "f.jsonl")) == 0
    assert f"warning: {video}: no --box or --center/--scale given" in capsys.readouterr().err


def test_confidence_is_the_heatmap_peak_over_the_target_scale(tmp_path, capsys):
    from hourglass.inference.runner import predict_heatmaps

    image = smooth_image(96, 80, seed=5)
    scaled = PosePredictor.from_checkpoint(make_checkpoint(tmp_path / "x10.pt", overrides={"train": {
        "target_scale": 10.0}}), precision="fp32")
    plain = PosePredictor.from_checkpoint(make_checkpoint(tmp_path / "x1.pt"), precision="fp32")
    assert (scaled.target_scale, plain.target_scale) == (10.0, 1.0)
    [a], [b] = scaled.predict_image(image), plain.predict_image(image)
    assert np.array_equal(a.keypoints[:, :2], b.keypoints[:, :2])
    assert np.allclose(a.keypoints[:, 2] * 10.0, b.keypoints[:, 2], rtol=1e-6, atol=1e-9)
    # The unscaled confidence is the final flip-averaged heatmap's peak itself.
    crop = torch.from_numpy(plain.crop(image, Person.whole_image(80, 96))[None])
    final, _ = predict_heatmaps(plain.model, crop, plain.precision, MPII.flip)
    assert np.allclose(b.keypoints[:, 2], final[0].amax(dim=(-2, -1)).numpy(), atol=1e-6)
    assert not np.allclose(a.keypoints[:, 2], b.keypoints[:, 2])  # not vacuous: the peaks are not all 0

    out = tmp_path / "p.json"
    assert cli(str(_png(tmp_path / "a.png", 96, 80, seed=5)), "--model", str(tmp_path / "x10.pt"), "--json",
               str(out)) == 0
    document = json.loads(out.read_text())
    assert document["confidence"]["target_scale"] == 10.0
    assert "divided by the checkpoint's train.target_scale" in document["confidence"]["meaning"]
    assert np.allclose(np.array(document["images"][0]["people"][0]["keypoints"])[:, 2], a.keypoints[:, 2],
                       atol=1e-4)
    predict = build_parser()._subparsers._group_actions[0].choices["predict"]
    assert "divided by the checkpoint's train.target_scale" in " ".join(predict.format_help().split())
    import hourglass.inference.predictor

    assert "divided by\nthe checkpoint config's ``train.target_scale``" in hourglass.inference.predictor.__doc__

    with pytest.raises(CheckpointError, match="m.pt: train.target_scale 'ten'"):
        confidence_divisor({"train": {"target_scale": "ten"}}, "m.pt")
    assert confidence_divisor({}, "m.pt") == 1.0  # a config without the key: raw peaks


def _front_facing_mpii(width: int, height: int) -> np.ndarray:
    """An upright MPII person facing the camera: the person's left (l_*) joints at larger x."""
    cx, top, h = width / 2, 0.15 * height, 0.7 * height
    at = {"head_top": (0, 0), "upper_neck": (0, 0.12), "thorax": (0, 0.18), "pelvis": (0, 0.5),
          "l_shoulder": (0.12, 0.18), "l_elbow": (0.16, 0.34), "l_wrist": (0.18, 0.48), "l_hip": (0.07, 0.5),
          "l_knee": (0.08, 0.75), "l_ankle": (0.09, 1.0)}
    for name, (dx, dy) in list(at.items()):
        if name.startswith("l_"):
            at["r_" + name[2:]] = (-dx, dy)
    return np.array([[cx + at[n][0] * h, top + at[n][1] * h, 0.9] for n in MPII.names])


def test_overlay_draws_the_two_sides_in_two_colours_with_a_legend(tmp_path):
    from matplotlib.colors import to_hex, to_rgb

    from hourglass.draw import CENTRE_COLOUR, LEFT_COLOUR, RIGHT_COLOUR, legend_corner, overlay_figure, pose_overlay
    from hourglass.joints import FLIC

    image = np.full((300, 400, 3), 90, np.uint8)
    pose = _front_facing_mpii(400, 300)
    fig = overlay_figure(image, [pose], MPII)
    ax = fig.axes[0]
    expected = {"left": LEFT_COLOUR, "right": RIGHT_COLOUR, "centre": CENTRE_COLOUR}
    for line, (a, b) in zip(ax.lines, MPII.limbs, strict=True):
        names = {MPII.names[a][:2], MPII.names[b][:2]} & {"l_", "r_"}
        side = {"l_": "left", "r_": "right"}[names.pop()] if len(names) == 1 else "centre"
        assert to_hex(line.get_color()) == expected[side], (MPII.names[a], MPII.names[b])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["person's left (l_*)", "person's right (r_*)"]
    flic = overlay_figure(image, [np.full((11, 3), np.nan)], FLIC).axes[0].get_legend()
    assert [t.get_text() for t in flic.get_texts()] == ["FLIC l_*: image right (observer-centric)",
                                                        "FLIC r_*: image left (observer-centric)"]
    assert overlay_figure(image[:100, :150], [pose], MPII).axes[0].get_legend() is None  # too small for one

    # In pixels: the left colour lies right of the midline (the person's left, facing us), the right colour left.
    drawn = pose_overlay(image, [pose], MPII, legend=False).astype(int)

    def near(colour: str) -> np.ndarray:
        return np.abs(drawn - np.array(to_rgb(colour)) * 255).max(axis=2) < 30

    left, right = np.nonzero(near(LEFT_COLOUR))[1], np.nonzero(near(RIGHT_COLOUR))[1]
    assert len(left) > 200 and len(right) > 200
    assert np.mean(left > 200) > 0.95 and np.mean(right < 200) > 0.95
    # The legend goes to the corner farthest from the joints.
    assert legend_corner([np.array([[10.0, 10.0, 1.0], [60.0, 30.0, 1.0]])], 400, 300) == "lower right"
    assert legend_corner([np.array([[390.0, 290.0, 1.0]])], 400, 300) == "upper left"
    cv2.imwrite(str(tmp_path / "overlay.png"), cv2.cvtColor(pose_overlay(image, [pose], MPII), cv2.COLOR_RGB2BGR))


def test_outputs_keep_the_umask_mode(checkpoint, tmp_path):
    from matplotlib.figure import Figure

    from hourglass.draw import save_figure

    image = _png(tmp_path / "in" / "a.png")
    video = tmp_path / "in" / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for i in range(2):
        writer.write(smooth_image(48, 64, seed=i))
    writer.release()
    out = tmp_path / "out"
    previous = os.umask(0o027)
    try:
        assert cli(str(image), "--model", str(checkpoint), "--json", str(out / "p.json"), "--csv",
                   str(out / "p.csv"), "--overlay", str(out / "img")) == 0
        assert cli(str(video), "--model", str(checkpoint), "--json", str(out / "f.jsonl"), "--csv",
                   str(out / "f.csv"), "--overlay", str(out / "vid")) == 0
        save_figure(Figure(figsize=(1, 1)), out / "figure.png")
    finally:
        os.umask(previous)
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert [p.relative_to(out).as_posix() for p in written] == ["f.csv", "f.jsonl", "figure.png", "img/a_pose.png",
                                                                 "p.csv", "p.json", "vid/clip_pose.mp4"]
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~0o027, path
