"""The small models and images the predict tests run on, and the command line they call."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from shipped import recipe_raw

from hourglass.cli import main
from hourglass.config.params_file import parse_params
from hourglass.io.checkpoint import save_checkpoint
from hourglass.model import create_model


def make_checkpoint(path: Path, stacks: int = 1, features: int = 32, input_res: int = 64, seed: int = 0,
                    overrides: dict | None = None, extra: dict | None = None, joints: int = 16) -> Path:
    """A small untrained network saved as training saves one (weights + resolved params, the MPII recipe with
    ``overrides``; ``extra`` checkpoint entries such as ``history``); returns the path."""
    params = parse_params(recipe_raw("mpii", {"model": {"stacks": stacks, "features": features,
                                                                 "input_res": input_res}, **(overrides or {})}))
    torch.manual_seed(seed)
    model = create_model(stacks=stacks, features=features, joints=joints)
    save_checkpoint({"model": model.state_dict(), "config": params.model_dump(mode="json"), "variant": "tiny",
                     "epoch": 1, **(extra or {})}, path)
    return path


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Photo-like RGB content (blurred noise), so crops are not flat."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def cli(*args: str) -> int:
    return main(["predict", *args, "--precision", "fp32", "--no-progress"])
