"""Where a model's checkpoint file comes from: a local path, or an MLflow model URI whose pose pyfunc carries one.

``hourglass predict --model``, the served model and ``train.init_from`` all name a model the same way: a checkpoint
file, a ``models/<variant>/`` directory holding ``checkpoint.pt``, or an MLflow URI (``models:/<name>@champion``,
``models:/<name>/<version>``, ``runs:/<id>/model``). For a URI only the checkpoint artifact is downloaded, not the
model's copy of the code.
"""

from __future__ import annotations

from pathlib import Path

from hourglass.io.checkpoint import CHECKPOINT_NAME, CheckpointError

MLFLOW_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")


def is_mlflow_uri(source: str | Path) -> bool:
    """True for ``models:/...``, ``runs:/...`` and ``mlflow-artifacts:/...``; anything else is a local path."""
    return isinstance(source, str) and source.startswith(MLFLOW_SCHEMES)


def checkpoint_in_mlflow_model(local_dir: str | Path, uri: str) -> Path:
    """The weights checkpoint inside a downloaded pose-pyfunc model directory (``artifacts/checkpoint.pt``)."""
    found = sorted(Path(local_dir).rglob(CHECKPOINT_NAME))
    if not found:
        raise CheckpointError(f"{uri}: the MLflow model holds no {CHECKPOINT_NAME}; models logged before the pose "
                              "pyfunc (a pt2 heatmap module) cannot be used for prediction, log it again by "
                              "training, or pass a checkpoint path")
    return found[0]


def resolve_checkpoint(source: str | Path, workdir: str | Path, tracking_uri: str | None = None) -> Path:
    """A local checkpoint path for ``source``: the path itself, or the MLflow model's ``artifacts/checkpoint.pt``
    downloaded into ``workdir`` (that file only, not the model's copy of the code)."""
    if not is_mlflow_uri(source):
        return Path(source)
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from hourglass.tracking.store import default_tracking_uri

    uri = tracking_uri or default_tracking_uri()
    try:  # the registry is the tracking store's, as for every MLflow call of the project
        repository = get_artifact_repository(str(source), tracking_uri=uri, registry_uri=uri)
    except MlflowException as err:
        raise CheckpointError(f"{source}: cannot fetch the MLflow model ({err.message})") from None
    try:
        return Path(repository.download_artifacts(f"artifacts/{CHECKPOINT_NAME}", str(workdir)))
    except (MlflowException, OSError):
        return checkpoint_in_mlflow_model(workdir, str(source))  # raises: the model has no checkpoint
