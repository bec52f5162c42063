"""The evaluate stage's predictions in COCO's results format, scored as COCO tools score them.

For a ``format: coco`` card the stage also writes ``eval/results.json`` (``[{"image_id", "category_id",
"keypoints", "score", "annotation_id"}]``, keypoint scores = heatmap confidences), so pycocotools, mmpose or any COCO
tool reads our predictions, and scores it against the import's ``annot/valid.json``: OKS AP/AR where the card has
sigmas, PCK@0.2 by box as mmpose computes it, and EPE in pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hourglass.dataset_card import DatasetCard
from hourglass.evaluation.coco_eval import coco_result_rows, score_coco_results, write_coco_results
from hourglass.io.annotations import read_annotations

RESULTS_NAME = "results.json"  # models/<variant>/seed-<n>/eval/results.json
COCO_GROUND_TRUTH = "valid.json"  # data/raw/<dataset>/annot/valid.json, written by the import
COCO_CATEGORY = 1  # the import writes the validation people under one category


def write_and_score(card: DatasetCard, preds: np.ndarray, confidences: np.ndarray, gt_h5: Path,
                    out_dir: Path) -> dict[str, Any]:
    """Write ``out_dir/results.json`` for the validation rows of ``gt_h5`` (people without a prediction are left
    out) and score it against ``annot/valid.json``; returns the scores (JSON-ready) and the files' paths."""
    table = read_annotations(gt_h5)
    if "image_id" not in table.extra or "annotation_id" not in table.extra:
        raise ValueError(f"{gt_h5}: no image_id/annotation_id rows; was it written by the COCO import?")
    have = np.isfinite(preds).all(axis=(1, 2))
    rows = coco_result_rows(table.extra["image_id"][have].astype(int).tolist(), COCO_CATEGORY, preds[have],
                            confidences[have], table.extra["annotation_id"][have].astype(int).tolist())
    results = out_dir / RESULTS_NAME
    write_coco_results(results, rows)
    truth = gt_h5.parent / COCO_GROUND_TRUTH
    scores = score_coco_results(results, truth, sigmas=card.measure.sigmas, threshold=card.measure.threshold)
    return {**scores.as_dict(), "results": str(results), "ground_truth": str(truth)}


def coco_mlflow_metrics(scores: dict[str, Any]) -> dict[str, float]:
    """The COCO numbers under MLflow names: ``eval/coco/AP``, ``eval/coco/AR``, ``eval/coco/PCK_at_0.2``,
    ``eval/coco/EPE`` (numbers that could not be computed are left out)."""
    out = {}
    for key, value in scores.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value):
            out[f"eval/coco/{key.replace('@', '_at_')}"] = float(value)
    return out
