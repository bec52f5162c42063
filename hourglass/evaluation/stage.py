"""The evaluate stage's work: score a trained model on the validation split with the official protocol.

The checkpoint runs over every person of the ``valid`` split (MPII validation: PCKh@0.5; FLIC test: PCK@0.2; the
synthetic set by its joint set), with the flip test when ``targets.flip_test`` is on and the quarter-pixel decoding;
the final prediction and every stack on its own (intermediate against final, the paper's Figure 5) are scored by
the function the evaluator CLI uses, against the same annotation file.

Outputs in ``out_dir``, each written atomically:

* ``preds.h5`` in the authors' layout: ``preds`` (N, J, 2) 1-based original-image coordinates, one row per person of
  the ground-truth annotation file in its order, so ``python -m hourglass.evaluation preds.h5 --gt valid.h5`` scores it
  as it scores the authors' released predictions; plus ``stack_preds`` (N, S, J, 2, 1-based), ``maxvals`` (N, J),
  ``stack_maxvals`` (N, S, J) and ``rows`` (N,) the annotation-file rows. A person whose image preprocessing had to
  drop has NaN predictions and counts as missed, as the official toolkit scores a missing prediction.
* ``metrics.json``: the headline numbers, per-joint tables of the final prediction and of every stack, speed, and
  ``split_digest`` (:mod:`hourglass.evaluation.split_digest`: the people and protocol scored, which the champion
  contest requires to be the same for both models).
* ``test/``: the MPII test-server submission (:mod:`hourglass.evaluation.submission`).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hourglass.config import ParamsConfig
from hourglass.data.dataset import PoseDataset, create_dataset
from hourglass.evaluation.coco_results import coco_mlflow_metrics, write_and_score
from hourglass.evaluation.score import score
from hourglass.evaluation.split_digest import split_digest
from hourglass.evaluation.split_predictions import SPLIT, align_to_ground_truth, dataset_params, predict, source_rows
from hourglass.evaluation.submission import predict_test_split
from hourglass.family import DatasetFamily, family_of
from hourglass.inference.runner import load_model
from hourglass.inference.runtimes import TORCH, open_runtime
from hourglass.inference.trained_on import confidence_divisor
from hourglass.io.atomic import write_json_atomic
from hourglass.io.checkpoint import CheckpointError
from hourglass.io.eval_files import ReaderError, read_ground_truth, write_predictions
from hourglass.metrics import PCKResult
from hourglass.model import count_parameters
from hourglass.precision import select_device, select_precision
from hourglass.tracking.store import log_evaluation

log = logging.getLogger(__name__)

TEST_DIR = "test"  # models/<variant>/seed-<n>/eval/test/: the MPII test-set submission
PREDICTIONS_NAME = "preds.h5"
METRICS_NAME = "metrics.json"


def _number(value: float) -> float | None:
    """JSON has no NaN: a group without annotated joints is null."""
    return None if value is None or math.isnan(value) else float(value)


def _tables(result: PCKResult, family: DatasetFamily) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """(headline numbers + the ablation figure's accuracy, per-joint percentages)."""
    headline = {k: _number(v) for k, v in result.as_dict().items()}
    headline["figure4"] = _number(family.figure4(result))
    per_joint = {name: _number(v) for name, v in zip(result.joint_names, result.per_joint, strict=True)}
    return headline, per_joint


def evaluate(params: ParamsConfig, variant: str, model_path: Path, data_dir: Path, gt_path: Path, out_dir: Path,
             progress: bool = True, seed: int | None = None, submission: bool = True,
             runtime: str = TORCH) -> dict[str, Any]:
    """Run the stage (see the module docstring); returns the metrics written to ``out_dir/metrics.json``.

    ``seed``: the training seed the checkpoint must have been trained from (None: not checked; a checkpoint that
    records no seed, an imported one, is not checked either). ``submission`` False skips the test-set submission
    (the champion contest re-scoring a model needs the validation split only). ``runtime`` (torch, onnxruntime,
    openvino) runs the network: an exported one gets the checkpoint exported first and runs fp32 on the CPU, so its
    score can be compared with torch's (issue 27's parity bar)."""
    if variant in params.train.variants:  # its targets and train overrides (flip test, precision, batch)
        params = params.with_variant(variant, sections=("targets", "train"))
    if runtime == TORCH:
        precision = select_precision(params.train.precision, select_device(), params.train.channels_last)
    else:
        precision = select_precision("fp32", torch.device("cpu"), channels_last=False)
    loaded = load_model(model_path, precision.device)
    if loaded.variant is not None and loaded.variant != variant:
        raise CheckpointError(f"{loaded.path}: checkpoint is of variant {loaded.variant!r}, not {variant!r}")
    trained_seed = loaded.config.get("seed")
    if seed is not None and trained_seed is not None and trained_seed != seed:
        raise CheckpointError(f"{loaded.path}: checkpoint was trained from seed {trained_seed}, not {seed}")
    gt = read_ground_truth(gt_path)
    family = family_of(params)
    if gt.joints.shape[1] != family.joints.count:
        raise ReaderError(f"{gt_path}: {gt.joints.shape[1]} joints per person, but the params' dataset card "
                          f"{params.dataset!r} has {family.joints.count} keypoints")
    dataset: PoseDataset = create_dataset(data_dir, SPLIT, dataset_params(params, loaded), train=False)
    if dataset.num_joints != loaded.model.joints:
        raise CheckpointError(f"{loaded.path}: model predicts {loaded.model.joints} joints but {data_dir} has "
                              f"{dataset.num_joints}")
    flip = params.targets.flip_test
    digest = split_digest(data_dir, gt_path, params)
    log.info("evaluating %s (%s) on %d people of %s, flip test %s, %s %s", variant, loaded.path, len(dataset),
             data_dir, "on" if flip else "off", runtime, precision.describe())
    started = time.perf_counter()
    engine = open_runtime(runtime, loaded, precision)
    pred = predict(loaded, dataset, params, precision, progress, engine)
    seconds = time.perf_counter() - started
    rows = source_rows(data_dir, pred.rows)
    arrays = align_to_ground_truth(pred, rows, gt, data_dir)

    final = score(arrays["preds"], gt, pred_source=loaded.path, dataset=family)
    headline, per_joint = _tables(final, family)
    stacks = []
    for k in range(arrays["stack_preds"].shape[1]):
        stack_score = score(arrays["stack_preds"][:, k], gt, pred_source=loaded.path, dataset=family)
        stack_headline, stack_joints = _tables(stack_score, family)
        stacks.append({"stack": k + 1, "metrics": stack_headline, "per_joint": stack_joints})
    metrics = {
        "variant": variant, "seed": trained_seed, "dataset": params.dataset,
        "metric": family.metric, "flip_test": flip,
        "flip_shift": params.targets.flip_shift, "num_people": len(gt), "people_missing": len(gt) - len(rows),
        "parameters": count_parameters(loaded.model), "final": headline, "per_joint": per_joint, "stacks": stacks,
        "seconds": round(seconds, 3), "images_per_s": round(len(pred) / seconds, 2) if seconds > 0 else None,
        "precision": precision.describe(), "runtime": runtime, "checkpoint": str(loaded.path),
        "epoch": loaded.epoch,
        "ground_truth": str(gt_path), "split_digest": digest,
    }
    if metrics["people_missing"]:
        log.warning("%d of %d people have no prediction (their images were dropped in preprocessing); they count "
                    "as missed", metrics["people_missing"], len(gt))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / PREDICTIONS_NAME, arrays["preds"], {
        "stack_preds": arrays["stack_preds"] + 1.0, "maxvals": arrays["maxvals"],
        "stack_maxvals": arrays["stack_maxvals"], "rows": np.arange(len(gt), dtype=np.int64)})
    if submission:
        metrics["test_split"] = predict_test_split(params, loaded, precision, data_dir, gt_path.parent,
                                                   out_dir / TEST_DIR, progress, engine)
    # The same numbers under the names MLflow shows them by (the champion contest reads them here when the store
    # lacks them), then into the training run: one set of numbers, flip test, on every surface.
    metrics["mlflow_metrics"] = family.eval_metrics(headline, [s["metrics"] for s in stacks])
    if family.card.format == "coco":  # the field's own format and numbers: results.json, OKS AP, PCK@0.2, EPE
        confidences = arrays["maxvals"] / confidence_divisor(loaded.config, loaded.path)
        metrics["coco"] = write_and_score(family.card, arrays["preds"], confidences, gt_path, out_dir)
        metrics["mlflow_metrics"].update(coco_mlflow_metrics(metrics["coco"]))
        log.info("COCO results %s: AP %s, PCK@%g %.2f, EPE %.2f px", metrics["coco"]["results"],
                 metrics["coco"].get("AP"), family.threshold, metrics["coco"][f"PCK@{family.threshold:g}"],
                 metrics["coco"]["EPE"])
    write_json_atomic(out_dir / METRICS_NAME, metrics)
    mean = headline.get("Mean")
    tags = {"eval.metric": f"{family.metric}, {'flip test' if flip else 'no flip test'} (evaluate stage)",
            "eval.mean": "n/a" if mean is None else f"{mean:.2f}", "eval.split_digest": digest}
    if log_evaluation(loaded.path.parent, metrics["mlflow_metrics"], tags):
        log.info("logged %d eval/ metrics to the training run in MLflow", len(metrics["mlflow_metrics"]))
    return metrics
