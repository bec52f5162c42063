"""MLflow outside a training run: naming rules, the experiment's set-up, registered versions' tags, and the evaluate
stage's scores added to the training run. Kept apart from :mod:`hourglass.tracking.runs` (which also logs and serves the
model) so that a stage needing only these small calls imports nothing else; both are the project's one way to MLflow.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hourglass.config import ParamsConfig

# models/<variant>/seed-<n>/mlflow.json: the training run, model URI, registered version, store
MLFLOW_JSON = "mlflow.json"
SWEEP_TAG = "hourglass.sweep"  # the tag that finds a sweep's parent run
# The UI's kind for model training ("machine learning"): without it MLflow 3 opens a new experiment in GenAI mode
# (traces, no run charts).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
ARCHITECTURE_KEYS = ("stacks", "modules", "features", "supervision", "stem_width", "input_res")
_METRIC_NAME = re.compile(r"^[A-Za-z0-9_\-./ ]+$")  # MLflow's rule minus ':' (invalid on Windows stores)


class TrackingWarning(RuntimeWarning):
    """MLflow could not be reached or refused a call; the DVC outputs are still written."""


def default_tracking_uri(project_dir: str | Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else SQLite in the project directory (MLflow's own default since 3.7)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    root = Path(project_dir) if project_dir is not None else Path.cwd()
    return f"sqlite:///{root.resolve() / 'mlflow.db'}"


@contextmanager
def fluent_store(uri: str, experiment_id: str) -> Iterator[None]:
    """MLflow's global tracking URI set to ``uri`` and its experiment to ``experiment_id`` for the block, then put
    back. The project's one use of MLflow's global state: ``mlflow.models.Model.log`` (logging a pyfunc into a run
    and registering it) reads the store only from the global URI, and files the logged model under the global
    experiment (``MLFLOW_EXPERIMENT_ID``, else the Default one) rather than its run's; it has no argument for
    either. Every other call gets the URI from an ``MlflowClient``. ``mlflow.set_tracking_uri`` also writes
    ``MLFLOW_TRACKING_URI`` into the environment (and clearing it removes the variable), so both variables are put
    back as they were."""
    import mlflow

    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")}
    mlflow.set_tracking_uri(uri)
    os.environ["MLFLOW_EXPERIMENT_ID"] = experiment_id
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def metric_name(name: str) -> str:
    """``name`` if MLflow and a CSV header both accept it; a clear error otherwise."""
    if not _METRIC_NAME.match(name) or name.startswith("/") or ".." in name:
        raise ValueError(f"metric name {name!r}: use letters, digits, '_', '-', '.', '/' or spaces")
    return name


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def version_tags(config: Mapping[str, Any], variant: str | None, epoch: int | None) -> dict[str, str]:
    """Tags of a registered model version: which variant, training seed, data (card name, its digest and keypoint
    names in output order) and architecture it is (the registry keeps one name for every variant and seed, so the
    versions must say it themselves), and its lineage (``lineage.*``, :mod:`hourglass.lineage`) where the config
    holds one."""
    from hourglass.dataset_card import CardError
    from hourglass.family import family_of_checkpoint
    from hourglass.lineage import lineage_of_config

    tags = {"variant": variant or "", "seed": "" if config.get("seed") is None else str(config["seed"]),
            "dataset": str(config.get("dataset", "")), "architecture": architecture(config.get("model") or {})}
    try:
        family = family_of_checkpoint(config, config.get("dataset_card"))
    except (CardError, ValueError):
        family = None
    if family is not None:  # what the served model's keypoints rows are, in order, and the card they come from
        tags.update(metric=family.metric, keypoints=",".join(family.joints.names),
                    dataset_card=family.card.digest()[:12])
    if epoch is not None:
        tags["epochs"] = str(epoch)
    lineage = lineage_of_config(config)  # what the version was trained on, with which code and params
    if lineage is not None:
        tags.update(lineage.to_tags())
    return {k: v for k, v in tags.items() if v}


def architecture(model: Mapping[str, Any]) -> str:
    """A model section (or a network's constructor arguments plus ``input_res``) as one comparable line, e.g.
    ``stacks=2, modules=1, features=256, supervision=intermediate, stem_width=128, input_res=256``: a registered
    version's ``architecture`` tag, and what a warm start compares with it."""
    return ", ".join(f"{k}={model[k]}" for k in ARCHITECTURE_KEYS if k in model)


def registered_name(params: ParamsConfig) -> str | None:
    """The registered model of the run's dataset card: ``<mlflow.registered_model>-<dataset>``
    (``hourglass-synthetic``), None when params register nothing. One name per card, so a model of one dataset never
    holds, or competes for, the alias of another's; training registers under it and the champion contest looks it
    up, both through this function."""
    base = params.mlflow.registered_model
    return None if base is None else f"{base}-{params.dataset}"


def ensure_experiment(client: Any, name: str) -> str:
    """The id of experiment ``name``, created on first use, with the model-training kind set (see
    ``EXPERIMENT_KIND``) so the MLflow UI opens on its runs and charts."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    if EXPERIMENT_KIND_TAG not in (exp.tags or {}):
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp.experiment_id


def log_evaluation(model_dir: str | Path, metrics: Mapping[str, float], tags: Mapping[str, str]) -> str | None:
    """Add the evaluate stage's scores (``eval/...``) and ``tags`` to the training run named by
    ``model_dir/mlflow.json``, and the headline scores as tags of its registered version, so MLflow shows the same
    flip-test numbers as the report. Returns the run id; None when training logged no MLflow run. A failing store
    is a warning, never an error: the stage's files are its outputs."""
    path = Path(model_dir) / MLFLOW_JSON
    try:
        record = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    run_id = record.get("run_id") if isinstance(record, dict) else None
    if not run_id:
        return None
    uri = record.get("tracking_uri") or default_tracking_uri()
    try:
        from mlflow.entities import Metric, RunTag
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        now = int(time.time() * 1000)
        batch = [Metric(metric_name(k), float(v), now, 0) for k, v in metrics.items() if _finite(v) is not None]
        run_tags = [RunTag(k, str(v)) for k, v in tags.items()]
        for i in range(0, len(batch), 500):  # log_batch caps a request at 1000 entries
            client.log_batch(run_id, metrics=batch[i:i + 500], tags=run_tags if i == 0 else [])
        if record.get("registered_model") and record.get("version"):
            for key, value in tags.items():
                client.set_model_version_tag(record["registered_model"], str(record["version"]), key, str(value))
    except Exception as err:  # the store is optional to this stage
        warnings.warn(f"MLflow at {uri} failed while logging the evaluation to run {run_id} "
                      f"({type(err).__name__}: {err}); the evaluate stage's files are written", TrackingWarning,
                      stacklevel=2)
        return None
    return run_id


def log_sweep_summary(experiment: str, sweep: str, scores: Mapping[str, float | None], tags: Mapping[str, str],
                      files: list[Path], tracking_uri: str | None = None,
                      spreads: Mapping[str, float | None] | None = None) -> str | None:
    """Give the sweep's parent run the report: each variant's evaluated Mean (``<variant>/eval_mean``, the mean over
    its training seeds), the standard deviation across its seeds where it has several (``spreads``:
    ``<variant>/eval_sd``), ``tags`` (the best variant, or why there is none), ``files`` as artifacts (results.md,
    the figures), and an end time after its children's. Returns the parent's run id; a failing store is a warning
    (the report is written)."""
    uri = tracking_uri or default_tracking_uri()
    try:
        from mlflow.entities import Metric, RunTag
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        exp_id = ensure_experiment(client, experiment)
        found = client.search_runs([exp_id], filter_string=f"tags.`{SWEEP_TAG}` = '{sweep}'", max_results=1,
                                   order_by=["attributes.start_time ASC"])
        if not found:
            return None  # no child was ever logged to MLflow: nothing to summarise there
        run_id = found[0].info.run_id
        now = int(time.time() * 1000)
        metrics = [Metric(metric_name(f"{name}/eval_mean"), float(v), now, 0) for name, v in scores.items()
                   if v is not None and _finite(v) is not None]
        metrics += [Metric(metric_name(f"{name}/eval_sd"), float(v), now, 0) for name, v in (spreads or {}).items()
                    if v is not None and _finite(v) is not None]
        client.log_batch(run_id, metrics=metrics, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        for path in files:
            if path.is_dir():
                client.log_artifacts(run_id, str(path), artifact_path=path.name)
            elif path.is_file():
                client.log_artifact(run_id, str(path))
        client.set_terminated(run_id, "FINISHED", end_time=now)
        return run_id
    except Exception as err:  # the store is optional to the report
        warnings.warn(f"MLflow at {uri} failed while summarising sweep {sweep!r} ({type(err).__name__}: {err}); "
                      "the report's files are written", TrackingWarning, stacklevel=2)
        return None
