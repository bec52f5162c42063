"""``hourglass predict`` on a video: every frame's keypoints streamed as JSON lines and CSV rows, and an annotated
video, each written under a temporary name and renamed only when the whole video was read."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import cv2
import numpy as np
from tqdm import tqdm

from hourglass.cli.outputs import csv_rows, overlay_path
from hourglass.inference.errors import PredictError
from hourglass.inference.inputs import video_frames, video_info
from hourglass.inference.people import people_for, whole_image_warning
from hourglass.inference.predictor import PosePredictor
from hourglass.io.atomic import atomic_path, open_atomic


def _text_output(stack: ExitStack, target: str) -> IO[str]:
    """A streamed text output: stdout for ``-``, else a file renamed into place when ``stack`` closes normally."""
    if target == "-":
        stack.callback(sys.stdout.flush)
        return sys.stdout
    return stack.enter_context(open_atomic(target, "w", newline=""))


def run_video(predictor: PosePredictor, path: Path, args: argparse.Namespace, boxes: list[tuple[float, ...]],
              center: tuple[float, ...] | None) -> None:
    """Predict every frame of ``path``: JSON lines per frame, long CSV, and an annotated video, all streamed, so a
    long video's keypoints never sit in memory and a failed run leaves no partial file."""
    from hourglass.draw import pose_overlay

    if not boxes and center is None:
        print(f"warning: {whole_image_warning(str(path))}", file=sys.stderr)
    fps, count, width, height = video_info(path)
    names = predictor.joints.names
    with ExitStack() as stack:
        lines = csv_writer = writer = None
        if args.json or not (args.csv or args.overlay):
            lines = _text_output(stack, args.json or "-")
        if args.csv:
            csv_writer = csv.writer(_text_output(stack, args.csv), lineterminator="\n")
            csv_writer.writerow(["frame", "person", "joint", "x", "y", "confidence"])
        if args.overlay:
            target = overlay_path(Path(args.overlay), path, ".mp4", set())
            tmp = stack.enter_context(atomic_path(target, suffix=".mp4"))
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps if fps > 0 else 25.0,
                                     (width, height))
            stack.callback(writer.release)  # runs before the rename: the file is complete when it appears
            if not writer.isOpened():
                raise PredictError(f"{target}: cannot write a video (OpenCV mp4v writer failed to open)")
        bar = tqdm(total=count or None, desc=path.name, unit="frame", disable=not args.progress)
        batch: list[tuple[int, float, np.ndarray]] = []
        frames = 0

        def flush() -> None:
            results = predictor.predict([(f, people_for(f, boxes, center, args.scale)) for _, _, f in batch])
            for (index, seconds, frame), poses in zip(batch, results, strict=True):
                if lines is not None:
                    lines.write(json.dumps({"frame": index, "time_s": None if seconds != seconds else round(seconds, 4),
                                            "people": [p.to_dict() for p in poses]}) + "\n")
                if csv_writer is not None:
                    csv_writer.writerows(csv_rows("frame", index, poses, names))
                if writer is not None:
                    overlay = pose_overlay(frame, [p.keypoints for p in poses], predictor.joints,
                                           min_confidence=args.min_confidence)
                    writer.write(cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
            bar.update(len(batch))
            batch.clear()

        for item in video_frames(path):
            batch.append(item)
            frames += 1
            if len(batch) >= args.batch_size:
                flush()
        if batch:
            flush()
        bar.close()
        if frames == 0:
            raise PredictError(f"{path}: no frames could be read from the video")
