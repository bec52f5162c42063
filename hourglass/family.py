"""The dataset family of a run: which joints, flip permutation, metric and headline numbers apply.

Decided once, from the params (``dataset``, and for the synthetic people ``synthetic.joint_set``), by
:func:`family_of`; every stage, the report and the champion check take what they need from the returned object,
so a synthetic FLIC run is scored with FLIC's PCK@0.2 everywhere, never with MPII's PCKh by accident.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from hourglass.config import ParamsConfig
from hourglass.joints import FLIC, MPII, JointSet
from hourglass.metrics import (
    FLIC_GROUPS,
    FLIC_THRESHOLD,
    MPII_GROUPS,
    MPII_THRESHOLD,
    PCKResult,
    flic_pck,
    mpii_pckh,
    subset_accuracy,
)

Scorer = Callable[..., PCKResult]  # (pred, gt, annotated, normalize, threshold) -> PCKResult


@dataclass(frozen=True)
class DatasetFamily:
    """Everything that differs between MPII-style and FLIC-style data, in one place."""

    name: str  # 'mpii' | 'flic'
    joints: JointSet  # joint order, flip permutation, limbs
    metric: str  # the headline metric as people write it: 'PCKh@0.5'
    prefix: str  # metric names logged by training: '<prefix>/Mean', '<prefix>/joint/<name>'
    threshold: float
    unit: str  # what the normaliser is, plural: 'head sizes'
    groups: Mapping[str, tuple[str, ...]]  # table columns: group -> joints averaged into it
    figure4_joints: tuple[str, ...]  # the ablation figure's accuracy: mean over these joints
    figure4_label: str
    mean_note: str  # what the Mean column averages
    scorer: Scorer

    @property
    def headline(self) -> str:
        """The per-epoch validation number (no flip test) that the plateau schedule and "best" follow."""
        return f"{self.prefix}/Mean"

    @property
    def eval_prefix(self) -> str:
        """Names of the evaluate stage's scores (flip test, every stack) in MLflow: ``eval/pckh/...``."""
        return "eval/" + self.prefix.split("/", 1)[1]

    @property
    def eval_headline(self) -> str:
        """The evaluate stage's Mean (flip test): the number the report shows and the champion contest compares."""
        return f"{self.eval_prefix}/Mean"

    def eval_metrics(self, final: Mapping[str, float | None],
                     stacks: list[Mapping[str, float | None]] = ()) -> dict[str, float]:
        """The evaluate stage's headline numbers as MLflow metric names: ``eval/pckh/Mean``, ``eval/figure4``,
        ``eval/stack1/pckh/Mean`` ... (null values, groups without annotated joints, are left out)."""
        tail = self.prefix.split("/", 1)[1]  # 'pckh'

        def names(values: Mapping[str, float | None]) -> dict[str, float]:
            return {("figure4" if key == "figure4" else f"{tail}/{key.replace('@', '_at_')}"): float(value)
                    for key, value in values.items() if value is not None}

        out = {f"eval/{name}": value for name, value in names(final).items()}
        for k, values in enumerate(stacks, start=1):
            out.update({f"eval/stack{k}/{name}": value for name, value in names(values).items()})
        return out

        out = names(self.eval_prefix, final)
        for k, values in enumerate(stacks, start=1):
            out.update({f"eval/stack{k}/{name[len('eval/'):]}": v for name, v in names(self.eval_prefix,
                                                                                        values).items()})
        return out

    def score(self, pred: np.ndarray, gt: np.ndarray, annotated: np.ndarray, normalize: np.ndarray,
              threshold: float | None = None) -> PCKResult:
        """The family's metric of (N, J, 2) predictions (threshold defaults to the family's)."""
        return self.scorer(pred, gt, annotated, normalize, self.threshold if threshold is None else threshold)

    def figure4(self, result: PCKResult) -> float:
        """The ablation accuracy of ``result``: its mean over :attr:`figure4_joints`."""
        return subset_accuracy(result, self.joints, self.figure4_joints)

    def validation_metrics(self, result: PCKResult) -> dict[str, float]:
        """``result`` as flat metric names MLflow accepts ('@' is not one of its characters)."""
        out = {f"{self.prefix}/{k.replace('@', '_at_')}": float(v) for k, v in result.as_dict().items()}
        joints = zip(result.joint_names, result.per_joint, strict=True)
        out.update({f"{self.prefix}/joint/{name}": float(v) for name, v in joints})
        out["val/figure4"] = self.figure4(result)
        return out

    def check_metric(self, name: str) -> None:
        """A champion metric must be one this family's runs log (``val/figure4``, ``val/loss`` or ``<prefix>/...``);
        ``val/pckh/Mean`` on a FLIC run would compare nothing."""
        if name in ("val/figure4", "val/loss", "eval/figure4") or name.startswith(
                (self.prefix + "/", self.eval_prefix + "/")):
            return
        raise ValueError(f"flows.champion_metric: {name!r} is not logged by {self.name.upper()}-family runs "
                         f"(their headline is {self.headline!r}; others start with {self.prefix + '/'!r})")


# The paper's ablation accuracy on MPII: "average PCKh across wrists, elbows, knees and ankles" (the harder joints).
MPII_FIGURE4_JOINTS = ("l_wrist", "r_wrist", "l_elbow", "r_elbow", "l_knee", "r_knee", "l_ankle", "r_ankle")
# On FLIC the paper reports elbows and wrists only.
FLIC_FIGURE4_JOINTS = ("l_elbow", "r_elbow", "l_wrist", "r_wrist")

MPII_FAMILY = DatasetFamily(
    name="mpii", joints=MPII, metric="PCKh@0.5", prefix="val/pckh", threshold=MPII_THRESHOLD, unit="head sizes",
    groups=MPII_GROUPS, figure4_joints=MPII_FIGURE4_JOINTS,
    figure4_label="PCKh@0.5 averaged over wrists, elbows, knees and ankles, as in the paper",
    mean_note="left and right averaged; Mean over all joints except pelvis and thorax, weighted by joint count",
    scorer=mpii_pckh,
)

FLIC_FAMILY = DatasetFamily(
    name="flic", joints=FLIC, metric="PCK@0.2", prefix="val/pck", threshold=FLIC_THRESHOLD, unit="torso sizes",
    groups=FLIC_GROUPS, figure4_joints=FLIC_FIGURE4_JOINTS,
    figure4_label="PCK@0.2 averaged over elbows and wrists, the joints the paper reports on FLIC",
    mean_note="left and right averaged; Mean over all 11 joints",
    scorer=flic_pck,
)

FAMILIES: Mapping[str, DatasetFamily] = {"mpii": MPII_FAMILY, "flic": FLIC_FAMILY}


def family_for(dataset: str, joint_set: str) -> DatasetFamily:
    """The rule: a real dataset is its own family; the synthetic people are whichever joint set they were drawn
    with. (Raw values, for a checkpoint's stored config; use :func:`family_of` on a validated config.)"""
    name = joint_set if dataset == "synthetic" else dataset
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"no dataset family {name!r} (dataset {dataset!r}); expected one of "
                         f"{sorted(FAMILIES)}") from None


def family_of(params: ParamsConfig) -> DatasetFamily:
    """The family of a validated config."""
    return family_for(params.dataset, params.synthetic.joint_set)


def champion_metric(params: ParamsConfig) -> str:
    """The metric the champion contest compares: ``flows.champion_metric``, else the evaluate stage's flip-test Mean
    (the report's number); one that the family's runs do not log is an error naming the key."""
    family = family_of(params)
    name = params.flows.champion_metric or family.eval_headline
    family.check_metric(name)
    return name
