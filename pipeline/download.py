"""DVC stage ``download``: fetch the real dataset named in params.yaml into ``data/raw/<dataset>/``.

    python -m pipeline.download [--params params.yaml] [--dataset mpii|flic]

The work is :func:`hourglass.data.download.download_dataset`; this module only parses arguments, sets up
logging and turns failures into a one-line error and a non-zero exit code. For ``dataset: synthetic`` (the
embedded default) the "download" is the generator, :mod:`pipeline.synthesize`, writing the same layout into
``<root>/synthetic/``, so one DVC stage produces ``data/raw/${dataset}`` whatever the dataset.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hourglass.config import ConfigError, load_params
from hourglass.data.archive import UnsafeArchiveError
from hourglass.data.download import download_dataset
from hourglass.data.fetch import DownloadError
from pipeline import logs
from pipeline import synthesize


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.download",
        description="Download, verify and extract the dataset's images and annotation files "
                    "(params: download.*).",
    )
    parser.add_argument("--params", default="params.yaml", help="params file to read (default: %(default)s)")
    parser.add_argument("--dataset", choices=("mpii", "flic", "synthetic"), default=None,
                        help="dataset to fetch instead of params `dataset:` (synthetic: generate it offline)")
    parser.add_argument("--root", default=None,
                        help="output root instead of params `download.root` (files go to <root>/<dataset>/)")
    parser.add_argument("--no-progress", action="store_true", help="never show progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the stage; returns the exit code (0 done, 1 download/verification failure, 2 bad params)."""
    args = build_parser().parse_args(argv)
    logs.configure(logging.INFO, "%(levelname)s %(message)s")
    try:
        config = load_params(args.params)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    dataset = args.dataset or config.dataset
    if dataset == "synthetic":
        root = Path(args.root or config.download.root)
        return synthesize.main(["--params", str(args.params), "--out", str(root / "synthetic")]
                               + (["--no-progress"] if args.no_progress else []))
    try:
        manifest = download_dataset(config.download, dataset, root=args.root,
                                    progress=False if args.no_progress else None)
    except (DownloadError, UnsafeArchiveError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{dataset}: done; manifest {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
