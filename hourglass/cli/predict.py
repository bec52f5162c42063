"""``hourglass predict``: keypoints of people in images, folders or a video (also ``python -m hourglass.inference``).

Outputs are written under a temporary name and renamed, so a reader never sees half a file. A folder run reports
every image that failed (unreadable, not an image, a box outside it) on stderr and in the JSON, goes on with the
rest, and exits 1 when any failed; a bad model or bad arguments stop the run at once (exit 1 / 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from hourglass.cli.outputs import csv_rows, csv_text, dumps, overlay_path, write_png, write_text
from hourglass.cli.video import run_video
from hourglass.export.deps import MissingPackageError
from hourglass.inference.errors import PredictError
from hourglass.inference.inputs import expand_inputs, is_video, read_image
from hourglass.inference.people import parse_numbers, people_for, whole_image_warning
from hourglass.inference.predictor import CONFIDENCE_NOTE, PosePredictor, result_record
from hourglass.inference.runtimes import RUNTIME_HELP, RUNTIMES
from hourglass.io.checkpoint import CheckpointError

DESCRIPTION = """\
Keypoints of people in images, folders of images, or a video, with a trained stacked hourglass.

Each person is cropped as in training and run with the flip test; keypoints come back in the original image's
pixels. A folder run reports every image that failed (unreadable, not an image, a box outside it) on stderr and in
the JSON, goes on with the rest, and exits 1 when any failed; a bad model or bad arguments stop the run (exit 1/2).
Outputs are written under a temporary name and renamed, so a reader never sees half a file; they get the usual
mode of a new file (0666 less the umask).

