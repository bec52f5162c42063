"""MPII's test people predicted as validation is, for the benchmark's evaluation server (hourglass.io.mpii_submission).

Writes ``eval/test/``: ``status.json`` always (so the stage's declared output exists for every dataset), and for
MPII with ``annot/test.h5`` the predictions ``test_preds.h5`` and the server's ``pred_keypoints_mpii.mat``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from hourglass.config import ParamsConfig
from hourglass.data.dataset import create_dataset
from hourglass.evaluation.split_predictions import TEST_SPLIT, dataset_params, predict, source_rows
from hourglass.inference.runner import Forward, LoadedModel
from hourglass.io.annotations import read_annotations
from hourglass.io.atomic import write_json_atomic
from hourglass.io.eval_files import write_predictions
from hourglass.io.mpii_submission import (
    RELEASE_NAME,
    SUBMISSION_NAME,
    THORAX,
    SubmissionError,
    build_submission,
    check_order,
    read_release,
    write_submission,
)

log = logging.getLogger(__name__)

TEST_PREDICTIONS_NAME = "test_preds.h5"
RELEASE_DIR = "release"  # data/raw/mpii/annot/release/: the annotation release's .mat, extracted by download


def predict_test_split(params: ParamsConfig, loaded: LoadedModel, precision: Any, data_dir: Path, annot_dir: Path,
                        out_dir: Path, progress: bool = True, forward: Forward | None = None) -> dict[str, Any]:
    """MPII's test people (``annot/test.h5``), predicted as validation is, for the evaluation server.

    Writes into ``out_dir`` (always created, so the stage's declared output exists for every dataset):
    ``status.json``; and when the dataset is MPII with a ``test.h5``, ``test_preds.h5`` (authors' layout, one row
    per test.h5 row, plus its ``index``/``person``) and ``pred_keypoints_mpii.mat`` built from the annotation
    release after the person-order guard. ``forward``: the runtime, as for the validation split. Returns the status.
    """
    test_h5 = annot_dir / "test.h5"
    has_server = params.card().format == "mpii_h5"  # MPII's benchmark server takes this file
    if not has_server or not test_h5.is_file():
        reason = (f"dataset {params.dataset!r} has no test server" if not has_server
                  else f"{test_h5} is absent")
        status: dict[str, Any] = {"test_split": False, "reason": reason}
        write_json_atomic(out_dir / "status.json", status)
        return status
    release = read_release(annot_dir / RELEASE_DIR / RELEASE_NAME)  # before the work: a missing file stops early
    table = read_annotations(test_h5)
    for key in ("index", "person"):
        if key not in table.extra:
            raise SubmissionError(f"{test_h5}: no '{key}' column; the submission needs each row's annolist/annorect")
    dataset = create_dataset(data_dir, TEST_SPLIT, dataset_params(params, loaded), train=False)
    log.info("predicting %d MPII test people of %s for the evaluation server", len(dataset), data_dir)
    pred = predict(loaded, dataset, params, precision, progress, forward)
    rows = source_rows(data_dir, pred.rows, TEST_SPLIT)
    preds = np.full((len(table), pred.coords.shape[1], 2), np.nan)
    preds[rows] = pred.coords
    index, person = table.extra["index"].astype(np.int64), table.extra["person"].astype(np.int64)
    objpos = np.array([release.objpos(int(i), int(p)) for i, p in zip(index, person, strict=True)]).reshape(-1, 2) - 1.0
    correlation = check_order(objpos, preds[:, THORAX], str(test_h5))
    write_predictions(out_dir / TEST_PREDICTIONS_NAME, preds, {"index": index, "person": person})
    write_submission(out_dir / SUBMISSION_NAME, build_submission(release, index, person, preds))
    status = {"test_split": True, "people": len(table), "people_missing": int(len(table) - len(rows)),
              "order_check": correlation, "files": [TEST_PREDICTIONS_NAME, SUBMISSION_NAME],
              "release": str(release.source)}
    write_json_atomic(out_dir / "status.json", status)
    return status
