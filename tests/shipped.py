"""The shipped configurations as tests start from them: params.yaml (the CPU preset, complete: the schema has no
defaults) and the recipes applied to it, each with a test's own overrides merged in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hourglass.config import ParamsConfig, Section
from hourglass.config.params_file import parse_params
from hourglass.config.recipes import composed_params, recipe_path

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"


def merge(base: dict, extra: dict) -> dict:
    """``base`` with ``extra``'s keys replaced, recursing into mappings present in both."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def preset_raw(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """params.yaml as a plain mapping (a fresh copy), with ``overrides`` merged in."""
    return merge(yaml.safe_load(PARAMS.read_text()), overrides or {})


def preset(overrides: dict[str, Any] | None = None) -> ParamsConfig:
    """The validated CPU preset with ``overrides``."""
    return parse_params(preset_raw(overrides), "params.yaml + test overrides")


def recipe_raw(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """params.yaml with ``recipes/<name>.yaml`` applied, as ``python -m pipeline.recipe <name>`` writes it."""
    return merge(composed_params(PARAMS, recipe_path(name, REPO / "recipes")), overrides or {})


def recipe(name: str, overrides: dict[str, Any] | None = None) -> ParamsConfig:
    return parse_params(recipe_raw(name, overrides), f"recipes/{name}.yaml + test overrides")


def section(name: str, **overrides: Any) -> Section:
    """One section of the preset (``section("augment", flip_prob=0.5)``)."""
    return getattr(preset({name: overrides}), name)


def paper(name: str, **overrides: Any) -> Section:
    """One section as the MPII recipe makes it: the paper's values (``paper("augment")`` augments as the original)."""
    return getattr(recipe("mpii", {name: overrides}), name)


def write_params(path: Path, overrides: dict[str, Any] | str, base: str = "mpii") -> Path:
    """Write a complete params file: ``base`` (a recipe name, or "preset" for params.yaml as it is) with a test's
    ``overrides`` (a mapping, or YAML text) merged in. A base with ``steps_per_epoch`` keeps it unless overridden."""
    extra = yaml.safe_load(overrides) if isinstance(overrides, str) else overrides
    raw = preset_raw(extra) if base == "preset" else recipe_raw(base, extra)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
