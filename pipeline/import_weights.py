"""DVC stage ``import@<name>``: released weights (params.yaml ``imports.<name>``) into ``models/<name>/``.

``python -m pipeline.import_weights --name NAME [--params params.yaml] [--out models/NAME]``

Converts a checkpoint of princeton-vl/pytorch_stacked_hourglass (the official PyTorch port) with
:func:`hourglass.weights.releases.import_release`: ``checkpoint.pt`` (ours, every tensor mapped and checked) and
``mlflow.json`` (the MLflow run that holds the model, when MLflow is on). ``evaluate_import@<name>`` then scores it
as ``evaluate@<variant>`` scores a trained variant, and the report shows it beside them. Exits 1 with the reason
(a file of another layout names the first tensor that does not fit; nothing is written then).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hourglass.config.params_file import load_params
from hourglass.io.checkpoint import CheckpointError
from hourglass.weights.releases import import_release
from pipeline import stage


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.import_weights", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="the entry of params.yaml imports to convert")
    parser.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: models/<name>)")
    return parser


def convert(args: argparse.Namespace) -> str:
    """Convert the release; returns the summary line."""
    result = import_release(load_params(args.params), args.name, args.out or Path("models") / args.name)
    arch = result.architecture
    return (f"import@{args.name}: {result.source} ({arch.stacks} stacks, {arch.features} features, {arch.joints} "
            f"joints, {result.parameters:,} parameters, sha256 {result.sha256[:12]}) -> {result.path}")


def main(argv: list[str] | None = None) -> int:
    """Run the stage; exit codes as :mod:`pipeline.stage` says."""
    return stage.run(build_parser(), convert, argv, failures=(CheckpointError, ValueError))


if __name__ == "__main__":
    raise SystemExit(main())
