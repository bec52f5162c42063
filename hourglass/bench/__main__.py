"""Command line of the benchmarks; see the package docstring."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

# Subcommand -> (module, help). Each module adds its own options and returns its figures as a dict.
BENCHMARKS = {
    "model": ("hourglass.bench.model",
              "training/inference img/s of the network: fast path vs fp32 eager NCHW, and matmul peak"),
    "loader": ("hourglass.bench.loader", "augmented training samples/s of the data loader on one core"),
    "preprocess": ("hourglass.bench.preprocess", "crop preprocessing images/s against JPEG decoding alone, one core"),
    "predict": ("hourglass.bench.predict", "single-image latency and batched throughput of the predict path"),
    "profile": ("hourglass.bench.profile", "where one training step of each demo variant spends its time: parts' "
                "shares, GFLOP/s against the fp32 matmul peak, per-epoch validation"),
    "device": ("hourglass.bench.device", "the training loop on this machine's device: fast path vs fp32 eager, the "
               "loader, DDP scaling, the recipes' projected wall-clock (at most 5 minutes on one GPU)"),
    "peer": ("hourglass.bench.peer", "training and batched inference against peer A (princeton-vl/"
             "pytorch_stacked_hourglass as shipped) in one interleaved run: img/s, ratios, the issues' bars"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hourglass.bench", description=__doc__)
    sub = parser.add_subparsers(dest="benchmark", required=True, metavar="{" + ",".join(BENCHMARKS) + "}")
    modules = {}
    for name, (module_name, help_text) in BENCHMARKS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            modules[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            p.set_defaults(missing=module_name)
            continue
        modules[name].add_arguments(p)
    args = parser.parse_args(argv)
    if getattr(args, "missing", None):
        parser.error(f"benchmark {args.benchmark!r} is not available in this version ({args.missing} missing)")
    result = modules[args.benchmark].run(args)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
