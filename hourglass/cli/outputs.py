"""What ``hourglass predict`` writes: readable JSON, long-format CSV rows and PNG overlays, each file atomically
(``-`` is stdout)."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hourglass.inference.predictor import PoseResult
from hourglass.io.atomic import write_atomic

_NUMBER_LIST = re.compile(r"\[\s*(-?[0-9][0-9.eE+-]*(?:\s*,\s*-?[0-9][0-9.eE+-]*)*)\s*\]")


def dumps(document: Any) -> str:
    """Indented JSON with each list of numbers (a keypoint, a centre) on one line, so files stay readable."""
    return _NUMBER_LIST.sub(lambda m: "[" + re.sub(r"\s*,\s*", ", ", m.group(1)) + "]",
                            json.dumps(document, indent=1))


def write_text(target: str, text: str) -> None:
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomic(Path(target), text)


def write_png(path: Path, rgb: np.ndarray) -> None:
    """An RGB image as PNG, atomically."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    write_atomic(path, data.tobytes())


def csv_rows(key: str, value: Any, poses: Sequence[PoseResult], names: Sequence[str]) -> list[list[Any]]:
    """Long-format rows: one per person and joint."""
    return [[value, i, names[j], round(float(x), 2), round(float(y), 2), round(float(c), 4)]
            for i, pose in enumerate(poses) for j, (x, y, c) in enumerate(pose.keypoints)]


def csv_text(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def overlay_path(directory: Path, source: Path, suffix: str, used: set[Path]) -> Path:
    """``DIR/<stem>_pose<suffix>``, numbered when two inputs share a stem."""
    path, n = directory / f"{source.stem}_pose{suffix}", 1
    while path in used:
        path, n = directory / f"{source.stem}_pose-{n}{suffix}", n + 1
    used.add(path)
    return path


