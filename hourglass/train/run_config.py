"""What one training run is: the params with its variant applied, and the records of them it leaves behind
(``config.yaml`` beside the outputs, the checkpoint's and logged model's ``config``, the MLflow run's params)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hourglass.config import ParamsConfig
from hourglass.io.atomic import write_atomic
from hourglass.lineage import RECORD_KEY, Lineage
from hourglass.precision import Precision
from hourglass.train.distributed import DistInfo
from hourglass.train.fastpath import FastPath


@dataclass(frozen=True)
class RunContext:
    """One training run as :func:`hourglass.train.loop.train` resolves it once: the params with its variant applied,
    its seed and output directory, this process's place in the job, how it computes, and what it records about its
    data (the DVC stage, the data's fingerprint and directory)."""

    params: ParamsConfig
    variant: str | None
    seed: int
    out_dir: Path
    info: DistInfo
    precision: Precision
    fast: FastPath
    stage: str | None = None
    data_fingerprint: str | None = None
    data_dir: str | Path | None = None

    @property
    def name(self) -> str:
        """How logs, MLflow and stage names call the run's network."""
        return self.variant or "model"


def resolve_variant(params: ParamsConfig, variant: str | None) -> ParamsConfig:
    """``params`` with the named variant's overrides applied (:meth:`ParamsConfig.with_variant`; None: as they
    are)."""
    if variant is None:
        return params
    if variant not in params.train.variants:
        known = ", ".join(sorted(params.train.variants)) or "none defined"
        raise ValueError(f"params.yaml: train.variants has no variant {variant!r} (known: {known})")
    return params.with_variant(variant)


def run_params(params: ParamsConfig, name: str, seed: int, initialised: Mapping[str, Any] | None = None,
               lineage: Lineage | None = None) -> dict[str, Any]:
    """The MLflow run's params: what this run was (its data, seed, resolved network, targets, augmentation and
    training recipe, for a fine-tuning run the source of its first weights, and its lineage's fixed facts: data,
    code and params digests), not every variant's definition, the download URLs or other stages' settings. The
    warm start's note, free text, is a tag only."""
    dumped = params.model_dump(mode="json")
    out: dict[str, Any] = {"variant": name, "dataset": params.dataset, "seed": seed}
    out.update({key: dumped[key] for key in ("model", "targets", "augment")})
    out["train"] = {k: v for k, v in dumped["train"].items() if k != "variants"}
    card = params.card()
    out["dataset_card"] = {"format": card.format, "keypoints": card.count, "digest": card.digest()[:12]}
    if card.format == "synthetic":
        out["synthetic"] = dumped["synthetic"]
    if initialised:  # InitReport.to_dict(); train.init_from above names the source
        out["init"] = {"source": initialised["source"], "sha256": initialised["sha256"],
                       "source_joints": initialised["source_joints"],
                       "reinitialised": ",".join(initialised["reinitialised"]) or "none"}
    if lineage is not None:
        out["lineage"] = {k: v for k, v in lineage.to_record().items() if v is not None and k != "warm_start"}
    return out


def run_record(params: ParamsConfig, seed: int) -> dict[str, Any]:
    """The resolved params of a run with its own training seed (``seed``, beside the sweep's ``seeds``): what
    config.yaml, the checkpoint and the logged model record; with the dataset card (``dataset_card``), so a model
    says what its outputs are (keypoint names, pairs, skeleton, metric) wherever it is loaded."""
    return {**params.model_dump(mode="json"), "seed": seed, "dataset_card": params.card().as_record()}


def with_lineage(record: Mapping[str, Any], lineage: Lineage) -> dict[str, Any]:
    """``record`` with the run's lineage under ``lineage``, so it travels wherever the record does (config.yaml,
    the checkpoint, the logged model's checkpoint and from there the registered version's tags)."""
    return {**record, RECORD_KEY: lineage.to_record()}


def write_config(record: Mapping[str, Any], variant: str | None, runtime: Mapping[str, Any], path: Path,
                 initialised: Mapping[str, Any] | None = None) -> None:
    """The resolved config and how the run ran (and, fine-tuning, where its first weights came from), beside the
    outputs, so every artefact says what made it."""
    extra = {"initialised_from": dict(initialised)} if initialised else {}
    write_atomic(path, yaml.safe_dump({"variant": variant, "runtime": dict(runtime), **extra, **record},
                                      sort_keys=False))


def sweep_position(params: ParamsConfig, variant: str | None, seed: int) -> str:
    """The log-line prefix that says where this run is in the sweep's variant x seed matrix, in dvc.yaml's order
    (``"[hg_int seed 0, 2/5] "``), so a log of many stages says how far the sweep is."""
    if variant in params.sweep and seed in params.seeds:
        position = params.sweep.index(variant) * len(params.seeds) + params.seeds.index(seed)
        return f"[{variant} seed {seed}, {position + 1}/{len(params.sweep) * len(params.seeds)}] "
    return f"[{variant} seed {seed}] "
