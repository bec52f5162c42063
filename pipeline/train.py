"""DVC stage ``train@<variant>``: train one ablation variant on the preprocessed data.

``python -m pipeline.train --variant NAME --out models/NAME [--params params.yaml] [--data DIR] [--set KEY=VALUE]``

Runs as one process or under ``torchrun --standalone --nproc-per-node=N -m pipeline.train ...`` (DDP over NCCL on
CUDA, gloo on CPU). Everything comes from params.yaml (``train``, ``model`` with the variant's overrides,
``mlflow``). Outputs, written by rank 0 only, in ``--out``: ``checkpoint.pt`` (resumed from when it belongs to the same params, data and code),
``metrics.json``, ``epochs.csv``, ``config.yaml`` and, when ``mlflow.log_model`` is on, ``mlflow.json``. Exits 1
with the reason on bad input or a diverged loss (the last good checkpoint is kept).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from hourglass.checkpoint import CheckpointError
from hourglass.config import ConfigError, load_params
from hourglass.data.dataset import create_dataset
from hourglass.data.preprocess import PreprocessError
from hourglass.distributed import dist_info_from_env
from hourglass.family import family_of
from hourglass.fingerprint import data_digest
from hourglass.train import NonFiniteLossError, train
from pipeline import logs

log = logging.getLogger("pipeline.train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", required=True, help="name of a variant in params.yaml train.variants")
    parser.add_argument("--out", required=True, type=Path, help="output directory, e.g. models/<variant>")
    parser.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=None,
                        help="preprocessed data directory (default: data/processed/<params dataset>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a params value by dotted key, value parsed as YAML (repeatable), "
                             "e.g. --set train.epochs=2")
    return parser


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["train.epochs=2"]`` -> ``{"train.epochs": 2}``; a malformed item is an error naming it."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: value is not valid YAML: {err}") from None
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    info = dist_info_from_env()
    logs.configure(logging.INFO if info.is_main else logging.WARNING,
                   fmt=f"%(asctime)s rank{info.rank} %(levelname)s %(name)s: %(message)s")
    try:
        params = load_params(args.params, parse_overrides(args.overrides))
        data = args.data or Path("data/processed") / params.dataset
        train_set = create_dataset(data, "train", params, train=True)
        val_set = create_dataset(data, "valid", params, train=False)
        result = train(params, args.out, train_set=train_set, val_set=val_set, variant=args.variant, info=info,
                       stage=f"train@{args.variant}", data_fingerprint=data_digest(data))
    except (ConfigError, PreprocessError, CheckpointError, NonFiniteLossError, ValueError) as err:
        log.error("%s", err)
        return 1
    if info.is_main:
        family = family_of(params)
        mean = result.final_metrics[family.headline]
        print(f"train@{args.variant}: {result.epochs} epochs, {result.steps} steps, validation {family.metric} Mean "
              f"{mean:.2f} (no flip test) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
