"""What a training checkpoint belongs to: its configuration, its data and its code, as three digests.

A checkpoint is resumed only when all three match the run that finds it. Under ``dvc repro`` the checkpoint is a
persistent output (DVC does not delete it before rerunning the stage), so after a kill the rerun resumes; after a
change of params, data or code the same file is found again, and the digests tell the run to start fresh instead of
continuing another run's weights.

* configuration: the resolved params that shape the weights (dataset, the run's training seed, model with the
  variant applied, targets, augmentation, train, and ``flows.warm_start`` when it is on), leaving out what only
  changes speed or logging (data loader workers, prefetch, pinning and persistence, validation batch size, log
  interval), the other variants' definitions and the sweep's other seeds;
* data: the preprocessing stage's own fingerprint of its output (``preprocess.json``), when the run has one;
* code: the sources of every module of this project loaded when training starts, i.e. the code the run executes.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hourglass.config import ParamsConfig
from hourglass.io.digest import file_sha256

PROJECT_PACKAGES = ("hourglass", "pipeline")
# Train keys that change neither the weights nor the metrics: a resumed run may differ in these. The loader's
# workers, prefetch, pinning and persistence only change how fast the same batches arrive (a sample's augmentation
# comes from its place in the run: hourglass.data.sampler.Draw); log_every only how often losses are read back.
SPEED_ONLY_TRAIN_KEYS = frozenset({"workers", "prefetch_factor", "pin_memory", "persistent_workers", "val_batch_size",
                                   "log_every", "variants"})


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def config_digest(params: ParamsConfig, variant: str | None, seed: int) -> str:
    """Digest of the resolved params that shape the trained weights (``params`` with the variant applied) and of
    the run's training ``seed``."""
    dumped = params.model_dump(mode="json")
    train = {k: v for k, v in dumped["train"].items() if k not in SPEED_ONLY_TRAIN_KEYS}
    payload = {"variant": variant, "dataset": dumped["dataset"], "seed": int(seed), "model": dumped["model"],
               "targets": dumped["targets"], "augment": dumped["augment"], "train": train}
    if params.flows.warm_start != "none":  # where the first weights come from; absent, earlier digests still hold
        payload["warm_start"] = params.flows.warm_start
    return _digest(payload)


def loaded_project_files(packages: tuple[str, ...] = PROJECT_PACKAGES) -> list[Path]:
    """Source files of this project's modules that are loaded now (the code the running process executes)."""
    files = set()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and name.split(".")[0] in packages and path.endswith(".py"):
            files.add(Path(path).resolve())
    return sorted(files)


def code_digest(files: list[Path] | None = None) -> str:
    """Digest of the loaded project modules' sources, keyed by their path inside the project."""
    files = loaded_project_files() if files is None else files
    entries = {}
    for path in files:
        parts = path.parts
        start = max(i for i, part in enumerate(parts) if part in PROJECT_PACKAGES)
        entries["/".join(parts[start:])] = file_sha256(path)
    return _digest(entries)


def data_digest(processed_dir: str | Path | None) -> str | None:
    """The preprocessing stage's fingerprint of ``processed_dir`` (None where there is none)."""
    if processed_dir is None:
        return None
    try:
        return str(json.loads((Path(processed_dir) / "preprocess.json").read_text())["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def training_fingerprint(params: ParamsConfig, variant: str | None, data: str | None,
                         seed: int) -> dict[str, str | None]:
    """The three digests a checkpoint carries (see the module docstring)."""
    return {"config": config_digest(params, variant, seed), "data": data, "code": code_digest()}


def mismatches(saved: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """Which of configuration, data and code differ between a checkpoint's fingerprint and this run's."""
    if not saved:
        return ["the checkpoint has no fingerprint"]
    return [part for part in ("config", "data", "code") if saved.get(part) != current.get(part)]
