"""``python -m hourglass.bench loader``: augmented training samples/s of the Dataset on one core.

Builds a temporary processed set with the real preprocessing stage (synthetic photo-like images, MPII-like people,
16 joints), then draws augmented samples from :class:`hourglass.data.dataset.PoseDataset` with one torch and one
OpenCV thread: read the stored crop from HDF5, one affine warp, colour + float conversion, Gaussian targets. It also
times the main parts alone over the same samples and, separately, default collation into batches. The page cache is warm
(the set is small), so the figure is the loader's compute, not the disk.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import default_collate

from hourglass.bench.preprocess import random_people, write_jpegs
from hourglass.config.recipes import load_with_recipe
from hourglass.data.augment import stored_to_input, to_float_chw
from hourglass.data.dataset import create_dataset
from hourglass.data.preprocess import preprocess
from hourglass.heatmaps import gaussian_heatmaps
from hourglass.io.annotations import Annotations, write_annotations
from hourglass.io.images import single_threaded_cv2
from hourglass.joints import MPII


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--people", type=int, default=48, help="people in the temporary set (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=2000, help="augmented samples timed (default: %(default)s)")
    parser.add_argument("--input-res", type=int, default=256, help="network input resolution (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=16, help="batch size for the collation figure "
                        "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params file the settings come from (default: %(default)s)")
    parser.add_argument("--recipe", default="mpii",
                        help="recipe applied to --params first, 'none' for none (default: %(default)s: the paper's "
                             "settings)")


def make_raw_set(root: Path, people: int, rng: np.random.Generator, height: int = 480, width: int = 640) -> None:
    """A raw dataset in the stage's input layout: ``images/`` + ``annot/train.h5`` (two people per image)."""
    images = (people + 1) // 2
    names = write_jpegs(root / "images", images, height, width, rng)
    imgname = np.array([names[i // 2] for i in range(people)])
    centers, scales = random_people(rng, height, width, people)
    scales = scales / 2  # smaller people: 640 x 480 images
    offsets = rng.normal(0, 40, size=(people, MPII.count, 2)) * scales[:, None, None]
    joints = centers[:, None, :] + offsets
    annotated = rng.random((people, MPII.count)) > 0.1
    joints[~annotated] = np.nan
    table = Annotations(imgname=imgname, center=centers, scale=scales, joints=joints, annotated=annotated,
                        visible=annotated & (rng.random((people, MPII.count)) > 0.2),
                        normalize=np.full(people, 30.0))
    write_annotations(root / "annot" / "train.h5", table, name="bench")


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    single_threaded_cv2()
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    params = load_with_recipe(args.params, None if args.recipe == "none" else args.recipe,
                              {"model.input_res": args.input_res, "preprocess.workers": 1})
    with tempfile.TemporaryDirectory(prefix="hourglass-bench-") as tmp:
        raw, out = Path(tmp) / "raw", Path(tmp) / "processed"
        make_raw_set(raw, args.people, rng)
        preprocess(raw, out, params, dataset="bench", progress=False)
        dataset = create_dataset(out, "train", params, train=True)
        indices = rng.integers(0, len(dataset), args.samples)
        for i in indices[:50]:  # warm-up: open shards, page cache, code paths
            dataset[int(i)]

        start = time.perf_counter()
        for i in indices:
            dataset[int(i)]
        total = time.perf_counter() - start

        # The parts alone, over the same samples (crops of the small set kept in memory for the later parts).
        draws = [dataset.draw(i) for i in indices]
        start = time.perf_counter()
        for i in indices:
            dataset.read_crop(int(i))
        read = (time.perf_counter() - start) / len(indices)
        crops = {int(i): dataset.read_crop(int(i)) for i in np.unique(indices)}
        matrices = [stored_to_input(dataset.crop_res, dataset.margin, dataset.input_res, d) for d in draws]
        size = (dataset.input_res, dataset.input_res)
        start = time.perf_counter()
        for i, m in zip(indices, matrices, strict=True):
            cv2.warpAffine(crops[int(i)], m, size, flags=cv2.INTER_LINEAR)
        warp = (time.perf_counter() - start) / len(indices)
        warped = [cv2.warpAffine(crops[int(i)], m, size) for i, m in zip(indices[:64], matrices[:64], strict=True)]
        start = time.perf_counter()
        for k, d in enumerate(draws):
            to_float_chw(warped[k % len(warped)], d.colour)
        colour = (time.perf_counter() - start) / len(indices)
        ratio = dataset.output_res / dataset.input_res
        start = time.perf_counter()
        for i in indices:
            gaussian_heatmaps(dataset.crop_joints[i] * ratio, dataset.annotated[i], dataset.output_res, dataset.sigma)
        targets = (time.perf_counter() - start) / len(indices)

        samples = [dataset[int(i)] for i in indices[: args.batch * 8]]
        start = time.perf_counter()
        for b in range(0, len(samples), args.batch):
            default_collate(samples[b:b + args.batch])
        collate = (time.perf_counter() - start) / len(samples)
        dataset.close()
    return {
        "benchmark": "loader",
        "samples_per_s": _rate(args.samples, total),
        "samples": args.samples,
        "input_res": args.input_res,
        "crop_res": dataset.crop_res,
        "joints": dataset.num_joints,
        "threads": 1,
        "ms_per_sample": {
            "total": round(total / args.samples * 1e3, 3),
            "read_crop": round(read * 1e3, 3),
            "warp": round(warp * 1e3, 3),
            "colour_to_float": round(colour * 1e3, 3),
            "targets": round(targets * 1e3, 3),
            "collate_per_sample": round(collate * 1e3, 3),
        },
        "samples_per_s_with_collate": _rate(1, total / args.samples + collate),
    }
