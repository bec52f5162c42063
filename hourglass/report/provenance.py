"""Provenance: what the report was made from (the params file and its digest, the git commit, the data version,
each run's resolved params) and when."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from hourglass.io.digest import file_sha256
from hourglass.io.git import has_uncommitted_changes, head_commit
from hourglass.report.inputs import VariantRun


def git_state(cwd: Path | None = None) -> str:
    """``<commit>`` (plus "with uncommitted changes" when the tree is dirty), or a sentence saying why not."""
    head = head_commit(cwd)
    if head is None:
        return "unknown (not a git checkout, or git is unavailable)"
    return f"`{head}`" + (" with uncommitted changes" if has_uncommitted_changes(cwd) else "")


def data_version(dataset: str, dvc_lock: Path, annot_dir: Path) -> str:
    """The md5 DVC recorded for ``data/processed/<dataset>``, else sha256 digests of the annotation files."""
    target = f"data/processed/{dataset}"
    if dvc_lock.is_file():
        try:
            lock = yaml.safe_load(dvc_lock.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            lock = None
        lock = lock if isinstance(lock, dict) else {}
        for stage, spec in (lock.get("stages") or {}).items():
            for out in (spec or {}).get("outs") or []:
                if isinstance(out, Mapping) and str(out.get("path", "")).rstrip("/") == target and out.get("md5"):
                    return f"`{target}` md5 `{out['md5']}` (dvc.lock, stage `{stage}`)"
    digests = [f"`{p.name}` sha256 `{file_sha256(p)[:16]}`" for p in sorted(annot_dir.glob("*.h5"))]
    if digests:
        return f"no `{target}` entry in dvc.lock; annotation files in `{annot_dir}`: " + ", ".join(digests)
    return f"unknown (no dvc.lock entry for `{target}` and no annotation files in `{annot_dir}`)"


@dataclass(frozen=True)


class ResolvedParams:
    """One run's ``config.yaml`` (the params it ran with) and the first 16 hex digits of its SHA-256."""

    label: str  # how the report names the run: ``hg``, or ``hg seed 1`` when variants have several seeds
    path: Path
    sha256: str


@dataclass(frozen=True)


class Provenance:
    """Everything the report's provenance table and params dump show."""

    params_path: Path
    params_text: str
    params_sha256: str  # of the text as read (summary.json's params_sha256)
    git: str
    data: str
    generated: str  # UTC time of the report, for the reader only: summary.json holds no date
    resolved: tuple[ResolvedParams, ...]


def provenance(params_path: Path, dataset: str, dvc_lock: Path, annot_dir: Path, runs: Sequence[VariantRun],
               by_seed: bool) -> Provenance:
    """The report's provenance; ``by_seed``: name each run with its seed (variants trained from several seeds)."""
    params_text = params_path.read_text(encoding="utf-8")
    resolved = []
    for run in (seed for variant in runs for seed in variant.seeds):
        config = run.path / "config.yaml"
        if config.is_file():
            resolved.append(ResolvedParams(run.label if by_seed else run.name, config, file_sha256(config)[:16]))
    return Provenance(params_path=params_path, params_text=params_text,
                      params_sha256=hashlib.sha256(params_text.encode()).hexdigest(),
                      git=git_state(params_path.resolve().parent), data=data_version(dataset, dvc_lock, annot_dir),
                      generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
                      resolved=tuple(resolved))
