"""The params.yaml schema: one validated config object, built once and passed down.

Nothing else reads params.yaml. Every section forbids unknown keys, so a typo fails loudly with the dotted key
path and, for choices, the allowed values (pydantic's messages), e.g.::

    params.yaml: model.supervision: Input should be 'intermediate', 'final' or 'add' (got 'inter')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(Section):
    """The network (hourglass.model.create_model); joints come from the dataset."""

    stacks: int = Field(8, ge=1)
    features: int = Field(256, ge=4, multiple_of=4)
    modules: int = Field(1, ge=1)
    supervision: Literal["intermediate", "final", "add"] = "intermediate"
    input_res: int = Field(256, ge=64, multiple_of=64)


class TargetConfig(Section):
    """Heatmap targets and decoding (hourglass.heatmaps)."""

    sigma: float = Field(1.75, gt=0)
    flip_test: bool = True
    flip_shift: bool = False  # HRNet's 1-px shift of the flipped heatmap; not in the original


class ParamsConfig(Section):
    """The whole params.yaml. Sections are added here as the stages that read them are built."""

    dataset: Literal["synthetic", "mpii", "flic"] = "synthetic"
    seed: int = 0
    model: ModelConfig = ModelConfig()
    targets: TargetConfig = TargetConfig()


class ConfigError(ValueError):
    """params.yaml is missing, unreadable or invalid; the message names the file and every bad key."""


def _format(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: {len(err.errors())} invalid value(s)"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<top level>"
        got = f" (got {e['input']!r})" if e["type"] not in ("missing",) and not isinstance(e["input"], dict) else ""
        lines.append(f"  {key}: {e['msg']}{got}")
    return "\n".join(lines)


def parse_params(raw: dict[str, Any], source: str | Path = "params.yaml") -> ParamsConfig:
    """Validate an already-parsed params mapping."""
    try:
        return ParamsConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format(Path(source), err)) from None


def load_params(path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> ParamsConfig:
    """Read and validate ``path``; ``overrides`` maps dotted keys to values (``{"model.stacks": 2}``)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return parse_params(raw, path)


def dump_params(config: ParamsConfig, path: str | Path) -> None:
    """Write the resolved config beside an output (timm-style), so every artefact says what made it."""
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
