"""DVC stage ``download``: fetch the real dataset named in params.yaml into ``data/raw/<dataset>/``.

    python -m pipeline.download [--params params.yaml] [--dataset mpii|flic|synthetic] [--root DIR]

The work is :func:`hourglass.data.download.download_dataset`. For ``dataset: synthetic`` (the embedded default) the
"download" is the generator, :func:`pipeline.synthesize.generate`, writing the same layout into ``<root>/synthetic/``,
so one DVC stage produces ``data/raw/${dataset}`` whatever the dataset.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hourglass.data.archive import UnsafeArchiveError
from hourglass.data.download import download_dataset
from hourglass.data.fetch import DownloadError
from hourglass.params_file import load_params
from pipeline import stage, synthesize


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


def fetch(args: argparse.Namespace) -> str:
    """Download (or generate) the dataset; returns the summary line."""
    config = load_params(args.params)
    dataset = args.dataset or config.dataset
    if dataset == "synthetic":
        root = Path(args.root or config.download.root)
        return synthesize.generate(config, root / "synthetic", progress=not args.no_progress)
    manifest = download_dataset(config.download, dataset, root=args.root, progress=False if args.no_progress else None)
    return f"{dataset}: done; manifest {manifest}"


def main(argv: list[str] | None = None) -> int:
    """Run the stage; exit codes as :mod:`pipeline.stage` says."""
    return stage.run(build_parser(), fetch, argv, failures=(DownloadError, UnsafeArchiveError),
                     fmt="%(levelname)s %(message)s")


if __name__ == "__main__":
    raise SystemExit(main())
