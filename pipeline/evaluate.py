"""DVC stage ``evaluate@<variant>-<seed>``: score a trained model on the validation split with the official protocol.

``python -m pipeline.evaluate --variant NAME [--seed N] [--model models/NAME/seed-N] [--params params.yaml]
[--data DIR] [--gt valid.h5] [--out DIR] [--runtime torch|onnxruntime|openvino]``

``--seed`` names the training seed whose model is scored (default: the first of params.yaml's ``seeds``); the model
is then ``models/<variant>/seed-<seed>/`` unless ``--model`` names another (an imported checkpoint, for instance).
The work is :func:`hourglass.evaluation.stage.evaluate`: ``preds.h5``, ``metrics.json`` and ``test/`` in ``--out``
(default: ``eval/`` beside the checkpoint). ``--runtime`` scores the network exported to ONNX Runtime or OpenVINO
(fp32, CPU) instead of eager torch: the check that an export scores as its checkpoint does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hourglass.config.params_file import load_params
from hourglass.data.table import PreprocessError
from hourglass.evaluation.split_predictions import SPLIT
from hourglass.evaluation.stage import evaluate
from hourglass.export.deps import MissingPackageError
from hourglass.inference.runtimes import RUNTIME_HELP, RUNTIMES, TORCH
from hourglass.io.annotations import AnnotationError
from hourglass.io.checkpoint import CheckpointError
from hourglass.io.eval_files import ReaderError
from hourglass.io.mpii_submission import SubmissionError
from hourglass.layout import model_dir, stage_item
from pipeline import stage


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", required=True, help="the trained variant's name (as in train.variants)")
    parser.add_argument("--seed", type=int, default=None,
                        help="the training seed whose model is scored (default: the first of params.yaml's seeds)")
    parser.add_argument("--model", type=Path, default=None,
                        help="model directory holding checkpoint.pt, or the checkpoint file "
                             "(default: models/<variant>/seed-<seed>)")
    parser.add_argument("--params", default="params.yaml",
                        help="params file: dataset, targets.flip_test/flip_shift, train.val_batch_size/workers/"
                             "precision (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=None,
                        help="preprocessed data directory (default: data/processed/<params dataset>)")
    parser.add_argument("--gt", type=Path, default=None,
                        help="ground-truth annotation h5 of the validation split, which fixes the rows of preds.h5 "
                             "(default: data/raw/<params dataset>/annot/valid.h5)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory for preds.h5 and metrics.json (default: eval/ in the model's "
                             "directory)")
    parser.add_argument("--runtime", choices=RUNTIMES, default=TORCH,
                        help=f"{RUNTIME_HELP}; the checkpoint is exported first, as `hourglass export` does "
                             "(default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    return parser


def score_model(args: argparse.Namespace) -> str:
    """Evaluate the model; returns the summary line."""
    params = load_params(args.params)
    data = args.data or Path("data/processed") / params.dataset
    gt_path = args.gt or Path("data/raw") / params.dataset / "annot" / f"{SPLIT}.h5"
    seed = params.seeds[0] if args.seed is None and args.model is None else args.seed
    model = args.model or model_dir(args.variant, seed)
    out = args.out or (model.parent if model.is_file() else model) / "eval"
    metrics = evaluate(params, args.variant, model, data, gt_path, out, progress=not args.no_progress, seed=seed,
                       runtime=args.runtime)
    mean = metrics["final"]["Mean"]
    name = args.variant if metrics["seed"] is None else stage_item(args.variant, metrics["seed"])
    return (f"evaluate@{name}: {metrics['metric']} Mean {'n/a' if mean is None else f'{mean:.2f}'} over "
            f"{metrics['num_people']} people ({metrics['images_per_s']} people/s) -> {out}")


def main(argv: list[str] | None = None) -> int:
    """Run the stage; exit codes as :mod:`pipeline.stage` says."""
    return stage.run(build_parser(), score_model, argv, failures=(
        CheckpointError, PreprocessError, ReaderError, AnnotationError, SubmissionError, MissingPackageError,
        ValueError))


if __name__ == "__main__":
    raise SystemExit(main())
