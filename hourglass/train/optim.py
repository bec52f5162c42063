"""Optimiser and learning-rate schedule factories.

The paper trains with RMSprop at 2.5e-4 and divides the rate by 5 once, after validation accuracy plateaus
(pose-hg-train ``opts.lua``: alpha 0.99, eps 1e-8, no momentum, no weight decay); ``plateau_max_drops`` bounds how
often the plateau rule may fire (1 in the recipe files). Adam is the option most
ports use; SGD with momentum is the third option. The schedule combines a per-step linear warm-up with a decay
(per epoch: plateau or step; per step: cosine), and keeps all of its state in plain numbers so a checkpoint restores
it exactly (and ``torch.load(weights_only=True)`` reads it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from hourglass.config import TrainConfig

# (parameters, config, implementation flags: fused= / foreach=, see hourglass.train.fastpath.optimizer_flags)
OptimizerFactory = Callable[..., torch.optim.Optimizer]


def _rmsprop(params: Iterable[nn.Parameter], cfg: TrainConfig, **flags: bool) -> torch.optim.Optimizer:
    # Torch7 optim.rmsprop adds eps outside the square root, like torch.optim.RMSprop.
    return torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=cfg.weight_decay,
                               **flags)


def _adam(params: Iterable[nn.Parameter], cfg: TrainConfig, **flags: bool) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **flags)


def _sgd(params: Iterable[nn.Parameter], cfg: TrainConfig, **flags: bool) -> torch.optim.Optimizer:
    # Unlike RMSprop and Adam, an SGD step is proportional to the gradient: near-zero gradients (the biases of
    # convolutions followed by BatchNorm) make near-zero steps instead of full-size steps of rounding noise.
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.sgd_momentum, weight_decay=cfg.weight_decay, **flags)


OPTIMIZERS: dict[str, OptimizerFactory] = {"rmsprop": _rmsprop, "adam": _adam, "sgd": _sgd}


def create_optimizer(model: nn.Module, cfg: TrainConfig, flags: Mapping[str, bool] | None = None
                     ) -> torch.optim.Optimizer:
    """The optimiser ``cfg.optimizer`` names, over the model's trainable parameters; ``flags`` choose its
    implementation (``{"fused": True}``, ``{"foreach": True}``, ``{"foreach": False}``; None: torch's default)."""
    try:
        factory = OPTIMIZERS[cfg.optimizer]
    except KeyError:
        raise ValueError(f"train.optimizer={cfg.optimizer!r}; expected one of {sorted(OPTIMIZERS)}") from None
    return factory((p for p in model.parameters() if p.requires_grad), cfg, **dict(flags or {}))


def set_implementation(optimizer: torch.optim.Optimizer, flags: Mapping[str, bool]) -> None:
    """Put the implementation ``flags`` back into every parameter group: ``load_state_dict`` replaces the groups'
    settings with the checkpoint's, ``fused``/``foreach`` included."""
    for group in optimizer.param_groups:
        group.update({"fused": None, "foreach": None} if "fused" in group else {"foreach": None})
        group.update(flags)
    if flags.get("fused"):  # fused kernels keep the step count on the parameter's device, in float32
        for param, state in optimizer.state.items():
            if isinstance(state.get("step"), torch.Tensor):
                state["step"] = state["step"].to(param.device, torch.float32)


class LearningRateSchedule:
    """lr(step, epoch) = base lr x warm-up factor(step) x decay factor, floored at ``min_lr``.

    * warm-up: linear from ``lr / warmup_steps`` to ``lr`` over the first ``warmup_steps`` optimiser steps;
    * ``plateau``: the decay factor is multiplied by ``plateau_factor`` when the validation metric (higher is
      better) has not improved by ``plateau_threshold`` for more than ``plateau_patience`` epochs, at most
      ``plateau_max_drops`` times (the paper: once; None: every time the rule fires);
    * ``step``: multiplied by ``step_factor`` at each of ``milestones`` (epochs completed);
    * ``cosine``: half a cosine from 1 after the warm-up to 0 at ``total_steps``, the run's last step. It fits any
      fixed budget without milestones to re-tune when the epoch count changes (NOTES.md compares it with a step
      decay tuned for one budget);
    * ``constant``: no decay.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int | None = None) -> None:
        if cfg.schedule == "cosine" and not total_steps:
            raise ValueError("train.schedule=cosine needs the run's total number of optimiser steps")
        self.optimizer = optimizer
        self.cfg = cfg
        self.total_steps = total_steps
        self.base_lr = cfg.lr
        self.decay = 1.0
        self.best = -math.inf
        self.bad_epochs = 0
        self.epochs_seen = 0
        self.drops = 0  # plateau decays so far

    def lr_at(self, step: int) -> float:
        """The rate for optimiser step ``step`` (0-based) under the current decay."""
        warm = self.cfg.warmup_steps
        factor = min(1.0, (step + 1) / warm) if warm else 1.0
        if self.cfg.schedule == "cosine":
            assert self.total_steps is not None
            progress = (step - warm) / max(1, self.total_steps - warm)
            factor *= 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, progress))))
        return max(self.base_lr * factor * self.decay, self.cfg.min_lr)

    def apply(self, step: int) -> float:
        """Set every parameter group's rate for ``step`` and return it."""
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def end_epoch(self, metric: float | None) -> bool:
        """Advance after an epoch with validation ``metric``; True when the rate was decayed."""
        self.epochs_seen += 1
        before = self.decay
        if self.cfg.schedule == "step":
            if self.epochs_seen in self.cfg.milestones:
                self.decay *= self.cfg.step_factor
        elif self.cfg.schedule == "plateau" and metric is not None and math.isfinite(metric):
            if metric > self.best + self.cfg.plateau_threshold:
                self.best, self.bad_epochs = metric, 0
            else:
                self.bad_epochs += 1
                limit = self.cfg.plateau_max_drops
                if self.bad_epochs > self.cfg.plateau_patience and (limit is None or self.drops < limit):
                    self.decay *= self.cfg.plateau_factor
                    self.drops += 1
                    self.bad_epochs = 0
        return self.decay != before

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "best": self.best, "bad_epochs": self.bad_epochs,
                "epochs_seen": self.epochs_seen, "drops": self.drops}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay = float(state["decay"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        self.epochs_seen = int(state["epochs_seen"])
        self.drops = int(state.get("drops", 0))  # checkpoints from before the bound existed


def create_schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                    total_steps: int | None = None) -> LearningRateSchedule:
    """The schedule of ``cfg``; ``total_steps`` (the run's last optimiser step + 1) is needed by ``cosine``."""
    return LearningRateSchedule(optimizer, cfg, total_steps)
