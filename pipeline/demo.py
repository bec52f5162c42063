"""``make demo``: the whole pipeline on the embedded synthetic dataset, end to end, with one command.

Opens with what this machine can do (the CPU's vector extensions, whether bf16 is native, the cores) and the expected
duration from a few measured training steps (:mod:`hourglass.bench.demo_probe`). Runs ``dvc repro`` (generate ->
preprocess -> train@<variant>-<seed> -> evaluate@<variant>-<seed> -> report) with the project's params.yaml, then
prints ``dvc metrics show`` and where every output landed. A second run does nothing: DVC sees that no dependency
changed.
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
from hourglass.report.scoreboard import summary_table
from pipeline import stage

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
    return parser


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
    if args.probe:
        params = load_params(repo / "params.yaml")
        print(estimate(params, _trainings_to_run(params, repo, env)).first_line(), flush=True)
    code = _run([*dvc, "repro"], repo, env)
    if code:
        raise DemoFailed(f"dvc repro failed with exit code {code}; the stage's message is above")
    _run([*dvc, "metrics", "show"], repo, env)
    # The champion contest, so `models:/<name>@champion` (README) resolves right after the demo.
    if _run([sys.executable, "-m", "pipeline.flows", "promote", "--repo", str(repo)], repo, env):
        print("warning: no champion alias was set (the message is above); the pipeline's outputs are complete",
              file=sys.stderr)
    return (f"\ndvc repro took {(time.monotonic() - started) / 60:.1f} min. Validation scores of the evaluate stage "
            "(flip test; 95 % intervals and paired differences in reports/results.md):\n"
            f"{summary_table(repo / 'reports' / 'summary.json')}\n{OUTPUTS}")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; exit codes as :mod:`pipeline.stage` says."""
    return stage.run(build_parser(), demo, argv, failures=(DemoFailed,))


if __name__ == "__main__":
    raise SystemExit(main())
