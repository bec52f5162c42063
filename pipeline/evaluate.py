"""DVC stage ``evaluate@<variant>-<seed>``: score a trained model on the validation split with the official protocol.

``python -m pipeline.evaluate --variant NAME [--seed N] [--model models/NAME/seed-N] [--params params.yaml]
[--data DIR] [--out DIR]``

``--seed`` names the training seed whose model is scored (default: the first of params.yaml's ``seeds``); the model
is then ``models/<variant>/seed-<seed>/`` unless ``--model`` names another (an imported checkpoint, for instance).

Runs the checkpoint over every person of the ``valid`` split (MPII validation: PCKh@0.5; FLIC test: PCK@0.2; the
synthetic set by its joint set), with the flip test when ``targets.flip_test`` is on and the quarter-pixel decoding,
and scores the final prediction and every stack on its own (intermediate against final, the paper's Figure 5).

Outputs in ``--out`` (default: ``eval/`` beside the checkpoint, ``models/<variant>/seed-<seed>/eval/``), each
written atomically:

* ``preds.h5`` in the authors' layout: ``preds`` (N, J, 2) 1-based original-image coordinates, one row per person of
  the ground-truth annotation file in its order, so ``python -m hourglass.evaluation preds.h5 --gt valid.h5`` scores it
  as it scores the authors' released predictions; plus ``stack_preds`` (N, S, J, 2, 1-based), ``maxvals`` (N, J),
  ``stack_maxvals`` (N, S, J) and ``rows`` (N,) the annotation-file rows. A person whose image preprocessing had to
  drop has NaN predictions and counts as missed, as the official toolkit scores a missing prediction.
* ``metrics.json``: the headline numbers, per-joint tables of the final prediction and of every stack, and speed.
* ``test/``: for MPII with ``annot/test.h5``, the test people predicted the same way (``test_preds.h5``) and
  ``pred_keypoints_mpii.mat`` for the benchmark's evaluation server (hourglass.io.mpii_submission), after checking
  that the predicted thoraxes follow the annotated person centres; ``status.json`` says what is there (for other
  datasets: why there is no test split).

The scores are computed by the same function the evaluator CLI uses, against the same annotation file.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from hourglass.io.atomic import write_json_atomic
from hourglass.io.checkpoint import CheckpointError
from hourglass.config import ConfigError, ModelConfig, ParamsConfig, load_params
from hourglass.data.dataset import PoseDataset, create_dataset
from hourglass.data.workers import resolve_workers
from hourglass.data.table import TABLE_NAME, PreprocessError, read_table
from hourglass.evaluation.score import score
from hourglass.family import DatasetFamily, family_of
from hourglass.inference.runner import LoadedModel, Predictions, load_model, predict_dataset
from hourglass.layout import model_dir, stage_item
from hourglass.metrics import PCKResult
from hourglass.tracking.store import log_evaluation
from hourglass.model import count_parameters
from hourglass.precision import select_device, select_precision
from hourglass.io.annotations import AnnotationError, read_annotations
from hourglass.io.mpii_submission import (RELEASE_NAME, SUBMISSION_NAME, THORAX, SubmissionError, build_submission,
                                       check_order, read_release, write_submission)
from hourglass.io.eval_files import GroundTruth, ReaderError, read_ground_truth, write_predictions
from pipeline import logs

log = logging.getLogger("pipeline.evaluate")

SPLIT = "valid"
TEST_SPLIT = "test"
TEST_DIR = "test"  # models/<variant>/seed-<n>/eval/test/: the MPII test-set submission
TEST_PREDICTIONS_NAME = "test_preds.h5"
RELEASE_DIR = "release"  # data/raw/mpii/annot/release/: the annotation release's .mat, extracted by download
PREDICTIONS_NAME = "preds.h5"
METRICS_NAME = "metrics.json"


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
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    return parser


# -- scoring ------------------------------------------------------------------------------------------------------
def _number(value: float) -> float | None:
    """JSON has no NaN: a group without annotated joints is null."""
    return None if value is None or math.isnan(value) else float(value)


def _tables(result: PCKResult, family: DatasetFamily) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """(headline numbers + the ablation figure's accuracy, per-joint percentages)."""
    headline = {k: _number(v) for k, v in result.as_dict().items()}
    headline["figure4"] = _number(family.figure4(result))
    per_joint = {name: _number(v) for name, v in zip(result.joint_names, result.per_joint)}
    return headline, per_joint


def source_rows(data_dir: Path, dataset_rows: np.ndarray, split: str = SPLIT) -> np.ndarray:
    """The annotation-file row (``source_row``) of each dataset row (``row`` of annotations.parquet)."""
    table = read_table(data_dir / TABLE_NAME)
    rows = table.column("row").to_numpy()
    source = table.column("source_row").to_numpy()
    splits = np.asarray(table.column("split").to_pylist())
    lookup = dict(zip(rows.tolist(), zip(source.tolist(), splits.tolist())))
    out = np.empty(len(dataset_rows), dtype=np.int64)
    for i, row in enumerate(dataset_rows.tolist()):
        src, name = lookup[row]
        if name != split:
            raise PreprocessError(f"{data_dir / TABLE_NAME}: row {row} belongs to split {name!r}, not {split!r}")
        out[i] = src
    return out


def align_to_ground_truth(pred: Predictions, rows: np.ndarray, gt: GroundTruth, data_dir: Path) -> dict[str, Any]:
    """Arrays with one entry per ground-truth row (NaN where a person was not predicted), after checking that the
    preprocessed people are the annotation file's people."""
    n = len(gt)
    if len(np.unique(rows)) != len(rows) or (len(rows) and (rows.min() < 0 or rows.max() >= n)):
        raise PreprocessError(f"{data_dir}: the {SPLIT} rows' source_row values do not index the {n} people of "
                              f"{gt.source}; preprocess again from that annotation file")
    if pred.joints.shape[1:] != gt.joints.shape[1:]:
        raise ReaderError(f"{gt.source}: {gt.joints.shape[1]} joints per person, but {data_dir} has "
                          f"{pred.joints.shape[1]}")
    same = np.isclose(pred.joints, gt.joints[rows], atol=1e-3, equal_nan=True).all(axis=(1, 2))
    if not same.all():
        first = int(rows[np.flatnonzero(~same)[0]])
        raise PreprocessError(f"{data_dir}: the joints of {int((~same).sum())} people differ from {gt.source} "
                              f"(first: annotation row {first}); the data was preprocessed from another file")
    joints, stacks = pred.coords.shape[1], pred.stack_coords.shape[1]
    out = {
        "preds": np.full((n, joints, 2), np.nan), "maxvals": np.full((n, joints), np.nan, np.float32),
        "stack_preds": np.full((n, stacks, joints, 2), np.nan),
        "stack_maxvals": np.full((n, stacks, joints), np.nan, np.float32),
    }
    for key, values in (("preds", pred.coords), ("maxvals", pred.maxvals), ("stack_preds", pred.stack_coords),
                        ("stack_maxvals", pred.stack_maxvals)):
        out[key][rows] = values
    return out


# -- the stage ----------------------------------------------------------------------------------------------------
def _dataset_params(params: ParamsConfig, loaded: LoadedModel) -> ParamsConfig:
    """The params with the checkpoint's model section: the input resolution must be the one trained on."""
    return params.model_copy(update={"model": ModelConfig.model_validate(loaded.model_config.model_dump())})


def evaluate(params: ParamsConfig, variant: str, model_path: Path, data_dir: Path, gt_path: Path, out_dir: Path,
             progress: bool = True, seed: int | None = None) -> dict[str, Any]:
    """Run the stage (see the module docstring); returns the metrics written to ``out_dir/metrics.json``.

    ``seed``: the training seed the checkpoint must have been trained from (None: not checked; a checkpoint that
    records no seed, an imported one, is not checked either)."""
    precision = select_precision(params.train.precision, select_device(), params.train.channels_last)
    loaded = load_model(model_path, precision.device)
    if loaded.variant is not None and loaded.variant != variant:
        raise CheckpointError(f"{loaded.path}: checkpoint is of variant {loaded.variant!r}, not {variant!r}")
    trained_seed = loaded.config.get("seed")
    if seed is not None and trained_seed is not None and trained_seed != seed:
        raise CheckpointError(f"{loaded.path}: checkpoint was trained from seed {trained_seed}, not {seed}")
    gt = read_ground_truth(gt_path)
    family = family_of(params)
    if gt.dataset != family.name:
        raise ReaderError(f"{gt_path}: {gt.joints.shape[1]} joints per person ({gt.dataset.upper()}), but the params "
                          f"(dataset {params.dataset!r}) are of the {family.name.upper()} family")
    dataset: PoseDataset = create_dataset(data_dir, SPLIT, _dataset_params(params, loaded), train=False)
    if dataset.num_joints != loaded.model.joints:
        raise CheckpointError(f"{loaded.path}: model predicts {loaded.model.joints} joints but {data_dir} has "
                              f"{dataset.num_joints}")
    flip = params.targets.flip_test
    log.info("evaluating %s (%s) on %d people of %s, flip test %s, %s", variant, loaded.path, len(dataset), data_dir,
             "on" if flip else "off", precision.describe())
    started = time.perf_counter()
    pred = _predict(loaded, dataset, params, precision, progress)
    seconds = time.perf_counter() - started
    rows = source_rows(data_dir, pred.rows)
    arrays = align_to_ground_truth(pred, rows, gt, data_dir)

    final = score(arrays["preds"], gt, pred_source=loaded.path)
    headline, per_joint = _tables(final, family)
    stacks = []
    for k in range(arrays["stack_preds"].shape[1]):
        stack_score = score(arrays["stack_preds"][:, k], gt, pred_source=loaded.path)
        stack_headline, stack_joints = _tables(stack_score, family)
        stacks.append({"stack": k + 1, "metrics": stack_headline, "per_joint": stack_joints})
    metrics = {
        "variant": variant, "seed": trained_seed, "dataset": params.dataset,
        "metric": family.metric, "flip_test": flip,
        "flip_shift": params.targets.flip_shift, "num_people": len(gt), "people_missing": len(gt) - len(rows),
        "parameters": count_parameters(loaded.model), "final": headline, "per_joint": per_joint, "stacks": stacks,
        "seconds": round(seconds, 3), "images_per_s": round(len(pred) / seconds, 2) if seconds > 0 else None,
        "precision": precision.describe(), "checkpoint": str(loaded.path), "epoch": loaded.epoch,
        "ground_truth": str(gt_path),
    }
    if metrics["people_missing"]:
        log.warning("%d of %d people have no prediction (their images were dropped in preprocessing); they count "
                    "as missed", metrics["people_missing"], len(gt))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / PREDICTIONS_NAME, arrays["preds"], {
        "stack_preds": arrays["stack_preds"] + 1.0, "maxvals": arrays["maxvals"],
        "stack_maxvals": arrays["stack_maxvals"], "rows": np.arange(len(gt), dtype=np.int64)})
    test = evaluate_test_split(params, loaded, precision, data_dir, gt_path.parent, out_dir / TEST_DIR, progress)
    metrics["test_split"] = test
    # The same numbers under the names MLflow shows them by (the champion contest reads them here when the store
    # lacks them), then into the training run: one set of numbers, flip test, on every surface.
    metrics["mlflow_metrics"] = family.eval_metrics(headline, [s["metrics"] for s in stacks])
    write_json_atomic(out_dir / METRICS_NAME, metrics)
    mean = headline.get("Mean")
    tags = {"eval.metric": f"{family.metric}, {'flip test' if flip else 'no flip test'} (evaluate stage)",
            "eval.mean": "n/a" if mean is None else f"{mean:.2f}"}
    if log_evaluation(loaded.path.parent, metrics["mlflow_metrics"], tags):
        log.info("logged %d eval/ metrics to the training run in MLflow", len(metrics["mlflow_metrics"]))
    return metrics


