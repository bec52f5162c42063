"""The shipped recipes' wall-clock on this device, projected from a measured training rate.

``recipes/mpii.yaml`` and ``recipes/flic.yaml`` as shipped (epochs x steps_per_epoch x batch_size samples): measured
when the timed network and batch are the recipe's, otherwise scaled by the training FLOPs per sample (counted by
torch's FlopCounterMode on the meta device), for the recipe's network and for its whole sweep.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from hourglass.config import ModelConfig, ParamsConfig
from hourglass.config.recipes import load_with_recipe
from hourglass.family import family_of
from hourglass.model import create_model
from hourglass.train.criterion import build_criterion
from hourglass.train.run_config import resolve_variant

RECIPES = ("mpii", "flic")
MEASURED_JOINTS = 16  # the generated people are MPII-like


@functools.cache
def _train_gflop(stacks: int, features: int, modules: int, supervision: str, stem_width: int, joints: int,
                 res: int) -> float:
    with torch.device("meta"):
        network = create_model(stacks=stacks, features=features, modules=modules, supervision=supervision,
                               stem_width=stem_width, joints=joints)
        # two samples: BatchNorm in training mode refuses one value per channel (a 64 px input's 1x1 bottom)
        images = torch.empty(2, 3, res, res)
        target = torch.empty(2, joints, res // 4, res // 4)
    with FlopCounterMode(display=False) as counter:
        build_criterion(network.config.supervision)(network(images), target).backward()
    return counter.get_total_flops() / 2 / 1e9


def train_gflop(model: ModelConfig, joints: int) -> float:
    """Forward + backward GFLOP of one training sample of ``model`` (FlopCounterMode on the meta device)."""
    return _train_gflop(model.stacks, model.features, model.modules, model.supervision, model.stem_width, joints,
                        model.input_res)


def _same_network(a: ModelConfig, b: ModelConfig) -> bool:
    return a.network_kwargs() == b.network_kwargs() and a.input_res == b.input_res


def _hours(model: ModelConfig, recipe: ParamsConfig, measured: ParamsConfig, rate: float | None,
           gflop: float) -> tuple[float | None, str]:
    """Hours of ``recipe``'s samples for ``model`` at ``rate`` samples/s of the ``measured`` network, and how that
    was found (measured, or scaled by FLOPs)."""
    if rate is None:
        return None, "not measured"
    cfg, joints = recipe.train, family_of(recipe).joints.count
    samples = cfg.epochs * cfg.steps_per_epoch * cfg.batch_size
    if _same_network(model, measured.model) and cfg.batch_size == measured.train.batch_size \
            and joints == MEASURED_JOINTS:
        return samples / rate / 3600, "measured"
    ratio = train_gflop(model, joints) / gflop
    # A smaller network computes fewer FLOP/s (per-layer overheads weigh more), so scaling from one is
    # pessimistic, the more so the larger the ratio.
    return samples * ratio / rate / 3600, f"scaled by FLOPs from the measured network ({ratio:,.3g}x)"


def project(params_path: Path, measured: ParamsConfig, figures: dict[str, Any], gflop: float) -> dict[str, Any]:
    """The shipped recipes' wall-clock on this device at the fast path's measured rate ``figures["samples_s"]`` of
    the ``measured`` network (``gflop`` per training sample), see the module docstring."""
    out: dict[str, Any] = {}
    rate = figures.get("samples_s") if figures.get("ok") else None
    for name in RECIPES:
        recipe = load_with_recipe(params_path, name)
        cfg, joints = recipe.train, family_of(recipe).joints.count
        if cfg.steps_per_epoch is None:
            out[name] = {"error": "train.steps_per_epoch is null: the samples per epoch depend on the data"}
            continue
        model_hours, basis = _hours(recipe.model, recipe, measured, rate, gflop)
        variants = {}
        for variant in recipe.sweep:
            variant_hours, variant_basis = _hours(resolve_variant(recipe, variant).model, recipe, measured, rate,
                                                  gflop)
            variants[variant] = {"hours": variant_hours, "basis": variant_basis}
        sweep_hours = None if rate is None else sum(v["hours"] for v in variants.values()) * len(recipe.seeds)
        out[name] = {
            "samples": cfg.epochs * cfg.steps_per_epoch * cfg.batch_size, "epochs": cfg.epochs,
            "steps_per_epoch": cfg.steps_per_epoch, "batch_size": cfg.batch_size,
            "network": recipe.model.network_kwargs() | {"input_res": recipe.model.input_res},
            "gflop_per_sample": train_gflop(recipe.model, joints), "hours": model_hours, "basis": basis,
            "sweep": list(recipe.sweep), "seeds": list(recipe.seeds), "variants": variants, "sweep_hours": sweep_hours,
        }
    return out
