"""The sections around training: MLflow tracking, Prefect retraining flows, the report, released weights."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    field_validator,
)

from hourglass.config.section import Section


class MlflowConfig(Section):
    """MLflow tracking of training runs (hourglass.tracking.runs). The store is ``MLFLOW_TRACKING_URI`` when set, else
    ``sqlite:///<working directory>/mlflow.db``."""

    enabled: bool  # False: DVC files only (tests, quick experiments)
    experiment: str = Field(min_length=1)
    registered_model: str | None  # the base name: models register as <registered_model>-<dataset>; None: not at all
    log_model: bool
    log_onnx: bool  # with log_model: the network exported to ONNX too, for HOURGLASS_RUNTIME=onnxruntime/openvino
    system_metrics: bool
    sweep: str | None  # runs with the same sweep name nest under one parent (HOURGLASS_PARENT_RUN_ID wins)

class FlowsConfig(Section):
    """Scheduled retraining (pipeline.flows) and the champion policy (hourglass.tracking.champion and
    hourglass.tracking.registry)."""

    cron: str  # when the served deployment retrains: 5 cron fields or a macro such as @daily
    timezone: str  # IANA zone the cron is read in
    champion_variant: str = Field(min_length=1)  # the train@<variant> that competes for `champion`
    # As hourglass.train.loop logs it to the run; null: the dataset family's headline (val/pckh/Mean, val/pck/Mean).
    champion_metric: str | None = Field(min_length=1)
    higher_is_better: bool
    download_retries: int = Field(ge=0, le=10)  # retries of the fetch-data task (downloads are flaky)
    download_retry_delay: float = Field(ge=0)  # seconds before the first retry; doubles each time
    # The contest: the candidate must beat the champion by at least min_improvement (metric points) and the paired
    # bootstrap interval of their difference on the same validation people must exclude 0 at `confidence`.
    min_improvement: float = Field(ge=0)
    confidence: float = Field(gt=0, lt=1)
    warm_start: Literal["none", "champion"]  # champion: a retrain fine-tunes from the served model when it fits
    notify_url: str | None = Field(pattern=r"^https?://\S+$")  # POSTed a JSON message on a promotion or failure
    lock_wait: float = Field(ge=0)  # seconds a stage waits for another run's DVC lock before it fails
    git_pull: bool  # before a scheduled run: `git pull --ff-only` the checkout
    dvc_pull: bool  # ... and `dvc pull` from the configured remote
    dvc_push: bool  # after it: `dvc push` what it produced
    # trainings at a time: 1 runs them one by one through dvc repro; more runs them on a local Dask cluster
    # (pipeline.sweep), each committed to DVC as it ends
    parallel: int = Field(ge=1, le=64)

    @field_validator("cron")
    @classmethod
    def _cron_shape(cls, value: str) -> str:
        fields = value.split()
        if not (len(fields) == 5 or (len(fields) == 1 and value.startswith("@"))):
            raise ValueError(f"cron {value!r}: need 5 fields (min hour day month weekday) or a macro (@daily)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {value!r} is not an IANA zone name (UTC, Europe/Berlin)") from None
        return value


class ReportConfig(Section):
    """The results report (hourglass.report, pipeline.report)."""

    examples: int = Field(ge=1, le=24)  # people in each of the best-cases and worst-cases figures
    example_variant: str | None  # whose predictions the examples show; None: the variant with the best Mean


PORT_PROJECT = "princeton-vl/pytorch_stacked_hourglass"  # the official PyTorch port, whose releases imports name


class ImportConfig(Section):
    """A released checkpoint of princeton-vl/pytorch_stacked_hourglass scored beside the sweep: the ``import@<name>``
    stage converts it into ``models/<name>/`` (hourglass.weights.releases), ``evaluate_import@<name>`` scores it."""

    path: str = Field(min_length=1)  # the port's checkpoint file; a DVC dependency of import@<name>
    input_res: int = Field(ge=64, multiple_of=64)  # the crop size it was trained at (the port's: 256)
    commit: str | None  # the port's git commit the checkpoint was trained with, recorded in the checkpoint
