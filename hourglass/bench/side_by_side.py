"""``python -m hourglass.bench predict --runtime all``: every runtime timed in one run, on the same images.

Each engine (:mod:`hourglass.bench.engines`) runs the same predict path as ``--runtime torch`` (JPEG decode, crop,
the network with the flip test, decoding), timed the same way: single-image latency and batched throughput, the
fastest of ``--iters`` calls. The table gives each one's ratio to torch eager fp32 and, with ``--data``, its score
on the validation split (:mod:`hourglass.export.accuracy`: the evaluate stage's headline for the model's card, the
same flip setting as the timing). The result records the CPU (``cpu_isa``, model name), the threads, the packages'
versions and the load average before and after, since a busy machine's figures are not a quiet one's.

Peer A (princeton-vl/pytorch_stacked_hourglass, issue 27's bar) is not in this table (``peer_a`` is None): the
network-only batched inference of the exported runtimes against peer A's is ``python -m hourglass.bench peer``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hourglass.bench.engines import Engine, exported_engines, given_int8_engines, made_int8_engines, torch_engines
from hourglass.export.accuracy import validation_score
from hourglass.family import family_of_checkpoint
from hourglass.inference.inputs import as_rgb_array
from hourglass.inference.people import Person
from hourglass.inference.predictor import PosePredictor
from hourglass.inference.runner import load_model
from hourglass.inference.trained_on import read_trained_on
from hourglass.precision import cpu_isa, cpu_model

PEER_A_NOTE = ("peer A (princeton-vl/pytorch_stacked_hourglass) is not in this table: `python -m hourglass.bench "
               "peer` times its batched inference beside the exported runtimes")

Timer = Callable[[Callable[[], Any], int, int], float]


def run_all(args: argparse.Namespace, blobs: Sequence[bytes], checkpoint: Path, fastest: Timer) -> dict[str, Any]:
    """Build every engine for ``checkpoint``, time each on ``blobs`` (and score it with ``--data``); the table goes
    to stdout, progress to stderr, the figures are returned."""
    load_before = os.getloadavg()
    loaded = load_model(checkpoint, "cpu")
    family = family_of_checkpoint(loaded.config, loaded.config.get("dataset_card"))
    images = [as_rgb_array(b) for b in blobs]
    rows = []
    with tempfile.TemporaryDirectory(prefix="hourglass-bench-runtimes-") as tmp:
        engines = torch_engines(loaded)
        exported, fp32_onnx = exported_engines(loaded, Path(tmp))
        engines += exported
        for export_dir in args.int8 or []:
            engines += given_int8_engines(loaded, Path(export_dir))
        if not args.int8 and args.make_int8:
            cropper = _predictor(engines[0], args)
            own = np.stack([cropper.crop(im, Person.whole_image(im.shape[1], im.shape[0])) for im in images])
            engines += made_int8_engines(loaded, fp32_onnx, Path(tmp), family, args.data, args.calibration, own)
        for engine in engines:
            rows.append(_measure(engine, args, images, fastest, family))
    baseline = rows[0]
    for row in rows:
        row["batched_vs_torch_eager"] = round(row["batched_img_s"] / baseline["batched_img_s"], 3)
        row["latency_vs_torch_eager"] = round(baseline["latency_ms"] / row["latency_ms"], 3)
    cfg = loaded.model_config
    trained_on = read_trained_on(loaded)
    result = {
        "benchmark": "predict", "runtime": "all",
        "model": {"stacks": cfg.stacks, "features": cfg.features, "input_res": cfg.input_res,
                  "checkpoint": str(args.checkpoint) if args.checkpoint else None, "card": family.name},
        "flip_test": args.flip, "image_size": [args.height, args.width], "batch": args.batch,
        "threads": torch.get_num_threads(), "cpu": cpu_model(), "cpu_isa": cpu_isa(),
        "versions": _versions(), "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "validation": None if args.data is None else {"data_dir": str(args.data), "metric": f"{family.metric} Mean",
                                                      "trained_score": trained_on.score},
        "rows": rows, "peer_a": None, "peer_a_note": PEER_A_NOTE,
    }
    print(format_table(result))
    return result


def _predictor(engine: Engine, args: argparse.Namespace) -> PosePredictor:
    return PosePredictor(engine.loaded, engine.precision, flip=args.flip, batch_size=args.batch,
                         runtime=engine.runtime)


def _measure(engine: Engine, args: argparse.Namespace, images: list[np.ndarray], fastest: Timer,
             family: Any) -> dict[str, Any]:
    predictor = _predictor(engine, args)
    people = [[Person.whole_image(im.shape[1], im.shape[0])] for im in images]
    latency = fastest(lambda: predictor.predict([(images[0], people[0])]), args.iters, args.warmup)
    batch_s = fastest(lambda: predictor.predict(list(zip(images, people, strict=True))), args.iters, args.warmup)
    row: dict[str, Any] = {"engine": engine.label, "runtime": engine.runtime.name,
                           "precision": engine.numbers,
                           "latency_ms": round(latency * 1000, 2), "batched_img_s": round(args.batch / batch_s, 3),
                           "note": engine.note, "score": None}
    if args.data is not None:
        row["score"] = round(validation_score(engine.loaded, family, args.data, engine.runtime,
                                              flip_test=args.flip).score, 3)
    print(f"{engine.label}: {row['latency_ms']} ms single, {row['batched_img_s']} img/s in batches of {args.batch}"
          + (f", score {row['score']}" if row["score"] is not None else ""), file=sys.stderr, flush=True)
    return row


def format_table(result: dict[str, Any]) -> str:
    """The rows as a Markdown table, with the machine and its load under it."""
    lines = ["| runtime | precision | single image (ms) | batched (img/s) | batched vs torch eager fp32 | score |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in result["rows"]:
        score = "" if row["score"] is None else f"{row['score']:.2f}"
        lines.append(f"| {row['engine']} | {row['precision']} | {row['latency_ms']:.1f} | {row['batched_img_s']:.2f} "
                     f"| {row['batched_vs_torch_eager']:.2f}x | {score} |")
    load = result["load_average"]
    lines.append(f"\n{result['cpu']} ({result['cpu_isa']}), threads {result['threads']}; load average "
                 f"{load['before'][0]:.2f} before, {load['after'][0]:.2f} after; batch {result['batch']}, flip test "
                 f"{'on' if result['flip_test'] else 'off'}")
    notes = sorted({row["note"] for row in result["rows"] if row["note"]})
    lines += [f"note: {note}" for note in notes] + [result["peer_a_note"]]
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    import onnxruntime
    import openvino

    return {"torch": str(torch.__version__), "onnxruntime": onnxruntime.__version__,
            "openvino": openvino.get_version()}
