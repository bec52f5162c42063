"""DVC stage ``train@<variant>-<seed>``: train one ablation variant from one training seed on the preprocessed data.

``python -m pipeline.train --variant NAME [--seed N] [--out models/NAME/seed-N] [--params params.yaml] [--data DIR]
[--set KEY=VALUE]``; also under ``torchrun --standalone --nproc-per-node=N -m pipeline.train ...`` (DDP over NCCL on
CUDA, gloo on CPU). ``--seed`` defaults to the first of params.yaml's ``seeds``. The work is
:func:`hourglass.train.loop.train`: rank 0 writes ``checkpoint.pt`` (resumed from when it belongs to the same params,
data and code), ``metrics.json``, ``epochs.csv``, ``config.yaml`` and ``mlflow.json`` into ``--out``. Bad input or a
diverged loss exits 1 with the reason (the last good checkpoint is kept).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hourglass.config.params_file import load_params
from hourglass.data.dataset import create_dataset
from hourglass.data.table import PreprocessError
from hourglass.family import family_of
from hourglass.io.checkpoint import CheckpointError
from hourglass.layout import model_dir, stage_item
from hourglass.train.distributed import DistInfo, dist_info_from_env
from hourglass.train.fingerprint import data_digest
from hourglass.train.loop import NonFiniteLossError, train
from pipeline import stage


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", required=True, help="name of a variant in params.yaml train.variants")
    parser.add_argument("--seed", type=stage.seed, default=None,
                        help="the run's training seed, an integer >= 0 (default: the first of params.yaml's seeds)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: models/<variant>/seed-<seed>)")
    parser.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=None,
                        help="preprocessed data directory (default: data/processed/<params dataset>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a params value by dotted key, value parsed as YAML (repeatable), "
                             "e.g. --set train.epochs=2")
    return parser


def run_training(args: argparse.Namespace, info: DistInfo) -> str | None:
    """Train one run; returns rank 0's summary line."""
    params = load_params(args.params, stage.parse_overrides(args.overrides))
    seed = params.seeds[0] if args.seed is None else args.seed
    out = args.out or model_dir(args.variant, seed)
    data = args.data or Path("data/processed") / params.dataset
    train_set = create_dataset(data, "train", params, train=True)
    val_set = create_dataset(data, "valid", params, train=False)
    name = f"train@{stage_item(args.variant, seed)}"
    result = train(params, out, train_set=train_set, val_set=val_set, variant=args.variant, seed=seed, info=info,
                   stage=name, data_fingerprint=data_digest(data), data_dir=data)
    if not info.is_main:
        return None
    family = family_of(params)
    return (f"{name}: {result.epochs} epochs, {result.steps} steps, validation {family.metric} Mean "
            f"{result.final_metrics[family.headline]:.2f} (no flip test) -> {out}")


def main(argv: list[str] | None = None) -> int:
    """Run the stage; exit codes as :mod:`pipeline.stage` says."""
    info = dist_info_from_env()
    return stage.run(build_parser(), lambda args: run_training(args, info), argv,
                     failures=(PreprocessError, CheckpointError, NonFiniteLossError, ValueError),
                     level=logging.INFO if info.is_main else logging.WARNING,
                     fmt=f"%(asctime)s rank{info.rank} %(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":
    raise SystemExit(main())
