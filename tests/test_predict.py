"""``hourglass predict``: keypoints in original-image pixels from images, folders and videos, the flip symmetry of the
prediction, the outputs (JSON, CSV, overlay, JSON lines + annotated video), and clear errors for bad input. What the
command says about its model and the overlay's look: ``test_predict_model_info.py``.

The model is an untrained 1-stack, 32-feature network at 64 px (its keypoints are arbitrary but deterministic), run
in fp32 so results do not depend on bf16 rounding.
"""

from __future__ import annotations

import csv
import json
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from predict_models import cli, make_checkpoint, smooth_image

from hourglass.cli import build_parser
from hourglass.geometry import flip_points
from hourglass.inference.errors import PredictError
from hourglass.inference.inputs import as_rgb_array
from hourglass.inference.people import Person
from hourglass.inference.predictor import PosePredictor
from hourglass.joints import MPII

MPII_IMAGE = "mmpose/tests/data/mpii/004645041.jpg"  # 1280 x 720
BOX = (440, 160, 840, 560)  # the crop (1.25 x 400 px around the box centre) lies inside that image


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("predict-model") / "tiny" / "checkpoint.pt")


@pytest.fixture(scope="module")
def predictor(checkpoint: Path) -> PosePredictor:
    return PosePredictor.from_checkpoint(checkpoint, device="cpu", precision="fp32")


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
    assert "models:/hourglass-synthetic@champion" in result.stdout


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
