"""The base of every params section, and the checks several sections share."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
)


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

def _relative_posix(value: str) -> str:
    """A path inside the dataset directory: relative, no ``..``, so params never point a write elsewhere."""
    parts = value.replace("\\", "/").split("/")
    if not value or value.startswith(("/", "\\")) or ".." in parts:
        raise ValueError(f"must be a relative path without '..' (got {value!r})")
    return value

def _check_names(kind: str, names: Any) -> None:
    """Names become directory and DVC stage names (models/<name>/, train@<name>)."""
    for name in names:
        if not name or not all(c.isalnum() or c in "_-" for c in name):
            raise ValueError(f"{kind} name {name!r} must be non-empty letters, digits, '_' or '-'")
