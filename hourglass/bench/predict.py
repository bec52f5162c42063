"""``python -m hourglass.bench predict``: single-image latency and batched throughput of ``hourglass predict``.

What is timed is the predict path a user or the served model runs per image after the model is loaded: decode an
MPII-sized (720 x 1280) JPEG, cut the person's crop (whole image by default, anti-aliased), run the network with the
flip test (two forward passes) and decode the keypoints back to image pixels. Latency is one image at a time;
throughput is ``--batch`` images per call (one forward pass over all their crops). The network has random weights
(speed does not depend on them) unless ``--checkpoint`` names a trained one. Progress goes to stderr.

``--runtime all`` times every runtime side by side on the same images (:mod:`hourglass.bench.side_by_side`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from hourglass.bench.preprocess import synthetic_image
from hourglass.config import ModelConfig
from hourglass.export.int8_options import DEFAULT_CALIBRATION
from hourglass.inference.inputs import as_rgb_array
from hourglass.inference.people import Person
from hourglass.inference.predictor import PosePredictor
from hourglass.io.atomic import write_json_atomic
from hourglass.io.checkpoint import save_checkpoint
from hourglass.model import create_model

# hg.lua's network: what the benchmark measures unless told otherwise.
PAPER_NETWORK = ModelConfig(stacks=8, features=256, modules=1, supervision="intermediate", input_res=256,
                            stem_width=128)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = PAPER_NETWORK
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a trained checkpoint (file or models/<variant>/seed-<n>/ directory) instead of random "
                             "weights of the architecture below")
    parser.add_argument("--stacks", type=int, default=defaults.stacks,
                        help="stacks (default: %(default)s, the paper's)")
    parser.add_argument("--features", type=int, default=defaults.features,
                        help="features per hourglass (default: %(default)s)")
    parser.add_argument("--res", type=int, default=defaults.input_res, help="input resolution (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=8, help="images per batched call (default: %(default)s)")
    parser.add_argument("--iters", type=int, default=3,
                        help="timed calls per measurement; the fastest counts (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first (default: %(default)s)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="as hourglass predict (default: %(default)s)")
    parser.add_argument("--no-flip", dest="flip", action="store_false", help="time without the flip test")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads (default: torch's, one per core). On a busy machine 1 thread is "
                             "far steadier: waiting threads of a parallel op stall the whole op")
    parser.add_argument("--height", type=int, default=720, help="image height in px (default: %(default)s)")
    parser.add_argument("--width", type=int, default=1280, help="image width in px (default: %(default)s)")
    parser.add_argument("--runtime", choices=["torch", "all"], default="torch",
                        help="torch: the predict path as `hourglass predict` runs it (--precision); all: torch eager "
                             "fp32, torch's fast path, onnxruntime and openvino fp32 and int8, one table "
                             "(default: %(default)s)")
    parser.add_argument("--int8", action="append", type=Path, metavar="DIR",
                        help="--runtime all: an `hourglass export --int8` directory to time (repeatable) instead of "
                             "quantising the model here")
    parser.add_argument("--no-int8", dest="make_int8", action="store_false",
                        help="--runtime all: no int8 rows unless --int8 gives an export")
    parser.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help="--runtime all: preprocessed data: each runtime's score on its validation split, and "
                             "the int8 graph calibrated on its training crops (without it: on the benchmark's own "
                             "crops, for speed only)")
    parser.add_argument("--calibration", type=int, default=DEFAULT_CALIBRATION, metavar="N",
                        help="--runtime all with --data: training crops to calibrate int8 on (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the figures to PATH as JSON (the last line of stdout is the same JSON)")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fastest(fn: Callable[[], Any], iters: int, warmup: int) -> float:
    """Fastest seconds per call: other processes on a shared machine only ever slow a call down."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _checkpoint(args: argparse.Namespace, workdir: Path) -> Path:
    """``--checkpoint``, else random weights of the asked architecture saved in ``workdir``."""
    if args.checkpoint is not None:
        return args.checkpoint
    torch.manual_seed(0)
    model = create_model(stacks=args.stacks, features=args.features)
    config = {"dataset": "mpii", "model": PAPER_NETWORK.model_copy(update={
        "stacks": args.stacks, "features": args.features, "input_res": args.res}).model_dump(mode="json")}
    path = workdir / "checkpoint.pt"
    save_checkpoint({"model": model.state_dict(), "config": config}, path)
    return path


def _predictor(args: argparse.Namespace, workdir: Path) -> PosePredictor:
    return PosePredictor.from_checkpoint(_checkpoint(args, workdir), device="cpu", precision=args.precision,
                                         flip=args.flip, batch_size=args.batch)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.batch < 1 or args.iters < 1:
        raise SystemExit("--batch and --iters must be at least 1")
    if args.runtime != "all" and (args.int8 or args.data is not None or not args.make_int8):
        raise SystemExit("--int8, --data and --no-int8 are options of --runtime all")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(args.batch):
        ok, data = cv2.imencode(".jpg", synthetic_image(rng, args.height, args.width), [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise RuntimeError("cv2.imencode failed to write a synthetic JPEG")
        blobs.append(data.tobytes())
    if args.runtime == "all":
        from hourglass.bench.side_by_side import run_all

        with tempfile.TemporaryDirectory(prefix="hourglass-bench-") as tmp:
            return _written(args, run_all(args, blobs, _checkpoint(args, Path(tmp)), _fastest))
    with tempfile.TemporaryDirectory(prefix="hourglass-bench-") as tmp:
        predictor = _predictor(args, Path(tmp))
    _progress(f"predict path: {predictor.describe()}, {torch.get_num_threads()} threads")

    def one() -> None:
        predictor.predict_image(as_rgb_array(blobs[0]))

    def batched() -> None:
        images = [as_rgb_array(b) for b in blobs]
        predictor.predict([(im, [Person.whole_image(im.shape[1], im.shape[0])]) for im in images])

    latency = _fastest(one, args.iters, args.warmup)
    _progress(f"single image: {latency * 1000:.1f} ms")
    batch_s = _fastest(batched, args.iters, args.warmup)
    _progress(f"batch of {args.batch}: {batch_s * 1000:.1f} ms, {args.batch / batch_s:.2f} img/s")
    cfg = predictor.loaded.model_config
    return _written(args, {
        "benchmark": "predict",
        "model": {"stacks": cfg.stacks, "features": cfg.features, "input_res": cfg.input_res,
                  "checkpoint": str(args.checkpoint) if args.checkpoint else None},
        "precision": predictor.precision.describe(),
        "flip_test": predictor.flip,
        "image_size": [args.height, args.width],
        "threads": torch.get_num_threads(),
        "latency_ms": round(latency * 1000, 2),
        "single_img_s": round(1 / latency, 3),
        "batch": args.batch,
        "batched_img_s": round(args.batch / batch_s, 3),
    })


def _written(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    """``result``, also written to ``--json`` when given."""
    if args.json is not None:
        write_json_atomic(args.json, result, sort_keys=True)
    return result

