"""Where a trained model lives: ``models/<variant>/seed-<n>/``, one directory per variant and training seed.

dvc.yaml's ``train`` and ``evaluate`` stages are a matrix of the sweep's variants and ``seeds``; DVC names them
``train@<variant>-<seed>`` and ``evaluate@<variant>-<seed>``. Every reader of a model directory (evaluate, the report,
the flow's champion contest) finds it through these functions, so the layout has one definition.
"""

from __future__ import annotations

import re
from pathlib import Path

MODELS = Path("models")
SEED_PREFIX = "seed-"
_SEED_DIR = re.compile(r"^seed-(0|[1-9][0-9]*)$")


def seed_dir_name(seed: int) -> str:
    """``seed-3``: the directory of training seed ``seed`` under its variant's directory."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"a training seed is an integer >= 0, got {seed!r}")
    return f"{SEED_PREFIX}{seed}"


def model_dir(variant: str, seed: int, root: str | Path = MODELS) -> Path:
    """``<root>/<variant>/seed-<seed>``: what ``train@<variant>-<seed>`` writes and ``evaluate@<variant>-<seed>``
    reads."""
    return Path(root) / variant / seed_dir_name(seed)


def seed_of_dir(name: str) -> int | None:
    """The seed a directory name stands for (``seed-3`` -> 3), None for any other name."""
    match = _SEED_DIR.match(name)
    return int(match.group(1)) if match else None


def seed_dirs(variant_dir: str | Path) -> dict[int, Path]:
    """The ``seed-<n>`` directories under ``variant_dir`` by seed, in increasing seed order (empty when none)."""
    root = Path(variant_dir)
    if not root.is_dir():
        return {}
    found = {seed: path for path in root.iterdir() if path.is_dir() and (seed := seed_of_dir(path.name)) is not None}
    return dict(sorted(found.items()))


def stage_item(variant: str, seed: int) -> str:
    """DVC's name for one item of the matrix: ``hg-0`` (so the stages are ``train@hg-0``, ``evaluate@hg-0``)."""
    return f"{variant}-{seed_dir_name(seed)[len(SEED_PREFIX):]}"


def parse_stage_item(item: str) -> tuple[str, int] | None:
    """``hg_int-1`` -> ("hg_int", 1): the variant and seed of a matrix item (the seed follows the last '-', since
    variant names may hold '-' themselves); None when the item does not end in ``-<seed>``."""
    variant, dash, seed = item.rpartition("-")
    if not dash or not variant or seed_of_dir(f"{SEED_PREFIX}{seed}") is None:
        return None
    return variant, int(seed)
