"""The MLflow tags of a training run: what it trained (variant, seed, DVC stage), how (precision, processes, the
runtime record) and from what (the lineage: git commit, data digests), so the MLflow UI can filter and compare
runs by any of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hourglass.lineage import Lineage


def training_tags(name: str, seed: int, stage: str | None, precision: str, world_size: int,
                  runtime: Mapping[str, Any], lineage: Lineage) -> dict[str, str]:
    """The tags of run ``<name>/seed-<seed>``; ``stage`` defaults to dvc.yaml's ``train@<name>-<seed>``."""
    tags = {"variant": name, "seed": str(seed), "dvc.stage": stage or f"train@{name}-{seed}", "precision": precision,
            "world_size": str(world_size), **{f"runtime.{k}": str(v) for k, v in runtime.items()}}
    if lineage.git_commit:
        tags.update({"git.commit": lineage.git_commit, "mlflow.source.git.commit": lineage.git_commit})
    tags.update(lineage.to_tags())
    return tags
