"""What ``hourglass predict`` says about its model (training data, validation score), the whole-image warning, the
confidence scale, the two-sided overlay and its legend, and the outputs' file mode.

The model is an untrained 1-stack, 32-feature network at 64 px (``predict_models.make_checkpoint``), run in fp32.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from predict_models import cli, make_checkpoint, smooth_image
from shipped import recipe_raw

from hourglass.cli import build_parser
from hourglass.config.params_file import parse_params
from hourglass.inference.people import Person
from hourglass.inference.predictor import PosePredictor
from hourglass.inference.trained_on import confidence_divisor
from hourglass.io.checkpoint import CheckpointError, save_checkpoint
from hourglass.joints import MPII
from hourglass.model import create_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("predict-model") / "tiny" / "checkpoint.pt")


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
                                overrides={"dataset": "synthetic_flic"},
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
        assert line.startswith("trained on: mpii (real photos), variant tiny, epoch 2;")
        assert "validation PCKh@0.5 (val/pckh/Mean) 20.25 % at epoch 2" in line
        assert (trained_on["score"], trained_on["score_epoch"], trained_on["synthetic"]) == (20.25, 2, False)
        assert synthetic_warning not in err
    elif kind == "synthetic-flic":
        assert line.startswith("trained on: the synthetic people (card synthetic_flic), not real photos")
        assert "validation PCK@0.2 (val/pck/Mean) 31.00 % at epoch 1 on the synthetic validation split" in line
        assert (trained_on["metric"], trained_on["score"], trained_on["joint_set"]) == ("val/pck/Mean", 31.0,
                                                                                       "synthetic_flic")
        assert synthetic_warning in err and trained_on["warnings"] == [synthetic_warning.removeprefix("warning: ")]
    elif kind == "serving-synthetic":
        assert line.startswith("trained on: the synthetic people (card synthetic), not real photos, variant hg, "
                               "epoch 3")
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
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["person's left", "person's right"]
    flic = overlay_figure(image, [np.full((11, 3), np.nan)], FLIC).axes[0].get_legend()
    assert [t.get_text() for t in flic.get_texts()] == ["left labels: image right (observer-centric)",
                                                        "right labels: image left (observer-centric)"]
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
