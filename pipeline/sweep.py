"""The sweep's trainings at the same time, N at a time, with DVC's bookkeeping exact afterwards.

    python -m pipeline.sweep run --workers 4 [--gpus-per-task 2]     # a local Dask cluster on this machine
    python -m pipeline.sweep run --cluster slurm.yaml                # Slurm jobs through dask-jobqueue
    python -m pipeline.sweep job-script --cluster slurm.yaml         # the job script Slurm would get

``run``: ``dvc repro`` of the stages upstream of training (download, preprocess, imports); then every
``train@<variant>-<seed>`` stage that ``dvc status`` says is out of date runs its own dvc.yaml command on a Dask
worker (failed or killed ones again, resuming from their checkpoints); each finished one is recorded in the main
process with ``dvc commit --force``, one at a time; then ``dvc repro`` runs the evaluations and the report. After it
``dvc status`` is clean and a second ``dvc repro`` does nothing, as after a serial run. One line per stage says how
it ended; a stage that failed every attempt makes the command exit 1 (the others are trained and committed, no
evaluation runs).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from hourglass.config.params_file import load_params
from hourglass.data.workers import available_cores
from hourglass.sweep.cluster import ClusterFile, load_cluster_config, local_cluster, slurm_cluster
from hourglass.sweep.plan import split_cores
from hourglass.sweep.progress import EpochLines
from hourglass.sweep.runner import SweepResult, run_sweep
from hourglass.sweep.tasks import StageCommand
from hourglass.tracking.runs import PARENT_RUN_ENV
from hourglass.tracking.store import default_tracking_uri
from pipeline import stage as stage_cli
from pipeline.dvc_stages import (
    DvcLockTimeout,
    FlowSetupError,
    StageFailed,
    changed_stages,
    commit_stage,
    list_stages,
    run_dvc_repro,
    run_dvc_repro_all,
    stage_commands,
)

LOG_DIR = Path(".dvc") / "tmp" / "sweep"  # per-stage logs; .dvc/tmp is ignored by git and DVC
log = logging.getLogger("pipeline.sweep")


class SweepFailed(RuntimeError):
    """Some training stages failed every attempt; the message names them (the others were trained and committed)."""


def is_upstream(stage: str) -> bool:
    """Stages a training may need before it starts: the data and released weights (``train.init_from``)."""
    return stage in ("download", "preprocess") or stage.startswith("import@")


def _mlflow_env(root: Path, uri: str | None) -> dict[str, str]:
    """MLflow for every training: one store, its experiment and the sweep's parent run made here, before the
    fan-out, so concurrent runs never race to create them (SQLite migrations, duplicate parents)."""
    config = load_params(root / "params.yaml")
    if not config.mlflow.enabled:
        return {}
    from mlflow import MlflowClient

    from hourglass.tracking.runs import ensure_parent_run
    from hourglass.tracking.store import ensure_experiment

    uri = uri or default_tracking_uri(root)
    env = {"MLFLOW_TRACKING_URI": uri}
    if config.mlflow.sweep:
        env[PARENT_RUN_ENV] = ensure_parent_run(config.mlflow.experiment, config.mlflow.sweep, uri)
    else:
        ensure_experiment(MlflowClient(tracking_uri=uri), config.mlflow.experiment)
    return env


def task_env(root: Path, threads: int, mlflow_uri: str | None = None) -> dict[str, str]:
    """What each training's environment adds to its worker's: this interpreter first on PATH (the stage's
    ``python`` is this venv's, as under ``dvc repro``), its share of the cores, and the MLflow store."""
    env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(threads))}
    return {**env, **_mlflow_env(root, mlflow_uri)}


def _check_gpus(workers: int, gpus_per_task: int) -> None:
    if gpus_per_task == 0:
        return
    import torch

    have = torch.cuda.device_count()
    if have < workers * gpus_per_task:
        raise stage_cli.UsageError(f"--workers {workers} x --gpus-per-task {gpus_per_task} needs "
                                   f"{workers * gpus_per_task} GPUs; this machine has {have}")


def raise_failures(result: SweepResult) -> None:
    """SweepFailed naming the stages that failed every attempt, if any."""
    if result.failed:
        raise SweepFailed(f"{len(result.failed)} of {len(result.attempts)} training stage(s) failed: "
                          f"{', '.join(result.failed)}; the others are trained and in dvc.lock. Run the sweep again "
                          "to retry them (they resume from their checkpoints)")


