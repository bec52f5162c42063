"""DVC stage ``preprocess``: crop every person of ``data/raw/<dataset>`` into HDF5 shards + ``annotations.parquet``.

``python -m pipeline.preprocess [--params params.yaml] [--raw data/raw/<dataset>] [--out data/processed/<dataset>]``.
A thin wrapper over :func:`hourglass.data.preprocess.preprocess`; exits 1 with the reason when the input is bad.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hourglass.io.annotations import AnnotationError
from hourglass.config import ConfigError, load_params
from hourglass.data.preprocess import preprocess
from hourglass.data.table import PreprocessError
from pipeline import logs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.preprocess", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    parser.add_argument("--raw", default=None,
                        help="input directory with images/ and annot/*.h5 (default: data/raw/<params dataset>)")
    parser.add_argument("--out", default=None,
                        help="output directory for shards and tables (default: data/processed/<params dataset>)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(logging.INFO)
    try:
        params = load_params(args.params)
        raw = Path(args.raw) if args.raw else Path("data/raw") / params.dataset
        out = Path(args.out) if args.out else Path("data/processed") / params.dataset
        summary = preprocess(raw, out, params, progress=not args.no_progress)
    except (ConfigError, AnnotationError, PreprocessError) as err:
        logging.getLogger("pipeline.preprocess").error("%s", err)
        return 1
    state = "up to date" if summary["skipped"] else "written"
    print(f"{out}: {summary['rows']} people, {summary['bad_images']} bad image(s), "
          f"{len(summary['shards'])} shard(s) {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
