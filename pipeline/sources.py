"""Have the dataset's sources changed since they were brought in? The scheduled retrain asks first.

    python -m pipeline.sources [--params params.yaml] [--json]

For a ``format: coco`` card: the annotation files and the images they list, against the state the last import recorded
(``data/raw/<dataset>/import.json``); size and mtime first, a content hash where they moved. An export at
``coco.url``: the server's ETag (else Last-Modified and size), or the archive's content hash when it gives neither.
Prints ``unchanged`` or one line per change. Other formats have no such sources (pinned downloads, generated data):
always ``unchanged``. After a change, ``dvc repro -f download`` (the retrain flow does it) brings the new data in:
images already there keep their split, since a split depends only on the file name.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hourglass.config.params_file import load_params
from hourglass.data.download import http_settings
from hourglass.data.fetch import DownloadError
from hourglass.data.sources import changed_sources
from hourglass.dataset_card import CardError
from hourglass.io.coco import CocoError
from pipeline import stage


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.sources", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print {dataset, changed, changes} as JSON")
    return parser


def check(args: argparse.Namespace) -> str:
    """The changes, or ``unchanged``."""
    params = load_params(args.params)
    card = params.card()
    changes = changed_sources(card, Path(params.download.root) / card.name,
                              http_settings(params.download, progress=False))
    if args.json:
        return json.dumps({"dataset": card.name, "changed": bool(changes), "changes": changes})
    return "\n".join([f"{card.name}: {len(changes)} change(s)", *changes]) if changes else f"{card.name}: unchanged"


def main(argv: list[str] | None = None) -> int:
    """Run the check; exit codes as :mod:`pipeline.stage` says."""
    return stage.run(build_parser(), check, argv, failures=(CardError, CocoError, DownloadError, OSError, ValueError))


if __name__ == "__main__":
    raise SystemExit(main())
