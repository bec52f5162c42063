"""The dataset family of a run: which keypoints, flip permutation, metric and headline numbers apply.

Built once from the run's dataset card (:mod:`hourglass.dataset_card`) by :func:`family_of`; every stage, the report
and the champion check take what they need from the returned object, so a synthetic FLIC run is scored with FLIC's
PCK@0.2 everywhere, never with MPII's PCKh by accident, and a user's card with K keypoints is scored as its card says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from hourglass.config import ParamsConfig
from hourglass.dataset_card import DatasetCard, card_from_record, load_card
from hourglass.joints import JointSet
from hourglass.metrics import PCKResult, normalized_errors, pck_from_errors, subset_accuracy

# What the per-person normaliser is, by the card's measure.normalize, in the words of the report ("within 0.5 ...").
UNITS = {"head": "head sizes", "torso": "torso sizes", "box": "box sizes (the box's longer side)"}


@dataclass(frozen=True)
class DatasetFamily:
    """Everything that differs between datasets, in one place (built from the card by :func:`family_from_card`)."""

    card: DatasetCard
    name: str  # the card's name: 'mpii', 'synthetic', a user's 'hands'
    joints: JointSet  # keypoint order, flip permutation, limbs
    metric: str  # the headline metric as people write it: 'PCKh@0.5'
    prefix: str  # metric names logged by training: '<prefix>/Mean', '<prefix>/joint/<name>'
    threshold: float
    unit: str  # what the normaliser is, plural: 'head sizes'
    groups: Mapping[str, tuple[str, ...]]  # table columns: group -> joints averaged into it
    figure4_joints: tuple[str, ...]  # the ablation figure's accuracy: mean over these joints
    figure4_label: str
    mean_note: str  # what the Mean column averages
    mean_joints: tuple[int, ...]  # the keypoints the Mean pools
    curve_thresholds: np.ndarray
    mean_at_0_1: bool  # the Mean at threshold 0.1 is reported too (MPII's PCKh@0.1)

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

    def score(self, pred: np.ndarray, gt: np.ndarray, annotated: np.ndarray, normalize: np.ndarray,
              threshold: float | None = None) -> PCKResult:
        """The family's metric of (N, J, 2) predictions (threshold defaults to the family's)."""
        errors = normalized_errors(pred, gt, annotated, normalize)
        if errors.shape[1] != self.joints.count:
            raise ValueError(f"{self.name}: {self.metric} needs {self.joints.count} keypoints, got {errors.shape[1]}")
        return pck_from_errors(errors, self.joints, self.groups, self.mean_joints,
                               self.threshold if threshold is None else threshold, self.curve_thresholds,
                               mean_at_0_1=self.mean_at_0_1)

    @property
    def figure4_words(self) -> tuple[str, ...]:
        """The table groups of the ablation keypoints, in lower case and order: ('wrist', 'elbow', ...)."""
        owner = {j: group for group, members in self.groups.items() for j in members}
        return tuple(dict.fromkeys(owner.get(j, j).lower() for j in self.figure4_joints))

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
        raise ValueError(f"flows.champion_metric: {name!r} is not logged by runs on {self.name!r} "
                         f"(their headline is {self.headline!r}; others start with {self.prefix + '/'!r})")


def family_from_card(card: DatasetCard) -> DatasetFamily:
    """The family a card describes: its keypoints as a :class:`JointSet`, its measure as the scorer's settings."""
    m = card.measure
    joints = JointSet(name=card.name, names=card.keypoints, flip=card.flip_permutation, limbs=card.limbs,
                      sides=card.keypoint_sides, observer=card.sides == "observer")
    threshold = float(m.threshold)
    metric = f"{m.metric}@{threshold:g}"
    excluded = set(m.mean_excludes)
    mean_joints = tuple(i for i, name in enumerate(card.keypoints) if name not in excluded)
    ablation = m.ablation_keypoints if m.ablation_keypoints is not None else card.keypoints
    curve = np.arange(round(m.curve_max * 100) + 1) / 100.0  # i/100: every threshold the correctly rounded decimal
    curve.setflags(write=False)
    every = "all" if not excluded else "all keypoints except " + ", ".join(m.mean_excludes) + ","
    return DatasetFamily(
        card=card, name=card.name, joints=joints, metric=metric, prefix=f"val/{m.metric.lower()}",
        threshold=threshold, unit=UNITS[m.normalize], groups=card.table_groups, figure4_joints=tuple(ablation),
        figure4_label=m.ablation_label or f"{metric} averaged over every keypoint",
        mean_note=m.mean_note or f"left and right averaged; Mean over {every} {len(mean_joints)} keypoints, "
                                 "weighted by keypoint count",
        mean_joints=mean_joints, curve_thresholds=curve, mean_at_0_1=m.mean_at_0_1,
    )


def family_named(dataset: str) -> DatasetFamily:
    """The family of the card called ``dataset`` (``datasets/<dataset>.yaml``)."""
    return family_from_card(load_card(dataset))


def family_of(params: ParamsConfig) -> DatasetFamily:
    """The family of a validated config: its ``dataset`` card's."""
    return family_from_card(params.card())


def family_of_checkpoint(config: Mapping | None, card: Mapping | None = None) -> DatasetFamily:
    """The family a checkpoint's model was trained on: its stored card, else the card named by its stored config
    (checkpoints from before cards: ``dataset`` and ``synthetic.joint_set``)."""
    config = config or {}
    legacy = (config.get("synthetic") or {}).get("joint_set")
    return family_from_card(card_from_record(card, config.get("dataset"), legacy))


def champion_metric(params: ParamsConfig) -> str:
    """The metric the champion contest compares: ``flows.champion_metric``, else the evaluate stage's flip-test Mean
    (the report's number); one that the family's runs do not log is an error naming the key."""
    family = family_of(params)
    name = params.flows.champion_metric or family.eval_headline
    family.check_metric(name)
    return name
