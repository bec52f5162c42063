"""``python -m hourglass.bench preprocess``: crop preprocessing images/s against JPEG decoding alone, one core.

Writes ``--images`` MPII-sized (720 x 1280) JPEGs of smooth random content with one or two people each into a
temporary directory, then times, in the same run and on one core, (a) ``cv2.imdecode`` alone and (b) the whole
per-image work of the preprocessing stage (read, decode, crop every person to the stored resolution, RGB). Their
ratio says how close preprocessing is to being bound by JPEG decoding (1.0 = decoding is everything).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from hourglass.config.recipes import load_with_recipe
from hourglass.data.preprocess import ImageTask, crop_spec, process_image
from hourglass.io.images import decode_rgb, single_threaded_cv2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=40, help="synthetic JPEGs to generate (default: %(default)s)")
    parser.add_argument("--height", type=int, default=720, help="image height in px (default: %(default)s)")
    parser.add_argument("--width", type=int, default=1280, help="image width in px (default: %(default)s)")
    parser.add_argument("--input-res", type=int, default=256, help="network input resolution that sets the stored "
                        "crop size (default: %(default)s)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params file the settings come from (default: %(default)s)")
    parser.add_argument("--recipe", default="mpii",
                        help="recipe applied to --params first, 'none' for none (default: %(default)s: the paper's "
                             "settings)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the images; the best counts "
                        "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")


def synthetic_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A BGR image with photo-like statistics (blurred noise over gradients), so JPEG sizes and decode times are
    realistic rather than those of pure noise or flat colour."""
    noise = rng.integers(0, 256, size=(height // 8, width // 8, 3), dtype=np.uint8)
    base = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    detail = rng.normal(0, 12, size=(height, width, 3))
    ramp = np.linspace(-40, 40, width)[None, :, None]
    return np.clip(base + detail + ramp, 0, 255).astype(np.uint8)


def write_jpegs(directory: Path, count: int, height: int, width: int, rng: np.random.Generator) -> list[str]:
    """``count`` synthetic JPEGs (quality 90) named ``im-NNNN.jpg`` in ``directory``; returns the names."""
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"im-{i:04d}.jpg"
        ok, data = cv2.imencode(".jpg", synthetic_image(rng, height, width), [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise RuntimeError("cv2.imencode failed to write a synthetic JPEG")
        (directory / name).write_bytes(data.tobytes())
        names.append(name)
    return names


def random_people(rng: np.random.Generator, height: int, width: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres and scales of ``count`` people of MPII-like size (scale 1.5-4.5 after the x1.25 adjustment)."""
    centers = np.stack([rng.uniform(0.2, 0.8, count) * width, rng.uniform(0.3, 0.7, count) * height], axis=1)
    return centers, rng.uniform(1.5, 4.5, count)


def _best_rate(work, items: list, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for item in items:
            work(item)
        best = min(best, time.perf_counter() - start)
    return len(items) / best


def run(args: argparse.Namespace) -> dict:
    single_threaded_cv2()
    rng = np.random.default_rng(args.seed)
    params = load_with_recipe(args.params, None if args.recipe == "none" else args.recipe,
                              {"model.input_res": args.input_res})
    spec = crop_spec(params)
    with tempfile.TemporaryDirectory(prefix="hourglass-bench-") as tmp:
        images = Path(tmp)
        names = write_jpegs(images, args.images, args.height, args.width, rng)
        tasks = []
        for name in names:
            people = 1 + int(rng.integers(0, 2))
            centers, scales = random_people(rng, args.height, args.width, people)
            tasks.append(ImageTask(name, np.arange(people), centers, scales))
        blobs = [(images / n).read_bytes() for n in names]
        _best_rate(lambda t: process_image(t, images, spec), tasks[:2], 1)  # warm-up: page cache, code paths
        decode_rate = _best_rate(lambda b: decode_rgb(b, apply_orientation=False), blobs, args.repeats)
        full_rate = _best_rate(lambda t: process_image(t, images, spec), tasks, args.repeats)
        people = sum(len(t.rows) for t in tasks)
        mean_bytes = float(np.mean([len(b) for b in blobs]))
    return {
        "benchmark": "preprocess",
        "images": args.images,
        "image_size": [args.height, args.width],
        "people": people,
        "crop_res": spec.crop_res,
        "margin": spec.margin,
        "mean_jpeg_kb": round(mean_bytes / 1024, 1),
        "images_per_s": round(full_rate, 2),
        "decode_images_per_s": round(decode_rate, 2),
        "preprocess_to_decode_ratio": round(full_rate / decode_rate, 3),
        "threads": 1,
    }
