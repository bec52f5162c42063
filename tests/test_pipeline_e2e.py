"""The whole pipeline through ``dvc repro`` on a tiny synthetic configuration, in a fresh git + DVC repository.

This is the test that keeps a broken pipeline from landing: every stage runs as DVC runs it (its ``cmd`` in a
subprocess), a second ``dvc repro`` does nothing, and changing one variant's param reruns only that variant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from dvc_project import REPO, dvc, make_project, merge, run  # noqa: E402

TINY = {
    "synthetic": {"train_images": 10, "valid_images": 5, "workers": 1},
    "preprocess": {"workers": 1},
    "model": {"features": 16, "input_res": 64},
    "train": {"epochs": 1, "steps_per_epoch": None, "batch_size": 4, "val_batch_size": 8, "workers": 0, "log_every": 1,
              "optimizer": "adam", "lr": 1e-3, "precision": "fp32"},
    "mlflow": {"system_metrics": False, "sweep": "e2e"},
    "report": {"examples": 2},
    "sweep": ["hg_int", "hg_stacked_int"],
    "flows": {"champion_variant": "hg_stacked_int"},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("project")
    env = make_project(root, merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY))
    # `make demo`'s command: dvc repro, dvc metrics show, the champion contest, the summary
    done = run([sys.executable, "-m", "pipeline.demo"], root, env)
    (root / "demo.log").write_text(done.stdout + done.stderr)
    return root, env


def test_repro_produces_every_output(project):
    root, _ = project
    for variant in ("hg_int", "hg_stacked_int"):
        assert (root / "models" / variant / "seed-0" / "checkpoint.pt").is_file()
        metrics = json.loads((root / "models" / variant / "seed-0" / "eval" / "metrics.json").read_text())
        assert metrics["variant"] == variant and metrics["metric"] == "PCKh@0.5"
        assert len(metrics["stacks"]) == (1 if variant == "hg_int" else 2)
        assert (root / "models" / variant / "seed-0" / "eval" / "preds.h5").is_file()
    report = (root / "reports" / "results.md").read_text()
    assert "hg_stacked_int" in report and "97.7" in report  # our variants beside the paper's Head figure
    assert (root / "reports" / "figures" / "figure4.png").stat().st_size > 1000
    assert (root / "dvc.lock").is_file()


def test_the_demo_opens_with_the_machine_and_knows_what_is_left_to_train(project):
    from hourglass.config.params_file import load_params
    from hourglass.data.workers import available_cores
    from pipeline.demo import _trainings_to_run

    root, env = project
    first = (root / "demo.log").read_text().splitlines()[0]
    assert first.startswith("make demo on ") and "cores" in first and "trains cpu fp32" in first
    assert "No estimate: train.steps_per_epoch is null" in first  # TINY trains one pass over the data per epoch
    log = (root / "demo.log").read_text()
    if available_cores() >= 2:  # a CPU with 2 cores or more trains the two variants side by side, 1 thread each
        assert "+ python -m pipeline.sweep run --workers 2 --threads 1" in log
        for where in ("[hg_int seed 0, 1/2] epoch 1/1 ", "[hg_stacked_int seed 0, 2/2] epoch 1/1 "):
            assert where in log  # each training's epoch line, followed from its worker's log
        threads = json.loads((root / "models" / "hg_int" / "seed-0" / "metrics.json").read_text())
        assert threads["runtime"]["threads"] == 1, threads["runtime"]
    assert _trainings_to_run(load_params(root / "params.yaml"), root, env) == []


def test_metrics_show_lists_one_compact_file_that_fits_a_terminal(project):
    """`dvc metrics show` is reports/scores.json alone: variant -> evaluated Mean, under 200 characters wide."""
    root, env = project
    shown = json.loads(dvc(["metrics", "show", "--json"], root, env).stdout)
    files = {path for workspace in shown.values() for path in workspace.get("data", {})}
    assert files == {"reports/scores.json"}
    scores = json.loads((root / "reports" / "scores.json").read_text())
    for variant in TINY["sweep"]:
        evaluation = json.loads((root / "models" / variant / "seed-0" / "eval" / "metrics.json").read_text())
        assert scores[variant] == round(evaluation["final"]["Mean"], 2)
    table = dvc(["metrics", "show"], root, env).stdout
    assert max(len(line) for line in table.splitlines()) < 200, table


def test_one_plot_overlays_every_variants_validation_curve(project):
    root, env = project
    plots = json.loads(dvc(["plots", "show", "--json"], root, env).stdout)
    assert not plots.get("errors"), plots
    assert set(plots["data"]) == {"validation-curves"}
    values = plots["data"]["validation-curves"][0]["content"]["data"]["values"]
    assert {v["field"] for v in values} == set(TINY["sweep"])
    assert "dvc_plots/" in (REPO / ".gitignore").read_text()


def test_touching_a_file_reruns_exactly_the_stages_that_import_it(project):
    """Code deps are the import closures (tests/test_dvc_deps.py): metrics.py is imported by training, evaluation
    and the report, not by download or preprocessing; the benchmarks are imported by no stage."""
    root, env = project
    for name, expected in (("hourglass/metrics.py", {"train@hg_int-0", "train@hg_stacked_int-0", "evaluate@hg_int-0",
                                                      "evaluate@hg_stacked_int-0", "report"}),
                           ("hourglass/data/augment.py", {"preprocess", "train@hg_int-0", "train@hg_stacked_int-0",
                                                          "evaluate@hg_int-0", "evaluate@hg_stacked_int-0"}),
                           ("hourglass/bench/model.py", set())):
        path = root / name
        original = path.read_text()
        path.write_text(original + "\n# touched\n")
        try:
            changed = set(json.loads(dvc(["status", "--json"], root, env).stdout))
        finally:
            path.write_text(original)
        assert changed == expected, name
    assert json.loads(dvc(["status", "--json"], root, env).stdout) == {}


def test_second_repro_does_nothing_and_one_variant_change_reruns_only_it(project):
    root, env = project
    status = json.loads(dvc(["status", "--json"], root, env).stdout)
    assert status == {}
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["variants"]["hg_int"]["model"]["modules"] = 1
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = set(json.loads(dvc(["status", "--json"], root, env).stdout))
    # only hg_int's stages: its training, and its evaluation, which reads the variant's targets and train overrides;
    # the report follows once their outputs change
    assert changed == {"train@hg_int-0", "evaluate@hg_int-0"}


def test_experiments_and_metrics_diff(project):
    """``dvc exp run -S`` changes one param and reruns only what depends on it; ``dvc exp show`` lists the
    experiment with that param; ``dvc metrics diff`` compares its metrics with the committed ones."""
    root, env = project
    run(["git", "checkout", "--", "params.yaml"], root, env)  # undo the previous test's edit
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "pipeline outputs"], root, env)
    done = dvc(["exp", "run", "-n", "hgint-m1", "-S", "train.variants.hg_int.model.modules=1"], root, env)
    ran = done.stdout + done.stderr
    assert "Running stage 'train@hg_int-0'" in ran and "Running stage 'report'" in ran
    assert "Running stage 'train@hg_stacked_int-0'" not in ran and "Running stage 'preprocess'" not in ran
    shown = json.loads(dvc(["exp", "show", "--json"], root, env).stdout)
    names = {exp["name"] for entry in shown for exp in (entry.get("experiments") or [])
             for exp in (exp.get("revs") or [exp])}
    assert "hgint-m1" in names, shown
    diff = json.loads(dvc(["metrics", "diff", "--json"], root, env).stdout)["reports/scores.json"]
    assert "hg_int" in diff and "hg_stacked_int" not in diff, diff  # only the changed variant's score moved


def test_demo_summary_lists_every_variant_beside_the_mean_pose(project):
    from hourglass.report.scoreboard import summary_table

    root, _ = project
    table = summary_table(root / "reports" / "summary.json").splitlines()
    assert [line.split()[0] for line in table[1:-1]] == sorted(TINY["sweep"])
    assert table[-1].startswith("mean-pose baseline")


def test_demo_ends_with_the_champion_alias_in_place(project):
    """README: `models:/hourglass-synthetic@champion` (one registered model per dataset card) works right after
    `make demo`."""
    from mlflow.tracking import MlflowClient

    from hourglass.tracking.champion_log import read_records

    root, env = project
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    version = client.get_model_version_by_alias("hourglass-synthetic", "champion")
    record = json.loads((root / "models" / "hg_stacked_int" / "seed-0" / "mlflow.json").read_text())
    assert record["registered_model"] == "hourglass-synthetic"
    assert str(version.version) == record["version"] and version.tags["variant"] == "hg_stacked_int"
    assert version.tags["seed"] == "0"
    (champion,) = read_records(root)
    assert champion["kind"] == "contest" and champion["metric"] == "eval/pckh/Mean"
    assert champion["promoted"] and champion["seed"] == 0
    evaluation = json.loads((root / "models" / "hg_stacked_int" / "seed-0" / "eval" / "metrics.json").read_text())
    assert champion["split_digest"] == evaluation["split_digest"]
    assert champion["candidate_score"] == pytest.approx(evaluation["final"]["Mean"])
    assert "hourglass-synthetic@champion: promoted" in (root / "demo.log").read_text()
    run_ = client.get_run(record["run_id"])
    assert "download.root" not in " ".join(run_.data.params)  # params: the run's own config, not every setting
    assert run_.data.params["model.stacks"] == "2" and "train.variants" not in " ".join(run_.data.params)


def test_sweep_parent_run_carries_the_summary_and_ends_after_its_children(project):
    from mlflow.tracking import MlflowClient

    root, env = project
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("hourglass")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    parent = client.search_runs([experiment.experiment_id], filter_string="tags.`hourglass.sweep` = 'e2e'")[0]
    scores = json.loads((root / "reports" / "scores.json").read_text())
    for variant in TINY["sweep"]:
        assert parent.data.metrics[f"{variant}/eval_mean"] == pytest.approx(scores[variant])
    assert parent.data.tags["report.best_variant"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"results.md", "summary.json", "figures"} <= artifacts
    children = client.search_runs([experiment.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert {child.data.tags["variant"] for child in children} == set(TINY["sweep"])  # (+ the experiment's)
    assert {child.info.run_name for child in children} == {f"{v}/seed-0" for v in TINY["sweep"]}
    assert parent.info.end_time >= max(child.info.end_time for child in children)