def train_in_parallel(root: Path, workers: int, *, gpus_per_task: int = 0, retries: int = 2, lock_wait: float = 0.0,
                      cluster: ClusterFile | None = None, threads: int | None = None, follow: bool = False,
                      logger: logging.Logger | logging.LoggerAdapter = log) -> SweepResult:
    """Train every out-of-date ``train@`` stage of ``root`` on ``workers`` local workers (or ``cluster``'s Slurm
    jobs), committing each as it finishes. Upstream stages must be up to date. Returns every attempt; the DVC
    commands' output goes to ``logger`` (the flow's task log). ``threads``: each local training's intra-op threads
    (None: the cores split between the workers); ``follow``: pass each training's per-epoch lines to ``logger`` as
    they are written."""
    from distributed import Client

    trains = [name for name in list_stages(root) if name.startswith("train@")]
    stale = changed_stages(trains, root, logger, lock_wait)
    logger.info("%d of %d training stage(s) to run: %s", len(stale), len(trains), ", ".join(stale) or "none")
    if not stale:
        return SweepResult()
    commands = [StageCommand(name, cmd) for name, cmd in stage_commands(root, stale).items()]
    if cluster is not None and Path(cluster.workdir).resolve() != root.resolve():
        raise stage_cli.UsageError(f"the cluster file's workdir {cluster.workdir!r} is not this checkout ({root}): "
                                   "run the sweep in the shared checkout the jobs use")
    if cluster is None:
        _check_gpus(workers, gpus_per_task)
    if cluster is not None:
        threads = cluster.slurm.cores
    elif threads is None:
        threads = split_cores(workers, available_cores()).threads
    env = task_env(root, threads, cluster.mlflow_tracking_uri if cluster else None)
    with ExitStack() as stack:
        if cluster is None:
            dask_cluster = stack.enter_context(local_cluster(workers))
        else:
            dask_cluster = stack.enter_context(slurm_cluster(cluster))
            dask_cluster.scale(jobs=min(cluster.slurm.jobs, len(commands)))
        client = stack.enter_context(Client(dask_cluster))
        if follow:
            stack.enter_context(EpochLines(root / LOG_DIR, [c.stage for c in commands], logger.info))
        return run_sweep(client, commands, root, env, root / LOG_DIR,
                         on_done=lambda name: commit_stage(name, root, logger, lock_wait), retries=retries,
                         gpus_per_task=0 if cluster else gpus_per_task,
                         slots=cluster.slurm.jobs if cluster else workers)


def sweep(root: Path, workers: int, *, gpus_per_task: int = 0, retries: int = 2, lock_wait: float = 0.0,
          cluster: ClusterFile | None = None, evaluate: bool = True, threads: int | None = None) -> str:
    """``run``: upstream stages, the trainings in parallel (their per-epoch lines followed into the log), then ``dvc
    repro``; returns the summary. ``threads``: each training's (None: the cores split between the workers)."""
    load_params(root / "params.yaml")  # a bad params file fails here, before any cluster starts
    for name in (s for s in list_stages(root) if is_upstream(s)):
        run_dvc_repro(name, root, log, lock_wait)
    result = train_in_parallel(root, workers, gpus_per_task=gpus_per_task, retries=retries, lock_wait=lock_wait,
                               cluster=cluster, threads=threads, follow=True)
    for line in result.lines():
        print(line, flush=True)
    raise_failures(result)
    if not evaluate:
        return f"sweep: {len(result.done)} training stage(s) trained and committed; evaluation left to `dvc repro`"
    ran = run_dvc_repro_all(root, log, lock_wait)
    return (f"sweep: {len(result.done)} training stage(s) trained in parallel and committed; dvc repro ran "
            f"{', '.join(ran) or 'nothing'}")


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,job-script}")
    run = commands.add_parser("run", help="train the sweep's out-of-date stages in parallel, then dvc repro")
    run.add_argument("--workers", type=positive_int, default=2,
                     help="trainings at a time on this machine: Dask worker processes (default: %(default)s; with "
                          "--cluster the file's slurm.jobs instead)")
    run.add_argument("--threads", type=positive_int, default=None,
                     help="intra-op threads per training on this machine (default: the cores split between the "
                          "workers, at least 1; OMP_NUM_THREADS, when set, wins)")
    run.add_argument("--gpus-per-task", type=_non_negative, default=0,
                     help="GPUs per training on this machine: worker i gets CUDA_VISIBLE_DEVICES i*K..i*K+K-1 "
                          "(default: %(default)s, the stage's own device choice)")
    run.add_argument("--retries", type=_non_negative, default=2,
                     help="times a failed or killed training is run again, resuming from its checkpoint "
                          "(default: %(default)s)")
    run.add_argument("--cluster", type=Path, default=None,
                     help="a cluster file (slurm.yaml): submit the trainings as Slurm jobs through dask-jobqueue")
    run.add_argument("--lock-wait", type=float, default=60.0,
                     help="seconds a DVC command waits for another process's DVC lock (default: %(default)s)")
    run.add_argument("--no-evaluate", action="store_true",
                     help="stop after the trainings are committed (no final dvc repro)")
    script = commands.add_parser("job-script", help="print the Slurm job script the cluster file gives (no submit)")
    script.add_argument("--cluster", type=Path, required=True, help="the cluster file (slurm.yaml)")
    run.add_argument("--repo", type=Path, default=Path("."), help="the DVC repository (default: .)")
    return parser


def job_script(path: Path) -> str:
    """The job script dask-jobqueue would submit for the cluster file at ``path`` (the scheduler starts here,
    nothing is submitted)."""
    with slurm_cluster(load_cluster_config(path)) as cluster:
        return cluster.job_script()


def quiet_dask() -> None:
    """Only Dask's warnings and errors on the terminal, not its scheduler's and nannies' start-up and shut-down
    lines. Imports distributed first: its import configures its loggers (``distributed: info``) and would undo a
    level set before."""
    import distributed  # noqa: F401

    logging.getLogger("distributed").setLevel(logging.WARNING)


def run_command(args: argparse.Namespace) -> str:
    quiet_dask()
    if args.command == "job-script":
        print(job_script(args.cluster), end="")
        return ""
    root = args.repo.resolve()
    cluster = load_cluster_config(args.cluster) if args.cluster else None
    return sweep(root, args.workers, gpus_per_task=args.gpus_per_task, retries=args.retries,
                 lock_wait=args.lock_wait, cluster=cluster, evaluate=not args.no_evaluate, threads=args.threads)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; exit codes as :mod:`pipeline.stage` says."""
    return stage_cli.run(build_parser(), run_command, argv,
                         failures=(DvcLockTimeout, FlowSetupError, StageFailed, SweepFailed))


if __name__ == "__main__":
    sys.exit(main())
