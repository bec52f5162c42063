"""``make demo``: the whole pipeline on the embedded synthetic dataset, end to end, with one command.

Opens with what this machine can do (the CPU's vector extensions, whether bf16 is native, the cores), how the
trainings will run and the expected duration from a few measured training steps (:mod:`hourglass.bench.demo_probe`).
Runs ``dvc repro`` (generate -> preprocess -> train@<variant>-<seed> -> evaluate@<variant>-<seed> -> report) with the
project's params.yaml, then prints ``dvc metrics show`` and where every output landed. A second run does nothing: DVC
sees that no dependency changed.

On a CPU with several trainings to run, the trainings run side by side with a thread or so each
(:mod:`hourglass.sweep.plan`: on 2 cores three at a time; the demo's trainings took 21.9 min that way against 26.7
one after another, native bf16, NOTES.md session 21), through
``python -m pipeline.sweep`` (Dask workers, each finished training recorded with ``dvc commit``), and ``dvc repro``
then runs the evaluations and the report; DVC's bookkeeping ends as after a serial ``dvc repro``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from hourglass.bench.demo_probe import estimate
from hourglass.config import ParamsConfig
from hourglass.config.params_file import load_params
from hourglass.data.workers import available_cores
from hourglass.precision import select_device
from hourglass.report.scoreboard import summary_table
from hourglass.sweep.plan import TrainingPlan, available_memory, plan_trainings, split_cores
from pipeline import stage
from pipeline.dvc_stages import DvcLockTimeout, StageFailed
from pipeline.sweep import SweepFailed, positive_int, quiet_dask, sweep

OUTPUTS = """Outputs:
  data/raw/<dataset>/              images + annotation h5 (generated or downloaded)
  data/processed/<dataset>/        HDF5 crop shards + annotations.parquet
  models/<variant>/seed-<n>/       checkpoint.pt, metrics.json, epochs.csv, config.yaml, mlflow.json
  models/<variant>/seed-<n>/eval/  preds.h5 (authors' layout) + metrics.json (per joint, per stack)
  reports/results.md               tables beside the paper's numbers, Figures 4 and 5, examples
  mlflow.db, mlruns/               MLflow runs and models: .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db
"""


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> int:
    print("+", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=cwd, env=env)


class DemoFailed(RuntimeError):
    """``dvc repro`` exited non-zero; the failing stage printed its reason above."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path.cwd(),
                        help="project directory holding dvc.yaml and params.yaml (default: the current directory)")
    parser.add_argument("--no-probe", dest="probe", action="store_false",
                        help="skip the first line's measured estimate (a few seconds of training steps)")
    parser.add_argument("--parallel", type=positive_int, default=None, metavar="N",
                        help="trainings at a time, the cores split between them (default: on a CPU, 1.5x the "
                             "cores, one thread each; on a GPU 1); 1 runs plain `dvc repro`")
    return parser


def training_plan(requested: int | None, trainings: int) -> TrainingPlan:
    """``--parallel``'s plan: the given count (the cores split evenly, at least one thread each) or, without it,
    :func:`~hourglass.sweep.plan.plan_trainings` for this machine."""
    cores = available_cores()
    if requested is None:
        return plan_trainings(trainings, select_device().type == "cpu", cores, available_memory())
    return split_cores(min(requested, trainings), cores)


def _trainings_to_run(params: ParamsConfig, repo: Path, env: dict[str, str]) -> list[str]:
    """The variant of every ``train@<variant>-<seed>`` stage ``dvc status`` calls changed (each sweep variant once
    per seed when DVC cannot tell, e.g. before the first run of a fresh clone)."""
    everything = [v for v in params.sweep for _ in params.seeds]
    done = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=repo, env=env,
                          capture_output=True, text=True)
    try:
        stale = json.loads(done.stdout) if done.returncode == 0 else None
    except ValueError:
        stale = None
    if not isinstance(stale, dict):
        return everything
    found = [re.fullmatch(r"train@(.+)-(\d+)", name) for name in stale]
    return [m.group(1) for m in found if m is not None and m.group(1) in params.sweep]


def demo(args: argparse.Namespace) -> str:
    """Reproduce the pipeline, set the champion alias; returns the scores and where the outputs are."""
    repo = args.repo.resolve()
    if not (repo / "dvc.yaml").is_file():
        raise stage.UsageError(f"{repo}/dvc.yaml not found; run from the project directory or pass --repo")
    if not (repo / ".git").exists():
        raise stage.UsageError(f"{repo} is not a git checkout; DVC experiments and metrics diffs need git "
                               "(clone the repository instead of copying it)")
    env = dict(os.environ)
    # Stage commands say `python -m ...`: make that the interpreter running this demo (the project's venv).
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("DVC_NO_ANALYTICS", "1")
    dvc = [sys.executable, "-m", "dvc"]
    started = time.monotonic()
    params = load_params(repo / "params.yaml")
    trainings = _trainings_to_run(params, repo, env)
    plan = training_plan(args.parallel, len(trainings))
    if args.probe:
        print(estimate(params, trainings, plan=plan).first_line(), flush=True)
    if plan.parallel:
        quiet_dask()
        print(f"+ python -m pipeline.sweep run --workers {plan.workers} --threads {plan.threads}", flush=True)
        print(sweep(repo, plan.workers, threads=plan.threads, lock_wait=60.0), flush=True)
    else:
        code = _run([*dvc, "repro"], repo, env)
        if code:
            raise DemoFailed(f"dvc repro failed with exit code {code}; the stage's message is above")
    _run([*dvc, "metrics", "show"], repo, env)
    # The champion contest, so `models:/<name>@champion` (README) resolves right after the demo.
    if _run([sys.executable, "-m", "pipeline.flows", "promote", "--repo", str(repo)], repo, env):
        print("warning: no champion alias was set (the message is above); the pipeline's outputs are complete",
              file=sys.stderr)
    return (f"\nThe pipeline took {(time.monotonic() - started) / 60:.1f} min. Validation scores of the evaluate stage "
            "(flip test; 95 % intervals and paired differences in reports/results.md):\n"
            f"{summary_table(repo / 'reports' / 'summary.json')}\n{OUTPUTS}")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; exit codes as :mod:`pipeline.stage` says."""
    return stage.run(build_parser(), demo, argv, failures=(DemoFailed, DvcLockTimeout, StageFailed, SweepFailed))


if __name__ == "__main__":
    raise SystemExit(main())
