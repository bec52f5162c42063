"""Model size, training time and throughput: one :class:`CostRow` per variant, or per variant and seed when the
variants were trained from several seeds."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hourglass.family import DatasetFamily
from hourglass.report.inputs import SeedRun, VariantRun, finite, mean_of

COST_KEYS = ("parameters", "train_hours", "train_img_per_s", "eval_img_per_s")  # summary.json's, per variant


def training_hours(run: SeedRun | VariantRun) -> float | None:
    """Optimiser time summed over epochs (steps x batch / measured img/s), excluding validation."""
    batch = finite(((run.config or {}).get("train") or {}).get("batch_size"))
    if not run.epochs or batch is None:
        return None
    seconds, last_step = 0.0, 0.0
    for row in run.epochs:
        step, rate = row.get("step", math.nan), row.get("train/img_s", math.nan)
        if not (math.isfinite(step) and math.isfinite(rate) and rate > 0):
            return None
        seconds += (step - last_step) * batch / rate
        last_step = step
    return seconds / 3600.0


def mean_train_throughput(run: SeedRun | VariantRun) -> float | None:
    rates = [r.get("train/img_s", math.nan) for r in run.epochs or []]
    rates = [r for r in rates if math.isfinite(r)]
    return float(np.mean(rates)) if rates else None


def parameter_count(run: SeedRun | VariantRun, joints: int) -> tuple[int | None, str]:
    """From the evaluation when it recorded one, else counted from the resolved config on torch's meta device."""
    if run.eval and finite(run.eval.get("parameters")) is not None:
        return int(run.eval["parameters"]), "evaluate"
    model = (run.config or {}).get("model")
    if not isinstance(model, Mapping):
        return None, "n/a"
    import torch

    from hourglass.config import ModelConfig
    from hourglass.model import count_parameters, create_model

    try:
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            network = create_model(**ModelConfig.model_validate(model).network_kwargs(), joints=joints)
    except (KeyError, TypeError, ValueError):
        return None, "n/a"
    return count_parameters(network), "config"



@dataclass(frozen=True)
class CostRow:
    """One row of the costs table: a variant (its seeds averaged) or one training seed of it (``seed_row``)."""

    name: str
    seed: int | None
    seed_row: bool
    stacks: Any  # the resolved config's model.stacks, as written
    parameters: int | None
    parameters_from: str  # 'evaluate' (the evaluation counted them), 'config' (counted here) or 'n/a'
    epochs: int | None
    steps: float | None
    train_hours: float | None
    train_img_per_s: float | None
    eval_img_per_s: float | None
    eval_seconds: float | None
    best_mean: float | None  # the best per-epoch validation Mean training recorded
    best_epoch: float | None
    mlflow_run: str | None

    def costs(self) -> dict[str, float | int | None]:
        """summary.json's numbers of this row."""
        return {k: getattr(self, k) for k in COST_KEYS}


def cost_row(run: SeedRun | VariantRun, family: DatasetFamily, seed_row: bool) -> CostRow:
    """``run``'s costs row: its parameter count, training time and throughputs, and what training recorded."""
    parameters, how = parameter_count(run, family.joints.count)
    ev, tm = run.eval or {}, run.train_metrics or {}
    return CostRow(name=run.name, seed=getattr(run, "seed", None), seed_row=seed_row,
                   stacks=((run.config or {}).get("model") or {}).get("stacks"), parameters=parameters,
                   parameters_from=how, epochs=len(run.epochs) if run.epochs else None,
                   steps=finite(tm.get("steps")), train_hours=training_hours(run),
                   train_img_per_s=mean_train_throughput(run), eval_img_per_s=finite(ev.get("images_per_s")),
                   eval_seconds=finite(ev.get("seconds")), best_mean=finite(tm.get(f"best/{family.prefix}/Mean")),
                   best_epoch=finite(tm.get("best/epoch")), mlflow_run=run.mlflow_run)


def cost_rows(variant: VariantRun, family: DatasetFamily, by_seed: bool) -> list[CostRow]:
    """The variant's row (its seed-averaged files), or with ``by_seed`` one row per training seed."""
    if by_seed and variant.seeds:
        return [cost_row(seed, family, True) for seed in variant.seeds]
    return [cost_row(variant, family, False)]


def variant_costs(rows: list[CostRow]) -> dict[str, float | int | None]:
    """A variant's costs from its rows: the one row's, or over its seeds' rows the last seed's parameter count and
    the mean training time and throughputs."""
    if not rows[0].seed_row:
        return rows[0].costs()
    return {"parameters": rows[-1].parameters,
            **{k: mean_of([getattr(r, k) for r in rows]) for k in ("train_hours", "train_img_per_s",
                                                                   "eval_img_per_s")}}