def _predict(loaded: LoadedModel, dataset: PoseDataset, params: ParamsConfig, precision: Any,
             progress: bool) -> Predictions:
    """The network over every person of ``dataset``, with the flip test when ``targets.flip_test`` is on."""
    return predict_dataset(loaded.model, dataset, precision,
                           flip_perm=dataset.joint_set.flip if params.targets.flip_test else None,
                           shift=params.targets.flip_shift, batch_size=params.train.val_batch_size,
                           workers=resolve_workers(params.train.workers, precision.device), progress=progress)


def evaluate_test_split(params: ParamsConfig, loaded: LoadedModel, precision: Any, data_dir: Path, annot_dir: Path,
                        out_dir: Path, progress: bool = True) -> dict[str, Any]:
    """MPII's test people (``annot/test.h5``), predicted as validation is, for the evaluation server.

    Writes into ``out_dir`` (always created, so the stage's declared output exists for every dataset):
    ``status.json``; and when the dataset is MPII with a ``test.h5``, ``test_preds.h5`` (authors' layout, one row
    per test.h5 row, plus its ``index``/``person``) and ``pred_keypoints_mpii.mat`` built from the annotation
    release after the person-order guard. Returns the status.
    """
    test_h5 = annot_dir / "test.h5"
    if params.dataset != "mpii" or not test_h5.is_file():
        reason = (f"dataset {params.dataset!r} has no test server" if params.dataset != "mpii"
                  else f"{test_h5} is absent")
        status: dict[str, Any] = {"test_split": False, "reason": reason}
        _write_status(out_dir, status)
        return status
    release = read_release(annot_dir / RELEASE_DIR / RELEASE_NAME)  # before the work: a missing file stops early
    table = read_annotations(test_h5)
    for key in ("index", "person"):
        if key not in table.extra:
            raise SubmissionError(f"{test_h5}: no '{key}' column; the submission needs each row's annolist/annorect")
    dataset = create_dataset(data_dir, TEST_SPLIT, _dataset_params(params, loaded), train=False)
    log.info("predicting %d MPII test people of %s for the evaluation server", len(dataset), data_dir)
    pred = _predict(loaded, dataset, params, precision, progress)
    rows = source_rows(data_dir, pred.rows, TEST_SPLIT)
    preds = np.full((len(table), pred.coords.shape[1], 2), np.nan)
    preds[rows] = pred.coords
    index, person = table.extra["index"].astype(np.int64), table.extra["person"].astype(np.int64)
    objpos = np.array([release.objpos(int(i), int(p)) for i, p in zip(index, person)]).reshape(-1, 2) - 1.0
    correlation = check_order(objpos, preds[:, THORAX], str(test_h5))
    write_predictions(out_dir / TEST_PREDICTIONS_NAME, preds, {"index": index, "person": person})
    write_submission(out_dir / SUBMISSION_NAME, build_submission(release, index, person, preds))
    status = {"test_split": True, "people": len(table), "people_missing": int(len(table) - len(rows)),
              "order_check": correlation, "files": [TEST_PREDICTIONS_NAME, SUBMISSION_NAME],
              "release": str(release.source)}
    _write_status(out_dir, status)
    return status


def _write_status(out_dir: Path, status: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "status.json", status)


def main(argv: list[str] | None = None) -> int:
    """Run the stage; 0 on success, 1 with the reason on stderr on bad input."""
    args = build_parser().parse_args(argv)
    logs.configure(logging.INFO)
    try:
        params = load_params(args.params)
        data = args.data or Path("data/processed") / params.dataset
        gt_path = args.gt or Path("data/raw") / params.dataset / "annot" / f"{SPLIT}.h5"
        seed = params.seeds[0] if args.seed is None and args.model is None else args.seed
        model = args.model or model_dir(args.variant, seed)
        out = args.out or (model.parent if model.is_file() else model) / "eval"
        metrics = evaluate(params, args.variant, model, data, gt_path, out, progress=not args.no_progress, seed=seed)
    except (ConfigError, CheckpointError, PreprocessError, ReaderError, AnnotationError, SubmissionError,
            ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    mean = metrics["final"]["Mean"]
    name = args.variant if metrics["seed"] is None else stage_item(args.variant, metrics["seed"])
    print(f"evaluate@{name}: {metrics['metric']} Mean {'n/a' if mean is None else f'{mean:.2f}'} over "
          f"{metrics['num_people']} people ({metrics['images_per_s']} people/s) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
