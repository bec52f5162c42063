"""The one place that records training metrics: DVC's files and MLflow, written from the same values.

``RunTracker`` (used by rank 0 only) appends each epoch to ``epochs.csv`` (for ``dvc plots``) and logs the same
numbers to MLflow; ``finish`` writes ``metrics.json`` (for ``dvc metrics``) and logs it too, so the two can never
disagree. Metric names are checked against MLflow's character rules up front, so both sides use one name.
Non-finite values are written as empty CSV cells / JSON ``null`` and not sent to MLflow (which cannot chart them).

MLflow is best effort: when the store is unreachable or a call fails, the tracker warns once, stops talking to
MLflow and keeps writing the DVC files, so training always completes with its outputs.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from hourglass.config import MlflowConfig
from hourglass.io.atomic import write_atomic
from hourglass.io.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from hourglass.tracking.store import (
    MLFLOW_JSON,
    SWEEP_TAG,
    TrackingWarning,
    _finite,
    default_tracking_uri,
    ensure_experiment,
    fluent_store,
    metric_name,
    version_tags,
)

EPOCHS_CSV = "epochs.csv"
METRICS_JSON = "metrics.json"
PARENT_RUN_ENV = "HOURGLASS_PARENT_RUN_ID"
_STEP_FLUSH = 50  # buffered per-step records per MLflow request

T = TypeVar("T")


def flatten_params(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as MLflow params: dotted keys, string values (lists as JSON)."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_params(value, f"{dotted}."))
        else:
            out[dotted] = json.dumps(value) if isinstance(value, (list, tuple, Mapping)) else str(value)
    return out


def _read_csv_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _requirements(exported: bool = False) -> list[str]:
    """What serving the logged model needs, pinned to this environment. Stated, not inferred: MLflow's inference
    re-loads the model in a subprocess, which costs about a minute on two cores. The list is the import closure of
    ``hourglass.inference.serving`` (the model code) beyond the standard library, plus the exported runtimes'
    packages when the model carries an ONNX export (``exported``)."""
    from importlib.metadata import version

    torch_version = torch.__version__.split("+")[0]  # local labels (+cpu) are not installable from PyPI
    names = _SERVING_DISTRIBUTIONS + (_EXPORT_DISTRIBUTIONS if exported else ())
    return [f"torch=={torch_version}"] + [f"{name}=={version(name)}" for name in names]


_SERVING_DISTRIBUTIONS = ("numpy", "pandas", "mlflow", "opencv-python-headless", "h5py", "pyarrow", "pydantic",
                          "pyyaml", "tqdm")
_EXPORT_DISTRIBUTIONS = ("onnx", "onnxruntime", "openvino")  # HOURGLASS_RUNTIME=onnxruntime / openvino


def _unwrapped(network: nn.Module) -> nn.Module:
    """The network inside DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(network, "module", None) or getattr(network, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return network
        network = inner


def serving_checkpoint(network: nn.Module, input_res: int, config: Mapping[str, Any] | None = None,
                       variant: str | None = None, epoch: int | None = None) -> dict[str, Any]:
    """The weights-only checkpoint the served model loads (``hourglass.inference.runner.load_model`` format): CPU fp32
    contiguous weights, the network's constructor arguments, and the training config with its ``model`` section
    taken from the network itself, so the rebuilt architecture always fits the weights."""
    network = _unwrapped(network)
    weights = {k: (v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()).contiguous()
               for k, v in network.state_dict().items()}
    arguments = network.config.as_record()
    model = {key: value for key, value in arguments.items() if key != "joints"}
    full = copy.deepcopy(dict(config or {}))
    full["model"] = {**dict(full.get("model") or {}), **model, "input_res": int(input_res)}
    return {"model": weights, "network": arguments, "config": full, "variant": variant, "epoch": epoch}


def log_pose_model(tracking_uri: str, run_id: str, checkpoint: str | Path, registered_model: str | None,
                   onnx: str | Path | None = None) -> Any:
    """Log ``checkpoint`` into run ``run_id`` as the pose pyfunc (``hourglass.inference.serving``: images in, keypoints
    out), registered as ``registered_model`` when given; returns MLflow's ``ModelInfo``. ``onnx`` (the checkpoint's
    ``hourglass export --format onnx`` file) goes in as a second artifact, which the served model runs when
    ``HOURGLASS_RUNTIME`` names an exported runtime.

    The model is "from code": the weights go in as a weights-only checkpoint artifact and the ``hourglass`` package
    as its code, so neither logging nor loading pickles anything."""
    import mlflow
    from mlflow.models import Model
    from mlflow.tracking import MlflowClient

    from hourglass.inference import serving

    experiment_id = MlflowClient(tracking_uri=tracking_uri).get_run(run_id).info.experiment_id
    artifacts = {serving.ARTIFACT: str(checkpoint)}
    if onnx is not None:
        artifacts[serving.ONNX_ARTIFACT] = str(onnx)
    with fluent_store(tracking_uri, experiment_id):
        return Model.log(
            artifact_path=None, name="model", flavor=mlflow.pyfunc, run_id=run_id,
            python_model=str(serving.MODEL_CODE), artifacts=artifacts,
            code_paths=[str(serving.CODE_PACKAGE)], signature=serving.signature(),
            input_example=serving.input_example(), pip_requirements=_requirements(onnx is not None),
            registered_model_name=registered_model)


def _export_onnx(checkpoint: Path, out_dir: Path) -> Path:
    """``model.onnx`` of the serving checkpoint, as ``hourglass export --format onnx`` writes it."""
    from hourglass.export.exporter import export_model

    return export_model(checkpoint, "onnx", out_dir).path


def ensure_parent_run(experiment: str, sweep: str, tracking_uri: str | None = None) -> str:
    """The id of the sweep's parent run, created on first use (the tag ``hourglass.sweep`` finds it again)."""
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or default_tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    exp_id = ensure_experiment(client, experiment)
    found = client.search_runs([exp_id], filter_string=f"tags.`{SWEEP_TAG}` = '{sweep}'", max_results=1,
                               order_by=["attributes.start_time ASC"])
    if found:
        return found[0].info.run_id
    run = client.create_run(exp_id, run_name=f"sweep-{sweep}", tags={SWEEP_TAG: sweep})
    # A container, not a job: ended at once so the UI does not show a sweep 'running' forever; children still nest.
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


class RunTracker:
    """Per-step, per-epoch and final metrics of one training run, to DVC files and one MLflow run.

    ``resume_epoch`` (the last completed epoch of a resumed run) trims ``epochs.csv`` to the epochs the checkpoint
    has, so a run killed between writing a row and its checkpoint does not list that epoch twice; None starts a
    fresh file. ``run_id`` reopens the MLflow run of the interrupted training, so a resumed training is one run.
    """

    def __init__(
        self,
        out_dir: str | Path,
        cfg: MlflowConfig,
        *,
        run_name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str] | None = None,
        resume_epoch: int | None = None,
        run_id: str | None = None,
        tracking_uri: str | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.cfg = cfg
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self._warned = False
        self._mlflow_ok = True
        self._pending: list[Any] = []
        self._client: Any = None
        self._monitor: Any = None  # MLflow's system metrics sampler of the run, when cfg.system_metrics
        self.run_id: str | None = None
        self._last_epoch: int = 0
        self._last_values: dict[str, float] = {}
        self._prepare_csv(resume_epoch)
        self._start(run_name, params, dict(tags or {}), run_id)

    # -- DVC files -------------------------------------------------------------------------------------------------
    def _prepare_csv(self, resume_epoch: int | None) -> None:
        path = self.out_dir / EPOCHS_CSV
        if resume_epoch is None:
            path.unlink(missing_ok=True)
            return
        rows = [r for r in _read_csv_rows(path) if int(r["epoch"]) <= resume_epoch]
        if rows:
            self._write_csv(list(rows[0]), rows)
        else:
            path.unlink(missing_ok=True)

    def _write_csv(self, header: list[str], rows: list[Mapping[str, Any]]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(self.out_dir / EPOCHS_CSV, buf.getvalue())

    # -- MLflow, best effort ---------------------------------------------------------------------------------------
    def _mlflow(self, what: str, fn: Callable[[], T]) -> T | None:
        if not self._mlflow_ok:
            return None
        try:
            return fn()
        except Exception as err:  # any failure of the store must not stop training
            self._mlflow_ok = False
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"MLflow at {self.tracking_uri} failed while {what} ({type(err).__name__}: {err}); "
                    f"continuing without MLflow, DVC outputs in {self.out_dir} are still written",
                    TrackingWarning, stacklevel=3,
                )
            return None

    def _start(self, run_name: str, params: Mapping[str, Any], tags: dict[str, str], run_id: str | None) -> None:
        if not self.cfg.enabled:
            self._mlflow_ok = False
            return

        def start() -> str:
            from mlflow.entities import Param, RunStatus
            from mlflow.tracking import MlflowClient
            from mlflow.tracking.context.registry import resolve_tags

            client = MlflowClient(tracking_uri=self.tracking_uri)
            exp_id = ensure_experiment(client, self.cfg.experiment)
            if run_id is not None:
                client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
                started = run_id
            else:
                parent = os.environ.get(PARENT_RUN_ENV) or (
                    ensure_parent_run(self.cfg.experiment, self.cfg.sweep, self.tracking_uri)
                    if self.cfg.sweep else None)
                # resolve_tags adds the source, user and git tags MLflow's fluent start_run adds.
                run_tags = resolve_tags({**tags, **({"mlflow.parentRunId": parent} if parent else {})})
                started = client.create_run(exp_id, run_name=run_name, tags=run_tags).info.run_id
                items = [Param(k, v) for k, v in flatten_params(params).items()]
                for i in range(0, len(items), 100):  # log_batch caps a request at 100 params
                    client.log_batch(started, params=items[i:i + 100])
            if self.cfg.system_metrics:
                from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

                self._monitor = SystemMetricsMonitor(started, resume_logging=run_id is not None,
                                                     tracking_uri=self.tracking_uri)
                self._monitor.start()
            self._client = client
            return started

        self.run_id = self._mlflow("starting the run", start)

    def _send(self, metrics: Mapping[str, float], step: int | None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending.extend(Metric(k, float(v), now, step or 0) for k, v in metrics.items() if _finite(v) is not None)

    def _flush(self) -> None:
        if not self._pending or not self._mlflow_ok or self.run_id is None:
            self._pending.clear()
            return
        batch, self._pending = self._pending, []
        for i in range(0, len(batch), 1000):  # log_batch caps a request at 1000 metrics
            self._mlflow("logging metrics", lambda chunk=batch[i:i + 1000]: self._client.log_batch(
                self.run_id, metrics=chunk))

    # -- public API ------------------------------------------------------------------------------------------------
    @property
    def mlflow_active(self) -> bool:
        return self._mlflow_ok and self.run_id is not None

    def log_step(self, step: int, loss: float, lr: float) -> None:
        """Training loss and learning rate at optimiser step ``step``: MLflow ``step/loss``, ``step/lr`` (batched)."""
        if self.mlflow_active:
            self._send({"step/loss": loss, "step/lr": lr}, step)
            if len(self._pending) >= _STEP_FLUSH:
                self._flush()

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """One row of ``epochs.csv`` and the same values as MLflow metrics at step ``epoch``."""
        values = {metric_name(k): float(v) for k, v in metrics.items()}
        row: dict[str, Any] = {"epoch": epoch}
        row.update({k: ("" if _finite(v) is None else repr(v)) for k, v in values.items()})
        rows = _read_csv_rows(self.out_dir / EPOCHS_CSV)
        header = list(rows[0]) if rows else list(row)
        if set(header) != set(row):
            raise ValueError(f"{self.out_dir / EPOCHS_CSV}: epoch {epoch} has columns {sorted(row)}, "
                             f"earlier epochs {sorted(header)}")
        self._write_csv(header, [*rows, row])
        if self.mlflow_active:
            self._send(values, epoch)
            self._flush()
        self._last_epoch, self._last_values = epoch, values

    def log_model(self, network: nn.Module, input_res: int, registered_model: str | None,
                  config: Mapping[str, Any] | None = None, variant: str | None = None,
                  epoch: int | None = None, log_onnx: bool = False) -> str | None:
        """Log the network as the pose pyfunc (:func:`log_pose_model`), register it, and write ``mlflow.json`` (run,
        model URI, registered name and version, store) for the flows and evaluation.

        ``config`` (the resolved params) says which joint set and flip test the model uses, ``variant``/``epoch``
        what it is; without ``config`` the run's ``checkpoint.pt`` in the output directory supplies all three when
        present. ``log_onnx`` (``mlflow.log_onnx``) adds the network exported to ONNX (:mod:`hourglass.export`).
        Returns the model URI, or None without MLflow (``mlflow.json`` then has null fields, so the file a DVC stage
        declares always exists).
        """
        record: dict[str, Any] = {"run_id": self.run_id, "model_uri": None, "registered_model": registered_model,
                                  "version": None, "tracking_uri": self.tracking_uri}

        def log() -> str:
            import tempfile

            base, name, trained = self._training_config(config, variant, epoch)
            with tempfile.TemporaryDirectory(prefix="hourglass-model-") as tmp:
                weights = Path(tmp) / CHECKPOINT_NAME
                save_checkpoint(serving_checkpoint(network, input_res, base, name, trained), weights)
                onnx = _export_onnx(weights, Path(tmp) / "onnx") if log_onnx else None
                info = log_pose_model(self.tracking_uri, self.run_id, weights, registered_model, onnx)
            version = info.registered_model_version
            record.update(model_uri=info.model_uri, version=str(version) if version is not None else None)
            if version is not None:  # one registered name, many architectures: each version says what it is
                for key, value in version_tags(base, name, trained).items():
                    self._client.set_model_version_tag(registered_model, str(version), key, value)
            return info.model_uri

        uri = self._mlflow("logging the model", log) if self.mlflow_active else None
        write_atomic(self.out_dir / MLFLOW_JSON, json.dumps(record, indent=2) + "\n")
        return uri

    def _training_config(self, config: Mapping[str, Any] | None, variant: str | None,
                         epoch: int | None) -> tuple[dict[str, Any], str | None, int | None]:
        """(config, variant, epoch): as given, else those of the run's checkpoint in the output dir."""
        if config is not None:
            return dict(config), variant, epoch
        path = self.out_dir / CHECKPOINT_NAME
        if not path.is_file():
            return {}, None, None
        state = load_checkpoint(path)
        epoch = state.get("epoch")
        return dict(state.get("config") or {}), state.get("variant"), int(epoch) if epoch is not None else None

    def finish(self, final_metrics: Mapping[str, float], status: str = "FINISHED",
               runtime: Mapping[str, str | int | bool] | None = None) -> None:
        """Write ``metrics.json`` and log the same values to MLflow, then end the run with ``status``.
        ``runtime`` (how the run ran: device, resolved precision, versions) goes into ``metrics.json`` under
        ``runtime``; the MLflow run has it as ``runtime.*`` tags from its start."""
        values = {metric_name(k): float(v) for k, v in final_metrics.items()}
        payload: dict[str, Any] = {k: _finite(v) for k, v in values.items()}
        if runtime:
            payload["runtime"] = dict(runtime)
        write_atomic(self.out_dir / METRICS_JSON, json.dumps(payload, indent=2, sort_keys=True) + "\n")
        if self.mlflow_active:
            # Values equal to the last epoch's are already MLflow's latest; re-sending would add a duplicate point.
            fresh = {k: v for k, v in values.items() if self._last_values.get(k) != v}
            self._send(fresh, self._last_epoch)
        self.close(status)

    def close(self, status: str = "FINISHED") -> None:
        """Flush and end the MLflow run (``FAILED`` / ``KILLED`` for an aborted training); idempotent."""
        self._flush()
        if self._monitor is not None:
            self._monitor.finish()
            self._monitor = None
        if self.mlflow_active:
            self._mlflow("ending the run", lambda: self._client.set_terminated(self.run_id, status))
        self.run_id = None if not self._mlflow_ok else self.run_id
        self._mlflow_ok = False
