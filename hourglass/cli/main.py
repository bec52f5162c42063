"""The ``hourglass`` console script: ``hourglass predict`` (:mod:`hourglass.cli.predict`), ``hourglass import``
(:mod:`hourglass.cli.import_port`), ``hourglass export`` (:mod:`hourglass.cli.export`) and ``hourglass score``
(:mod:`hourglass.cli.score`)."""

from __future__ import annotations

import argparse
import sys

from hourglass.cli.export import EXPORT_DESCRIPTION, EXPORT_EXAMPLES, add_export_arguments, run_export
from hourglass.cli.import_port import IMPORT_DESCRIPTION, IMPORT_EXAMPLES, add_import_arguments, run_import
from hourglass.cli.predict import DESCRIPTION, EXAMPLES, add_predict_arguments, run_predict
from hourglass.cli.score import SCORE_DESCRIPTION, add_score_arguments, run_score


def build_parser() -> argparse.ArgumentParser:
    """``hourglass`` with its subcommands."""
    parser = argparse.ArgumentParser(prog="hourglass", description="Stacked hourglass human pose estimation.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{predict,import,export,score}")
    predict = sub.add_parser("predict", help="keypoints of people in images, folders or a video",
                             description=DESCRIPTION, epilog=EXAMPLES,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    add_predict_arguments(predict)
    port = sub.add_parser("import", help="a checkpoint of princeton-vl/pytorch_stacked_hourglass as one of ours",
                          description=IMPORT_DESCRIPTION, epilog=IMPORT_EXAMPLES,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    add_import_arguments(port)
    export = sub.add_parser("export", help="a trained model as ONNX or OpenVINO IR, for other runtimes",
                            description=EXPORT_DESCRIPTION, epilog=EXPORT_EXAMPLES,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_export_arguments(export)
    scoring = sub.add_parser("score", help="score a prediction file (PCKh, PCK, or COCO OKS AP) against ground truth",
                             description=SCORE_DESCRIPTION)
    add_score_arguments(scoring)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hourglass`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "predict":
        return run_predict(args)
    if args.command == "import":
        return run_import(args)
    if args.command == "export":
        return run_export(args)
    if args.command == "score":
        return run_score(args)
    raise AssertionError(args.command)  # argparse only lets known commands through


if __name__ == "__main__":
    sys.exit(main())
