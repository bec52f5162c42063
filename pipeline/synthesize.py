"""DVC stage ``synthesize``: render the procedural people dataset into the layout of a real download.

``python -m pipeline.synthesize [--params params.yaml] [--out data/raw/synthetic]`` writes ``<out>/images/*.jpg``
and ``<out>/annot/{train,valid}.h5`` from the ``synthetic`` section of params.yaml (see hourglass.data.synthetic).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hourglass.data.synthetic import generate_dataset
from hourglass.params_file import ConfigError, load_params


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.synthesize", description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params.yaml to read the 'synthetic' section from (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("data/raw/synthetic"),
                        help="output directory; images/ and annot/ are created inside (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (DVC pipes the output)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        params = load_params(args.params)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    tables = generate_dataset(params.synthetic, args.out, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    images = params.synthetic.train_images + params.synthetic.valid_images
    people = {split: len(table) for split, table in tables.items()}
    print(f"synthesize: {images} images, people {people} -> {args.out} in {seconds:.1f} s "
          f"({images / max(seconds, 1e-9):.1f} images/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
