"""The retraining flow's parts that need no Prefect server: the stage plan (pipeline.dvc_stages) and the records
the champion decision reads (hourglass.tracking.champion)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from hourglass.tracking.candidate import ChampionError, file_metric, read_training_record
from pipeline.dvc_stages import FlowSetupError, plan_stages


def test_plan_maps_stages_and_rejects_unknown_champion() -> None:
    stages = ["download", "preprocess", "train@hg8-0", "train@hg8-1", "train@hg-2-0", "evaluate@hg8-0",
              "evaluate@hg8-1", "report", "x"]
    plan = plan_stages(stages, "synthetic", "hg8")  # download generates the synthetic set
    assert plan.stages() == ["download", "preprocess", "train@hg8-0", "evaluate@hg8-0", "train@hg8-1",
                             "evaluate@hg8-1", "train@hg-2-0", "report"]
    assert plan.variants == ("hg8", "hg-2") and plan.seeds_of("hg8") == (0, 1) and plan.seeds_of("hg-2") == (0,)
    assert plan.unplanned(stages) == ["x"]
    assert plan_stages(stages, "flic", "hg-2").fetch == "download"
    with pytest.raises(FlowSetupError, match="trains only hg8, hg-2"):
        plan_stages(stages, "mpii", "hg4")
    with pytest.raises(FlowSetupError, match="no 'preprocess' stage"):
        plan_stages(["download", "train@a-0"], "mpii", "a")
    with pytest.raises(FlowSetupError, match=r"train@a is not train@<variant>-<seed>"):
        plan_stages(["download", "preprocess", "train@a"], "mpii", "a")
    # released weights (params imports): converted and scored after the trained runs, before the report
    with_imports = [*stages[:-2], "import@port_8hg", "evaluate_import@port_8hg", "import@raw", "report"]
    plan = plan_stages(with_imports, "mpii", "hg8")
    assert plan.stages()[-5:] == ["train@hg-2-0", "import@port_8hg", "evaluate_import@port_8hg", "import@raw",
                                  "report"]
    assert plan.unplanned(with_imports) == []


def test_training_record_errors_name_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "mlflow.json"
    with pytest.raises(ChampionError, match="not found"):
        read_training_record(path)
    path.write_text(json.dumps({"run_id": "r", "model_uri": "m", "registered_model": "hg"}))
    with pytest.raises(ChampionError, match=r"mlflow.json: missing or empty key\(s\) version"):
        read_training_record(path)


def test_file_metric_reads_flat_nested_and_null(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"val/pckh/Mean": 0.5, "val": {"pck": 0.25}, "broken": None, "name": "x"}))
    assert file_metric(path, "val/pckh/Mean") == 0.5 and file_metric(path, "val.pck") == 0.25
    assert math.isnan(file_metric(path, "broken")) and file_metric(path, "absent") is None
    with pytest.raises(ChampionError, match="'name' is 'x', not a number"):
        file_metric(path, "name")
