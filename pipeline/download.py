"""DVC stage ``download``: bring the dataset named in params.yaml into ``data/raw/<dataset>/``.

    python -m pipeline.download [--params params.yaml] [--dataset NAME] [--root DIR]

What "bring" means is the dataset card's ``format``: ``mpii_h5``/``flic_h5`` are downloaded and verified
(:func:`hourglass.data.download.download_dataset`, sources in the card's ``download`` list); ``synthetic`` is
generated (:func:`pipeline.synthesize.generate`); ``coco`` is read from the card's COCO keypoints file(s) and image
folder (:func:`hourglass.data.coco_import.import_coco`). Each writes the same layout (``images/``,
``annot/{train,valid}.h5``), so one DVC stage produces ``data/raw/${dataset}`` whatever the dataset.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hourglass.config.params_file import load_params
from hourglass.data.archive import UnsafeArchiveError
from hourglass.data.coco_import import import_coco
from hourglass.data.download import download_dataset, http_settings
from hourglass.data.fetch import DownloadError
from hourglass.dataset_card import CardError, load_card
from hourglass.io.coco import CocoError
from pipeline import stage, synthesize


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.download",
        description="Download, verify and extract the dataset's images and annotation files "
                    "(params: download.*).",
    )
    parser.add_argument("--params", default="params.yaml", help="params file to read (default: %(default)s)")
    parser.add_argument("--dataset", default=None,
                        help="dataset card (a name in datasets/, or a card file's path) to fetch instead of "
                             "params `dataset:` (format synthetic: generated offline; coco: read from the card's "
                             "files)")
    parser.add_argument("--root", default=None,
                        help="output root instead of params `download.root` (files go to <root>/<dataset>/)")
    parser.add_argument("--no-progress", action="store_true", help="never show progress bars")
    return parser


def fetch(args: argparse.Namespace) -> str:
    """Download (or generate) the dataset; returns the summary line."""
    config = load_params(args.params)
    card = load_card(args.dataset, config.card_search) if args.dataset else config.card()
    dataset = card.name
    root = Path(args.root or config.download.root)
    if card.format == "synthetic":
        if dataset != config.dataset:
            config = config.model_copy(update={"dataset": dataset})
        return synthesize.generate(config, root / dataset, progress=not args.no_progress)
    if card.format == "coco":
        return import_coco(card, root / dataset, http_settings(config.download, progress=False))
    manifest = download_dataset(config.download, dataset, card.download, root=args.root,
                                progress=False if args.no_progress else None)
    return f"{dataset}: done; manifest {manifest}"


def main(argv: list[str] | None = None) -> int:
    """Run the stage; exit codes as :mod:`pipeline.stage` says."""
    return stage.run(build_parser(), fetch, argv, failures=(DownloadError, UnsafeArchiveError, CardError, CocoError),
                     fmt="%(levelname)s %(message)s")


if __name__ == "__main__":
    raise SystemExit(main())
