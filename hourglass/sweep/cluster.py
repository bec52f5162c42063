"""Where the sweep's workers come from: a local Dask cluster (one process per concurrent training) or Slurm jobs
through dask-jobqueue, configured by a small YAML file (``slurm.yaml``).

The cluster file is not params.yaml: it says how this site runs the sweep (partition, memory, walltime, the shared
checkout, the tracking server), not what is trained, so DVC neither tracks it nor reruns anything when it changes.
It is validated like params.yaml: an unknown key or a bad value is an error naming the file and the key.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hourglass.config.params_file import ConfigError
from hourglass.sweep.runner import RESOURCE


class ClusterConfigError(ConfigError):
    """The cluster file is missing, unreadable or invalid; the message names the file and every bad key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlurmConfig(_Strict):
    """One Slurm job per Dask worker, one training per worker at a time (dask_jobqueue.SLURMCluster's arguments)."""

    queue: str | None = Field(min_length=1)  # the partition (#SBATCH -p); null: the site's default
    account: str | None = Field(min_length=1)  # #SBATCH -A; null: none
    cores: int = Field(ge=1)  # CPU cores per job; the training gets them (OMP_NUM_THREADS, loader workers)
    memory: str = Field(pattern=r"^\d+(\.\d+)?\s*([KMGT]i?B|B)$")  # per job, e.g. 64GB or 500GiB
    gpus: int = Field(ge=0)  # GPUs per job, requested as --gres=gpu:N; Slurm sets CUDA_VISIBLE_DEVICES
    walltime: str = Field(pattern=r"^(\d+-)?\d{1,3}:\d{2}:\d{2}$")  # per job: [D-]HH:MM:SS
    jobs: int = Field(ge=1)  # at most this many jobs, hence trainings, at a time
    job_extra: list[str]  # more #SBATCH options, e.g. ["--constraint=a100", "--qos=long"]
    prologue: list[str]  # shell lines before the worker starts: modules, the venv
    log_directory: str | None  # the jobs' stdout/stderr files; null: the submission directory
    interface: str | None = Field(min_length=1)  # network interface the scheduler and workers talk over (ib0)
    python: str | None = Field(min_length=1)  # the interpreter on the nodes; null: this one

    @field_validator("job_extra")
    @classmethod
    def _options(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.startswith("-"):
                raise ValueError(f"{item!r} is not an sbatch option (they start with '-', e.g. --qos=long)")
        return value


class ClusterFile(_Strict):
    """The cluster file: the Slurm jobs, the checkout they run in and the MLflow server they all log to."""

    slurm: SlurmConfig
    # The project checkout on a filesystem every node mounts at this same path: the jobs read the preprocessed data
    # and write models/<variant>/seed-<n>/ there, and the sweep records them with `dvc commit` in it.
    workdir: str = Field(min_length=1)
    # One tracking server for every job (SQLite on a shared filesystem does not take writers from many nodes).
    mlflow_tracking_uri: str | None = Field(pattern=r"^https?://\S+$")

    @field_validator("workdir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not Path(value).is_absolute():
            raise ValueError(f"{value!r} is not an absolute path (the same path on every node)")
        return value


def _format(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: {len(err.errors())} invalid value(s)"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<top level>"
        if e["type"] == "missing":
            lines.append(f"  {key}: missing; write every key (null where it does not apply: see slurm.yaml)")
            continue
        got = f" (got {e['input']!r})" if not isinstance(e["input"], dict) else ""
        lines.append(f"  {key}: {e['msg']}{got}")
    return "\n".join(lines)


def load_cluster_config(path: str | Path) -> ClusterFile:
    """Read and validate the cluster file; ClusterConfigError names the file and each bad key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClusterConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ClusterConfigError(f"{path}: not valid YAML: {err}") from None
    try:
        return ClusterFile.model_validate(raw if raw is not None else {})
    except ValidationError as err:
        raise ClusterConfigError(_format(path, err)) from None


def slurm_cluster(config: ClusterFile) -> Any:
    """A dask_jobqueue.SLURMCluster for ``config`` (no job submitted until it is scaled). Each job is one worker
    process holding the ``train`` resource once, so it trains one stage at a time."""
    from dask_jobqueue import SLURMCluster

    slurm = config.slurm
    extra = [*([f"--gres=gpu:{slurm.gpus}"] if slurm.gpus else []), *slurm.job_extra]
    return SLURMCluster(
        queue=slurm.queue, account=slurm.account, cores=slurm.cores, processes=1, memory=slurm.memory,
        walltime=slurm.walltime, job_extra_directives=extra, job_script_prologue=[f"cd {config.workdir}",
                                                                                  *slurm.prologue],
        log_directory=slurm.log_directory, interface=slurm.interface, python=slurm.python or sys.executable,
        worker_extra_args=["--resources", f"{RESOURCE}=1"], job_name="hourglass-sweep", silence_logs="error",
    )


# A local worker only waits for its training's process: Dask's statistical profiler, its 0.5-s system monitor and its
# 20-ms event-loop tick cost three idle workers and the scheduler 14.1 % of a core on a 2-core AMD EPYC, 1.5 % with
# these (20 s of an idle cluster, session 21): CPU the trainings beside them get back.
IDLE_WORKERS = {"distributed.admin.system-monitor.interval": "10s", "distributed.worker.memory.monitor-interval": "10s",
                "distributed.admin.tick.interval": "1s", "distributed.worker.profile.enabled": False}


@contextmanager
def local_cluster(workers: int) -> Iterator[Any]:
    """A Dask LocalCluster of ``workers`` processes named 0..N-1 (the slot that picks a worker's GPUs), one thread
    each, no memory limit: the training is a child process the worker only waits for.

    Dask's nannies live in this process and write their ``pre-spawn-environ`` into its environment before they
    start a worker (``OMP_NUM_THREADS=1``, ``MALLOC_TRIM_THRESHOLD_``, ``PYTHONHASHSEED``); left there, every command
    started after the sweep inherits them (the demo's evaluate stages then ran on one thread, 4x slower). The
    environment is put back once the workers are up and again when the cluster closes."""
    import dask
    from distributed import LocalCluster

    if workers < 1:
        raise ValueError(f"--workers is {workers}; it must be >= 1")
    saved = dict(os.environ)
    try:
        with dask.config.set(IDLE_WORKERS), LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, memory_limit=0, resources={RESOURCE: 1},
                dashboard_address=None, silence_logs=logging.ERROR) as cluster:
            _restore_environ(saved)
            yield cluster
    finally:
        _restore_environ(saved)


def _restore_environ(saved: dict[str, str]) -> None:
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    os.environ.update(saved)