What the model is, on stderr before any prediction (and under "trained_on" in an image run's JSON):
  model: <checkpoint or URI> (stacks, features, input size, joints), precision, flip test
  trained on: <dataset>, variant, epoch; validation <metric> (<key>) <score> % at epoch N
    -- from the checkpoint's stored config and per-epoch metrics: the family's headline (PCKh@0.5 Mean for
    MPII, PCK@0.2 Mean for FLIC) of the latest validated epoch; "validation score unknown" when the checkpoint
    stores no metrics (serving checkpoints, such as those of models:/ URIs, store none)
  lineage: card <name> <digest>, preprocessed data <fingerprint> (dvc.lock <md5>), N training / M validation
    people; git <commit> [(uncommitted changes)]; params <digest>; initial weights from <source> [; warm start: ...]
    -- what training recorded in the checkpoint's config (under "trained_on" -> "lineage" in the JSON); "not
    recorded" for models trained before lineage was (and imported ones)
  warning: trained on the synthetic people, not on real photos: expect poor results on real images
    -- only for a model trained on the synthetic people
Without --box or --center/--scale the whole image is assumed to be one centred person; every such image (or the
video) gets a "warning: <image>: no --box or --center/--scale given ..." line on stderr."""

EXAMPLES = """\
examples:
  hourglass predict photo.jpg --model models/hg_stacked_int/seed-0 --json poses.json --overlay out/
  hourglass predict photos/ --model models:/hourglass-synthetic@champion --csv poses.csv
  hourglass predict photo.jpg --model ckpt.pt --box 120,40,380,620 --overlay out/
  hourglass predict photo.jpg --model ckpt.pt --center 250,330 --scale 2.8 --json -
  hourglass predict clip.mp4 --model models/hg_stacked_int/seed-0 --json frames.jsonl --overlay out/
  hourglass predict photo.jpg --model exports/hg-onnx --runtime onnxruntime --json -

Keypoints are [x, y, confidence] in 0-based pixels of the original image (as displayed). The confidence is the
final heatmap's peak (flip-averaged with the flip test) divided by the checkpoint's train.target_scale (1 when its
config has none), the factor training multiplied the targets by (10 in the CPU preset, 1 in the recipes): about
1 for a perfect peak, 0 for no evidence; a heatmap value, not a probability (it can be slightly above 1 or below
0). The JSON states it under "confidence" with the target_scale used. Joint order: the model's joint set (MPII:
r_ankle ... l_wrist, 16 joints). Overlays draw the l_* joints and limbs in blue (filled markers), the r_* ones in
orange (hollow markers) and the centre in white, with a legend: l_* is the person's left for MPII models; FLIC's
labels are observer-centric (l_* = the image's right side)."""


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hourglass predict`` (shared by ``python -m hourglass.inference``)."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, folders of images (not recursive), or one video file")
    parser.add_argument("-m", "--model", required=True,
                        help="a checkpoint file, a models/<variant>/seed-<n>/ directory holding checkpoint.pt, an "
                             "MLflow model URI such as models:/hourglass-synthetic@champion or runs:/<run id>/model, "
                             "or (with --runtime onnxruntime/openvino) an export directory of `hourglass export`")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store for models:/ and runs:/ URIs (default: MLFLOW_TRACKING_URI, else "
                             "sqlite:///mlflow.db in the current directory)")
    who = parser.add_argument_group("the person (default: the whole image, person centred, as pose-hg-demo)")
    who.add_argument("--box", action="append", default=[], metavar="X1,Y1,X2,Y2",
                     help="a box around the person in image pixels; repeat for several people. The crop is the "
                          "box's longer side x 1.25 around its centre, as MPII's training crops")
    who.add_argument("--center", metavar="X,Y", help="the person's centre as MPII's objpos (pixels)")
    who.add_argument("--scale", type=float, metavar="S",
                     help="with --center: MPII's scale, the person's height / 200 px (the crop is 1.25 x that, "
                          "its centre 15 x S px below --center, as in training)")
    out = parser.add_argument_group("outputs (none given: the JSON goes to stdout)")
    out.add_argument("--json", metavar="OUT.json",
                     help="keypoints as JSON: per image its people, each with [x, y, confidence] per joint; for a "
                          "video JSON lines, one object per frame ('-' = stdout)")
    out.add_argument("--csv", metavar="OUT.csv",
                     help="keypoints as CSV, one row per joint: image (or frame), person, joint, x, y, confidence")
    out.add_argument("--overlay", metavar="DIR",
                     help="write each image with the skeleton drawn as DIR/<name>_pose.png, a video as "
                          "DIR/<name>_pose.mp4; left and right in two colours with a legend (none on images "
                          "under 160 px)")
    out.add_argument("--min-confidence", type=float, default=0.0, metavar="C",
                     help="leave joints below this confidence (heatmap peak / train.target_scale: about 1 for a "
                          "perfect peak) out of the overlay (default: %(default)s, draw all)")
    run = parser.add_argument_group("how to run")
    run.add_argument("--runtime", choices=RUNTIMES, default="torch",
                     help=f"{RUNTIME_HELP}; a checkpoint given with an exported runtime is exported first, as "
                          "`hourglass export` does (default: %(default)s)")
    run.add_argument("--device", default="auto",
                     help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N (default: %(default)s)")
    run.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                     help="auto: bf16 where the CPU/GPU computes it natively, else fp32; fp16 on CUDA only "
                          "(default: %(default)s)")
    run.add_argument("--no-flip", dest="flip", action="store_false", default=None,
                     help="skip the flip test (half the compute; default: as the model was evaluated, usually on)")
    run.add_argument("--batch-size", type=int, default=8, metavar="N",
                     help="people per forward pass (default: %(default)s)")
    run.add_argument("--threads", type=int, default=None, metavar="N",
                     help="CPU threads for the network (default: torch's, one per core; 1 is steadier on a busy "
                          "machine)")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def person_args(args: argparse.Namespace) -> tuple[list[tuple[float, ...]], tuple[float, ...] | None]:
    """The --box / --center / --scale people: (boxes, centre), checked before the model is loaded."""
    boxes = [parse_numbers(b, 4, "--box") for b in args.box]
    center = parse_numbers(args.center, 2, "--center") if args.center is not None else None
    if (center is None) != (args.scale is None):
        raise PredictError("--center and --scale go together (MPII's objpos and person height / 200 px)")
    return boxes, center


