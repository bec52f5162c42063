"""DVC stage ``train@<variant>-<seed>``: train one ablation variant from one training seed on the preprocessed data.

``python -m pipeline.train --variant NAME [--seed N] [--out models/NAME/seed-N] [--params params.yaml] [--data DIR]
[--set KEY=VALUE]``

``--seed`` is the run's training seed (initial weights, sample order, augmentation draws); without it, the first of
params.yaml's ``seeds``. ``--out`` defaults to ``models/<variant>/seed-<seed>``, where dvc.yaml's stage writes.

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

from hourglass.io.checkpoint import CheckpointError
from hourglass.config import ConfigError, load_params
from hourglass.data.dataset import create_dataset
from hourglass.data.table import PreprocessError
from hourglass.train.distributed import dist_info_from_env
from hourglass.family import family_of
from hourglass.train.fingerprint import data_digest
from hourglass.layout import model_dir, stage_item
from hourglass.train.loop import NonFiniteLossError, train
from pipeline import logs

log = logging.getLogger("pipeline.train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", required=True, help="name of a variant in params.yaml train.variants")
    parser.add_argument("--seed", type=_seed, default=None,
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


def _seed(text: str) -> int:
    """``--seed``: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; seeds are integers >= 0")
    return value


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
        seed = params.seeds[0] if args.seed is None else args.seed
        out = args.out or model_dir(args.variant, seed)
        data = args.data or Path("data/processed") / params.dataset
        train_set = create_dataset(data, "train", params, train=True)
        val_set = create_dataset(data, "valid", params, train=False)
        stage = f"train@{stage_item(args.variant, seed)}"
        result = train(params, out, train_set=train_set, val_set=val_set, variant=args.variant, seed=seed,
                       info=info, stage=stage, data_fingerprint=data_digest(data))
    except (ConfigError, PreprocessError, CheckpointError, NonFiniteLossError, ValueError) as err:
        log.error("%s", err)
        return 1
    if info.is_main:
        family = family_of(params)
        mean = result.final_metrics[family.headline]
        print(f"{stage}: {result.epochs} epochs, {result.steps} steps, validation "
              f"{family.metric} Mean {mean:.2f} (no flip test) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
