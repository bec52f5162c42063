"""``hourglass import``: a checkpoint of princeton-vl/pytorch_stacked_hourglass converted into one of ours."""

from __future__ import annotations

import argparse
import sys

from hourglass.io.checkpoint import CheckpointError

IMPORT_DESCRIPTION = """\
Convert a checkpoint of princeton-vl/pytorch_stacked_hourglass (its train.py file {'state_dict', 'optimizer',
'epoch'} with keys under model.module., or a bare PoseNet state dict) into OUT/checkpoint.pt, which
'hourglass predict --model OUT', the evaluate stage and the served model take. Read with weights_only=True.

Stacks, features (inp_dim), joints (oup_dim) and the stem width come from the tensors' shapes; every tensor is
mapped by structure and checked, the port's unused skip_layer convolutions (Residuals with equal input and output
widths) are dropped and counted. A missing, left-over or mis-shaped tensor stops the import with its key named,
and nothing is written. The only difference at run time: the port's forward takes NHWC, ours NCHW (both RGB in
[0, 1]); 'hourglass predict' handles that itself."""

IMPORT_EXAMPLES = """\
examples:
  hourglass import pose-hg-2hg/checkpoint.pt --out models/port_2hg
  hourglass predict photo.jpg --model models/port_2hg --box 120,40,380,620 --json -
  hourglass import 8hg.pt --out models/port_8hg --source-commit ceedc14b --register hourglass-port"""


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hourglass import``."""
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="a checkpoint file of princeton-vl/pytorch_stacked_hourglass")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="where to write checkpoint.pt, e.g. models/<name> (a path ending in .pt names the file "
                             "itself)")
    parser.add_argument("--variant", default=None,
                        help="the variant name stored in the checkpoint (default: the --out directory's name, as "
                             "the evaluate stage evaluate@<variant> expects)")
    parser.add_argument("--input-res", type=int, default=256, metavar="PX",
                        help="the crop size the model was trained at (default: %(default)s, the port's)")
    parser.add_argument("--source-commit", default=None, metavar="SHA",
                        help="the port's git commit the checkpoint was trained with, recorded in imported_from "
                             "(the file itself does not say)")
    parser.add_argument("--force", action="store_true", help="replace an existing checkpoint at --out")
    parser.add_argument("--register", default=None, metavar="NAME",
                        help="also log the imported model in MLflow and register it as NAME, tagged with the "
                             "source's sha256 and project")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store for --register (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db "
                             "in the current directory)")


def run_import(args: argparse.Namespace) -> int:
    """Convert the port's checkpoint; 0: written (and registered), 1: it does not fit (nothing written)."""
    from hourglass.weights.port import import_port_checkpoint, register_imported

    try:
        result = import_port_checkpoint(args.checkpoint, args.out, input_res=args.input_res, variant=args.variant,
                                        source_commit=args.source_commit, overwrite=args.force)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(result.summary(), file=sys.stderr)
    if args.register:
        try:
            uri, version = register_imported(result.path, args.register, args.tracking_uri)
        except Exception as err:  # the store: unreachable, permissions, a bad name
            print(f"error: {result.path} was written, but registering it as {args.register!r} failed "
                  f"({type(err).__name__}: {err})", file=sys.stderr)
            return 1
        print(f"registered {uri} as {args.register} version {version}", file=sys.stderr)
    return 0
