"""Procedural people: the offline default dataset, written in exactly the layout of a real MPII/FLIC download.

Why procedural rather than a toy: every later stage (preprocess, train, evaluate) must run the same code on
synthetic and real data, and the numbers must mean something. So each person is a 3-D kinematic tree with MPII
proportions and joint-angle limits, seen orthographically from any direction; clothing, faces and a few
dataset-wide asymmetric cues (chest emblem on the left, watch on the left wrist, bag strap from the right shoulder)
are the only way to tell left from right; limbs, other people and occluders hide joints (``visible = 0``, still
annotated); joints outside the image are not annotated, as in MPII.

Conventions: 0-based pixel coordinates in memory; the files are written by
:func:`hourglass.io.annotations.write_annotations` (1-based). ``center``/``scale`` follow the ADJUSTED convention of
pose-hg-train's MPII files: ``s_raw`` is derived from the head box as MPII's is (``normalize = 0.1 * 200 * scale``
holds for every real validation row), ``scale = 1.25 * s_raw`` and ``center.y = objpos.y + 15 * s_raw``.

This module writes the dataset (images rendered in a process pool, the annotation files last); the bodies are in
``synthetic_figure``, the clothes in ``synthetic_look``, the drawing in ``synthetic_drawing`` and the scenes with
their labels in ``synthetic_scene``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from hourglass.config import SyntheticConfig
from hourglass.data.parallel import ordered_map
from hourglass.data.synthetic_scene import PersonLabel, render_scene
from hourglass.io.annotations import Annotations, write_annotations
from hourglass.io.atomic import write_atomic
from hourglass.io.images import single_threaded_cv2
from hourglass.joints import FLIC, MPII, JointSet

SPLITS = ("train", "valid")


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The independent random stream of image ``index`` of ``split`` (so any worker split gives the same data)."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index]))


def image_name(split: str, index: int) -> str:
    return f"{split}_{index:06d}.jpg"


@dataclass(frozen=True)
class _Task:
    cfg: SyntheticConfig
    joint_set: JointSet  # the row layout drawn: MPII's or FLIC's (see synthetic_layout)
    split: str
    index: int
    image_dir: Path


def _write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"{path}: JPEG encoding failed")
    write_atomic(path, data.tobytes())


def _render_task(task: _Task) -> tuple[str, list[PersonLabel]]:
    scene = render_scene(image_rng(task.cfg.seed, task.split, task.index), task.cfg, task.joint_set)
    name = image_name(task.split, task.index)
    _write_jpeg(task.image_dir / name, scene.image, task.cfg.jpeg_quality)
    return name, scene.labels


def _run(tasks: list[_Task], workers: int, desc: str, progress: bool) -> Iterator[tuple[str, list[PersonLabel]]]:
    """Render in order; ``workers > 1`` uses a spawn pool (safe even after torch/OpenMP were imported)."""
    if workers <= 1 or len(tasks) < 2:
        yield from tqdm(map(_render_task, tasks), total=len(tasks), desc=desc, unit="img", disable=not progress)
        return
    results = ordered_map(_render_task, tasks, min(workers, len(tasks)), chunksize=8, initializer=single_threaded_cv2)
    yield from tqdm(results, total=len(tasks), desc=desc, unit="img", disable=not progress)


def to_table(rows: list[tuple[str, list[PersonLabel]]], first_index: int) -> Annotations:
    """Gather per-image labels into an annotation table; ``index`` numbers images across both splits."""
    flat = [(name, img, lab) for img, (name, labels) in enumerate(rows) for lab in labels]
    if not flat:
        raise ValueError("no people were annotated; check the synthetic section of params.yaml")
    return Annotations(
        imgname=np.array([n for n, _, _ in flat]),
        center=np.stack([lab.center for _, _, lab in flat]),
        scale=np.array([lab.scale for _, _, lab in flat]),
        joints=np.stack([lab.joints for _, _, lab in flat]),
        annotated=np.stack([lab.annotated for _, _, lab in flat]),
        visible=np.stack([lab.visible for _, _, lab in flat]),
        normalize=np.array([lab.normalize for _, _, lab in flat]),
        extra={"index": np.array([first_index + i for _, i, _ in flat], np.float64),
               "person": np.array([lab.person for _, _, lab in flat], np.float64),
               "torsoangle": np.array([lab.torsoangle for _, _, lab in flat])},
    )


def synthetic_layout(keypoints: Sequence[str]) -> JointSet:
    """The row layout the generator draws for a card listing ``keypoints``: MPII's 16 joints (head-size rows) or
    FLIC's 11 (observer-centric, torso-size rows), the two it knows; any other list is an error naming both."""
    for layout in (MPII, FLIC):
        if tuple(keypoints) == layout.names:
            return layout
    raise ValueError(f"format: synthetic draws MPII's keypoints {list(MPII.names)} or FLIC's {list(FLIC.names)} "
                     f"in that order; the card lists {list(keypoints)}")


def generate_dataset(cfg: SyntheticConfig, out: str | Path, progress: bool = True,
                     joint_set: JointSet = MPII) -> dict[str, Annotations]:
    """Write ``out/images/*.jpg`` and ``out/annot/{train,valid}.h5`` with ``joint_set``'s rows (MPII or FLIC);
    returns the tables written.

    Old annotation files are removed first and the new ones written last, so an interrupted run never leaves an
    h5 that lists images which were not written. Stale images of our own naming pattern are deleted.
    """
    out = Path(out)
    image_dir, annot_dir = out / "images", out / "annot"
    image_dir.mkdir(parents=True, exist_ok=True)
    annot_dir.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        (annot_dir / f"{split}.h5").unlink(missing_ok=True)
    counts = {"train": cfg.train_images, "valid": cfg.valid_images}
    wanted = {image_name(s, i) for s in SPLITS for i in range(counts[s])}
    for path in image_dir.glob("*.jpg"):
        if path.name.split("_")[0] in SPLITS and path.name not in wanted:
            path.unlink()
    workers = cfg.workers or os.cpu_count() or 1
    tables: dict[str, Annotations] = {}
    for split in SPLITS:
        tasks = [_Task(cfg, joint_set, split, i, image_dir) for i in range(counts[split])]
        rows = list(_run(tasks, workers, f"synthesize {split}", progress))
        tables[split] = to_table(rows, first_index=0 if split == "train" else counts["train"])
    for split, table in tables.items():
        write_annotations(annot_dir / f"{split}.h5", table, name=joint_set.name)
    return tables


