"""Training seeds as dvc.yaml's matrix axis, through ``dvc repro`` in a fresh git + DVC repository: two variants x
two seeds on a tiny synthetic configuration (MLflow off: the seeds' bookkeeping is what is tested here).

Checks the stage names DVC generates, the ``models/<variant>/seed-<n>/`` layout, that the report's mean and sd are
those of the per-seed ``eval/metrics.json``, and that adding a seed to ``seeds`` runs only the new seed's stages.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from dvc_project import REPO, dvc, make_project, merge  # noqa: E402

SWEEP = ["hg", "hg_stacked_int"]
SEEDS = [0, 1]
TINY = {
    "synthetic": {"train_images": 8, "valid_images": 5, "workers": 1},
    "preprocess": {"workers": 1},
    "model": {"features": 16, "input_res": 64},
    "train": {"epochs": 2, "steps_per_epoch": 2, "batch_size": 4, "val_batch_size": 8, "workers": 0,
              "log_every": 1, "optimizer": "adam", "lr": 1e-3, "precision": "fp32", "warmup_steps": 0},
    "mlflow": {"enabled": False, "system_metrics": False, "sweep": None},
    "report": {"examples": 2},
    "sweep": SWEEP,
    "seeds": SEEDS,
    "flows": {"champion_variant": "hg_stacked_int"},
}
RUN_FILES = ("checkpoint.pt", "config.yaml", "mlflow.json", "metrics.json", "epochs.csv", "eval/preds.h5",
             "eval/metrics.json", "eval/test/status.json")


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict[str, str], set[str]]:
    root = tmp_path_factory.mktemp("seeds-project")
    env = make_project(root, merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY))
    done = dvc(["repro"], root, env)
    return root, env, _ran(done.stdout + done.stderr)


def test_stage_names_are_variant_dash_seed(project):
    root, env, ran = project
    stages = dvc(["stage", "list", "--name-only"], root, env).stdout.split()
    matrix = [f"{stage}@{v}-{s}" for stage in ("train", "evaluate") for v in SWEEP for s in SEEDS]
    assert stages == ["download", "preprocess", *matrix, "report"]
    assert ran == set(stages)


def test_every_run_has_its_seed_directory(project):
    root, _, _ = project
    weights = {}
    for variant in SWEEP:
        assert sorted(p.name for p in (root / "models" / variant).iterdir()) == [f"seed-{s}" for s in SEEDS]
        for seed in SEEDS:
            run = root / "models" / variant / f"seed-{seed}"
            for name in RUN_FILES:
                assert (run / name).is_file(), run / name
            state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
            assert state["variant"] == variant and state["seed"] == seed and state["config"]["seed"] == seed
            assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == seed
            evaluation = json.loads((run / "eval" / "metrics.json").read_text())
            assert evaluation["variant"] == variant and evaluation["seed"] == seed
            weights[variant, seed] = state["model"]
        first, second = (weights[variant, s] for s in SEEDS)
        assert any(not torch.equal(first[k], second[k]) for k in first), f"{variant}: the seeds trained alike"


def test_report_mean_and_sd_are_those_of_the_per_seed_evaluations(project):
    root, _, _ = project
    summary = json.loads((root / "reports" / "summary.json").read_text())
    scores = json.loads((root / "reports" / "scores.json").read_text())
    text = (root / "reports" / "results.md").read_text()
    assert summary["seeds"] == SEEDS and set(scores) == set(SWEEP)
    with open(root / "reports" / "curves.csv", newline="") as fh:
        curves = list(csv.DictReader(fh))
    for variant in SWEEP:
        per_seed = [json.loads((root / "models" / variant / f"seed-{s}" / "eval" / "metrics.json").read_text())
                    for s in SEEDS]
        means = [e["final"]["Mean"] for e in per_seed]
        entry = summary["variants"][variant]
        assert entry["seeds"] == SEEDS
        assert entry["across_seeds"]["Mean"] == pytest.approx(
            {"mean": np.mean(means), "sd": np.std(means, ddof=1), "n": 2})
        assert entry["final"]["Mean"] == pytest.approx(np.mean(means))
        assert scores[variant] == round(float(np.mean(means)), 2)
        row = next(line for line in text.splitlines() if line.startswith(f"| **{variant}** |"))
        assert f"| {np.mean(means):.1f} ± {np.std(means, ddof=1):.1f} (2 seeds) |" in row
        for row in curves:  # the plot's column: the mean curve over the seeds' epochs.csv
            step = float(row["step"])
            values = []
            for seed in SEEDS:
                with open(root / "models" / variant / f"seed-{seed}" / "epochs.csv", newline="") as fh:
                    values += [float(r["val/figure4"]) for r in csv.DictReader(fh) if float(r["step"]) == step]
            assert float(row[variant]) == pytest.approx(np.mean(values), abs=1e-4)
    assert len(curves) == TINY["train"]["epochs"]
    assert "not distinguishable on one seed" not in text


def test_adding_a_seed_runs_only_the_new_seeds_stages(project):
    root, env, _ = project
    assert json.loads(dvc(["status", "--json"], root, env).stdout) == {}
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["seeds"] = [*SEEDS, 2]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    new = {f"{stage}@{v}-2" for stage in ("train", "evaluate") for v in SWEEP}
    assert set(json.loads(dvc(["status", "--json"], root, env).stdout)) == new | {"report"}
    done = dvc(["repro"], root, env)
    assert _ran(done.stdout + done.stderr) == new | {"report"}
    assert json.loads(dvc(["status", "--json"], root, env).stdout) == {}
    summary = json.loads((root / "reports" / "summary.json").read_text())
    assert all(summary["variants"][v]["seeds"] == [0, 1, 2] for v in SWEEP)
    assert all(summary["variants"][v]["across_seeds"]["Mean"]["n"] == 3 for v in SWEEP)
