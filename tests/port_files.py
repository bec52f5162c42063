"""Checkpoint files in the official PyTorch port's layout, made from one of our networks with the importer's own key
map inverted (so tests that need a release-shaped file do not need the anchor data's fixture). The golden test of
the map itself is tests/test_port_import.py, against a file written by the port's code."""

from __future__ import annotations

from pathlib import Path

import torch

from hourglass.model import create_model
from hourglass.weights.port_keys import PORT_STEM_CHANNELS, PortArchitecture, port_key_map


def write_port_checkpoint(path: Path, stacks: int = 1, features: int = 16, joints: int = 16, seed: int = 0,
                          epoch: int = 3) -> Path:
    """A ``train.py``-style file ``{'state_dict', 'optimizer', 'epoch'}`` with keys under ``model.module.``."""
    arch = PortArchitecture(stacks=stacks, features=features, joints=joints, stem_width=2 * PORT_STEM_CHANNELS)
    torch.manual_seed(seed)
    ours = create_model(**arch.network_kwargs()).state_dict()
    mapping, _unused = port_key_map(arch)
    state = {f"model.module.{port}": ours[key].clone() for key, port in mapping.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "optimizer": {}, "epoch": epoch}, path)
    return path
