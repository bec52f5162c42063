"""DVC stage ``preprocess``: crop every person of ``data/raw/<dataset>`` into HDF5 shards + ``annotations.parquet``.

``python -m pipeline.preprocess [--params params.yaml] [--raw data/raw/<dataset>] [--out data/processed/<dataset>]``.
The work is :func:`hourglass.data.preprocess.preprocess`; bad input exits 1 with the reason (:mod:`pipeline.stage`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hourglass.config.params_file import load_params
from hourglass.data.preprocess import preprocess
from hourglass.data.table import PreprocessError
from hourglass.io.annotations import AnnotationError
from pipeline import stage


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


def run_preprocess(args: argparse.Namespace) -> str:
    """Crop the raw dataset into shards; returns the summary line."""
    params = load_params(args.params)
    raw = Path(args.raw) if args.raw else Path("data/raw") / params.dataset
    out = Path(args.out) if args.out else Path("data/processed") / params.dataset
    summary = preprocess(raw, out, params, progress=not args.no_progress)
    state = "up to date" if summary["skipped"] else "written"
    return (f"{out}: {summary['rows']} people, {summary['bad_images']} bad image(s), "
            f"{len(summary['shards'])} shard(s) {state}")


def main(argv: list[str] | None = None) -> int:
    """Run the stage; exit codes as :mod:`pipeline.stage` says."""
    return stage.run(build_parser(), run_preprocess, argv, failures=(AnnotationError, PreprocessError))


if __name__ == "__main__":
    raise SystemExit(main())
