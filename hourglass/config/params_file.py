"""Reading params.yaml into the validated schema of :mod:`hourglass.config`; nothing else reads it.

A bad file raises one :class:`ConfigError` that names the file and every bad key with its dotted path and, for
choices, the allowed values (pydantic's messages), e.g.::

    params.yaml: model.supervision: Input should be 'intermediate', 'final', 'add' or 'resolutions' (got 'inter')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hourglass.config import ParamsConfig


class ConfigError(ValueError):
    """params.yaml is missing, unreadable or invalid; the message names the file and every bad key."""


def _format(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: {len(err.errors())} invalid value(s)"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<top level>"
        if e["type"] == "missing":
            lines.append(f"  {key}: missing; every setting must be written in the params file (there are no "
                         "defaults: see params.yaml)")
            continue
        got = f" (got {e['input']!r})" if not isinstance(e["input"], dict) else ""
        lines.append(f"  {key}: {e['msg']}{got}")
    return "\n".join(lines)


def parse_params(raw: dict[str, Any], source: str | Path = "params.yaml") -> ParamsConfig:
    """Validate an already-parsed params mapping; its dataset cards are looked up in ``datasets/`` beside
    ``source`` first."""
    try:
        return ParamsConfig.model_validate(raw, context={"card_dirs": (Path(source).parent / "datasets",)})
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

