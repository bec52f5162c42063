"""Lineage: what a trained model was made from, recorded wherever the model goes.

A model that serves predictions or competes for ``champion`` has to say which data, code and params made it, or a
team cannot tell a retrain on new data from a rerun on old data. :func:`compute_lineage` is the one place that
builds the record (:class:`Lineage`); the training loop puts it into the run's config (``config.yaml``, the
checkpoint and the logged model's checkpoint, under ``lineage``), the MLflow run's tags and params, and the
registered version's tags (``lineage.*``); ``hourglass predict`` prints it and the contest reads it back from a
version's tags (:func:`version_lineage`).

What it holds:

* the data: the dataset card's digest, the preprocessing stage's fingerprint (``preprocess.json``), the people the
  run trained and validated on, and the hash DVC recorded for the preprocessed data in ``dvc.lock``. That hash is
  the producing stage's output entry (``preprocess``'s ``outs``): DVC writes a stage's lock entry after the stage
  finishes, so while ``train`` runs its own ``deps`` entry still describes the previous training's data, whereas
  ``preprocess`` (finished before ``train`` starts under ``dvc repro``) already describes this one's;
* the code: the git commit and whether tracked files differed from it (``dvc.lock`` left out: a ``dvc repro``
  rewrites it while it runs, so it would make every pipeline run look dirty);
* the params: SHA-256 of the resolved run record (the variant and every params value, the run's seed, the card);
* the first weights: the source and sha256 of ``train.init_from`` or of the champion a warm start fine-tuned
  (``flows.warm_start``), and what the warm start did or why it trained fresh.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from hourglass.config import ParamsConfig
from hourglass.io.git import has_uncommitted_changes, head_commit

RECORD_KEY = "lineage"  # the key of the run's config (config.yaml, checkpoints) that holds the record
TAG_PREFIX = "lineage."  # MLflow run and registered-version tags
DVC_LOCK = "dvc.lock"
SPLITS = ("train", "valid")


@dataclass(frozen=True)
class Lineage:
    """The data, code, params and first weights of one training run (see the module docstring). None: unknown
    (no ``dvc.lock`` entry, no git checkout, a run started from random weights)."""

    dataset: str  # the card's name
    card_digest: str  # hourglass.dataset_card.DatasetCard.digest()
    params_digest: str  # SHA-256 of the resolved run record
    data_fingerprint: str | None = None  # data/processed/<dataset>/preprocess.json "fingerprint"
    dvc_md5: str | None = None  # dvc.lock's hash of the preprocessed data directory (an "<md5>.dir")
    people_train: int | None = None
    people_valid: int | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    init_source: str | None = None  # train.init_from, or the champion version a warm start took
    init_sha256: str | None = None
    warm_start: str | None = None  # flows.warm_start: what it did, or why the run trained fresh

    def to_record(self) -> dict[str, Any]:
        """Plain data for YAML and checkpoints (unknown entries kept as null, so the record always has every key)."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: Any) -> Lineage | None:
        """The lineage of a stored record (:meth:`to_record`); None when ``record`` is not one. Unknown keys (a
        later version's) are ignored."""
        if not isinstance(record, Mapping) or not isinstance(record.get("dataset"), str):
            return None
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in record.items() if k in known})
        except TypeError:  # a required key is missing
            return None

    def to_tags(self) -> dict[str, str]:
        """MLflow tags (``lineage.<field>``, string values; unknown fields left out: MLflow keeps no null tag)."""
        tags = {}
        for key, value in asdict(self).items():
            if value is None:
                continue
            tags[f"{TAG_PREFIX}{key}"] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return tags

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> Lineage | None:
        """The lineage a run's or version's tags hold (:meth:`to_tags`); None when they hold none."""
        values: dict[str, Any] = {}
        for spec in fields(cls):
            raw = tags.get(f"{TAG_PREFIX}{spec.name}")
            if raw is None:
                continue
            if spec.name == "git_dirty":
                values[spec.name] = {"true": True, "false": False}.get(raw)
            elif spec.name.startswith("people_"):
                values[spec.name] = int(raw) if raw.isdigit() else None
            else:
                values[spec.name] = raw
        return cls.from_record(values)

    def summary(self) -> str:
        """One line for people: card, data, people, code, params and first weights, digests shortened to 12."""
        data = f"card {self.dataset} {self.card_digest[:12]}"
        if self.data_fingerprint:
            data += f", preprocessed data {self.data_fingerprint[:12]}"
        if self.dvc_md5:
            data += f" (dvc.lock {self.dvc_md5[:12]})"
        if self.people_train is not None or self.people_valid is not None:
            data += f", {_count(self.people_train)} training / {_count(self.people_valid)} validation people"
        if self.git_commit:
            code = f"git {self.git_commit[:12]}" + {True: " (uncommitted changes)", False: "", None: ""}[self.git_dirty]
        else:
            code = "git commit unknown"
        weights = "random initial weights"
        if self.init_source:
            weights = f"initial weights from {self.init_source}"
            if self.init_sha256:
                weights += f" (sha256 {self.init_sha256[:12]})"
        parts = [data, code, f"params {self.params_digest[:12]}", weights]
        if self.warm_start:
            parts.append(f"warm start: {self.warm_start}")
        return "; ".join(parts)


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def params_digest(record: Mapping[str, Any], variant: str | None) -> str:
    """SHA-256 of the resolved run record (``hourglass.train.run_config.run_record``) and its variant's name: two
    runs share it exactly when they were asked for the same thing."""
    payload = json.dumps({"variant": variant, "record": record}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _relative(path: Path, root: Path) -> str:
    """``path`` as dvc.lock writes it: POSIX, relative to the project root."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix() if path.is_absolute() else path.as_posix()
    except ValueError:
        return path.as_posix()


def dvc_locked_hash(data_dir: str | Path, root: str | Path | None = None) -> str | None:
    """The hash ``dvc.lock`` records for ``data_dir`` as the output of the stage that produced it (see the module
    docstring for why not the train stage's dependency entry); None without a lock file or such an entry."""
    root = Path.cwd() if root is None else Path(root)
    try:
        document = yaml.safe_load((root / DVC_LOCK).read_text())
    except (OSError, yaml.YAMLError):
        return None
    stages = document.get("stages") if isinstance(document, Mapping) else None
    if not isinstance(stages, Mapping):
        return None
    wanted = _relative(Path(data_dir), root).rstrip("/")
    for stage in stages.values():
        for out in (stage.get("outs") if isinstance(stage, Mapping) else None) or []:
            if isinstance(out, Mapping) and str(out.get("path", "")).rstrip("/") == wanted:
                value = out.get("md5") or out.get(str(out.get("hash", "")))
                return str(value) if value else None
    return None


def compute_lineage(params: ParamsConfig, record: Mapping[str, Any], variant: str | None, *,
                    people: Mapping[str, int | None], data_fingerprint: str | None = None,
                    data_dir: str | Path | None = None, initialised: Mapping[str, Any] | None = None,
                    warm_start: str | None = None, root: str | Path | None = None) -> Lineage:
    """The lineage of a training run of ``params`` (variant applied) whose resolved record is ``record`` (before the
    lineage is added to it), training and validating on ``people`` (``{"train": n, "valid": m}``), reading
    ``data_dir`` (default ``data/processed/<dataset>``) whose preprocessing fingerprint is ``data_fingerprint``,
    started from ``initialised`` (``InitReport.to_dict()``, None: random weights) with ``warm_start`` the warm
    start's outcome; git and ``dvc.lock`` are read at ``root`` (default: the working directory, the project root
    under DVC)."""
    root = Path.cwd() if root is None else Path(root)
    data_dir = Path("data/processed") / params.dataset if data_dir is None else Path(data_dir)
    initialised = initialised or {}
    return Lineage(
        dataset=params.dataset, card_digest=params.card().digest(),
        params_digest=params_digest(record, variant), data_fingerprint=data_fingerprint,
        dvc_md5=dvc_locked_hash(data_dir, root),
        people_train=people.get("train"), people_valid=people.get("valid"),
        git_commit=head_commit(root), git_dirty=has_uncommitted_changes(root, ignore=(DVC_LOCK,)),
        init_source=initialised.get("source"), init_sha256=initialised.get("sha256"), warm_start=warm_start)


def lineage_of_config(config: Mapping[str, Any] | None) -> Lineage | None:
    """The lineage a run's config (``config.yaml``, a checkpoint's ``config``) holds; None for a model trained before
    lineage was recorded, or not by this project's training."""
    return Lineage.from_record((config or {}).get(RECORD_KEY))


def version_lineage(tracking_uri: str, name: str, version: str | int) -> Lineage | None:
    """The lineage registered version ``version`` of ``name`` holds in its ``lineage.*`` tags (None: it holds none,
    e.g. an imported model). A missing version is MLflow's error."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return Lineage.from_tags(client.get_model_version(name, str(version)).tags)
