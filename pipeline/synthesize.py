"""Render the procedural people dataset into the layout of a real download (hourglass.data.synthetic).

``python -m pipeline.synthesize [--params params.yaml] [--out data/raw/synthetic]`` writes ``<out>/images/*.jpg``
and ``<out>/annot/{train,valid}.h5`` from the ``synthetic`` section of params.yaml. dvc.yaml has no stage of its
own for it: its ``download`` stage (``python -m pipeline.download``) calls :func:`generate` when the dataset's card
has ``format: synthetic``; this command runs the generator by hand. The card's keypoints choose the rows drawn: MPII's
16 joints (``datasets/synthetic.yaml``) or FLIC's 11 (``datasets/synthetic_flic.yaml``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hourglass.config import ParamsConfig
from hourglass.config.params_file import load_params
from hourglass.data.synthetic import generate_dataset, synthetic_layout
from pipeline import stage


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.synthesize", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params.yaml to read the 'synthetic' section from (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("data/raw/synthetic"),
                        help="output directory; images/ and annot/ are created inside (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (DVC pipes the output)")
    return parser


def generate(params: ParamsConfig, out: Path, progress: bool) -> str:
    """Generate the dataset into ``out``; returns the summary line (images, people, speed)."""
    start = time.perf_counter()
    layout = synthetic_layout(params.card().keypoints)
    tables = generate_dataset(params.synthetic, out, progress=progress, joint_set=layout)
    seconds = time.perf_counter() - start
    images = params.synthetic.train_images + params.synthetic.valid_images
    people = {split: len(table) for split, table in tables.items()}
    return (f"synthesize: {images} images, people {people} -> {out} in {seconds:.1f} s "
            f"({images / max(seconds, 1e-9):.1f} images/s)")


def main(argv: list[str] | None = None) -> int:
    """Run the generator; exit codes as :mod:`pipeline.stage` says."""
    return stage.run(build_parser(), lambda args: generate(load_params(args.params), args.out, not args.no_progress),
                     argv)


if __name__ == "__main__":
    raise SystemExit(main())