def run_images(predictor: PosePredictor, paths: list[Path], args: argparse.Namespace) -> int:
    """Predict every image, write the outputs; returns the number of images that failed."""
    from hourglass.draw import pose_overlay

    boxes, center = person_args(args)
    guessed = not boxes and center is None  # the whole image as one centred person
    names = predictor.joints.names
    records: list[dict[str, Any]] = []
    rows: list[list[Any]] = []
    failed: list[str] = []
    used: set[Path] = set()
    bar = tqdm(total=len(paths), desc="predict", unit="img", disable=not args.progress or len(paths) < 2)
    for start in range(0, len(paths), max(1, args.batch_size)):
        batch: list[tuple[Path, np.ndarray, list]] = []
        for path in paths[start:start + max(1, args.batch_size)]:
            try:
                image = read_image(path)
                batch.append((path, image, people_for(image, boxes, center, args.scale)))
                if guessed:
                    print(f"warning: {whole_image_warning(str(path))}", file=sys.stderr)
            except PredictError as err:
                failed.append(str(err))
                records.append(result_record(str(path), None, None, str(err)))
                print(f"error: {err}", file=sys.stderr)
        results = predictor.predict([(image, people) for _, image, people in batch])
        for (path, image, _), poses in zip(batch, results, strict=True):
            records.append(result_record(str(path), image, poses))
            rows.extend(csv_rows("image", str(path), poses, names))
            if args.overlay:
                overlay = pose_overlay(image, [p.keypoints for p in poses], predictor.joints,
                                       min_confidence=args.min_confidence)
                write_png(overlay_path(Path(args.overlay), path, ".png", used), overlay)
        bar.update(len(paths[start:start + max(1, args.batch_size)]))
    bar.close()
    order = {str(p): i for i, p in enumerate(paths)}
    records.sort(key=lambda r: order.get(r["image"], 0))
    document = {"model": predictor.describe(), "trained_on": predictor.trained_on.to_dict(),
                "joint_names": list(names), "keypoint_format": ["x", "y", "confidence"],
                "confidence": {"target_scale": predictor.target_scale, "meaning": CONFIDENCE_NOTE},
                "images": records}
    if args.json or not (args.csv or args.overlay):
        write_text(args.json or "-", dumps(document) + "\n")
    if args.csv:
        rows.sort(key=lambda r: order.get(r[0], 0))
        write_text(args.csv, csv_text(["image", "person", "joint", "x", "y", "confidence"], rows))
    if failed:
        print(f"{len(failed)} of {len(paths)} image(s) failed:", *(f"  {f}" for f in failed), sep="\n",
              file=sys.stderr)
    return len(failed)


def run_predict(args: argparse.Namespace) -> int:
    """Load the model once, then images or the video. 0: all done; 1: some input or the model failed."""
    try:
        if args.batch_size < 1:
            raise PredictError(f"--batch-size {args.batch_size}: must be at least 1")
        if args.threads is not None:
            if args.threads < 1:
                raise PredictError(f"--threads {args.threads}: must be at least 1")
            torch.set_num_threads(args.threads)
        person_args(args)  # argument errors before the model is loaded
        paths = expand_inputs(args.inputs)
        videos = [p for p in paths if is_video(p)]
        if videos and len(paths) > 1:
            raise PredictError(f"{videos[0]}: a video must be the only input (got {len(paths)} inputs)")
        predictor = PosePredictor.from_source(args.model, device=args.device, precision=args.precision,
                                              flip=args.flip, batch_size=args.batch_size,
                                              tracking_uri=args.tracking_uri, runtime=args.runtime)
        print(f"model: {predictor.describe()}", file=sys.stderr)
        print(f"trained on: {predictor.trained_on.summary()}", file=sys.stderr)
        print(f"lineage: {predictor.trained_on.lineage_line()}", file=sys.stderr)
        for line in predictor.trained_on.warnings():
            print(f"warning: {line}", file=sys.stderr)
        if videos:
            run_video(predictor, videos[0], args, *person_args(args))
            return 0
        return 1 if run_images(predictor, paths, args) else 0
    except (PredictError, CheckpointError, MissingPackageError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def predict_main(argv: list[str] | None = None) -> int:
    """``python -m hourglass.inference``: the ``predict`` subcommand on its own."""
    parser = argparse.ArgumentParser(prog="python -m hourglass.inference", description=DESCRIPTION, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_predict_arguments(parser)
    return run_predict(parser.parse_args(argv))
