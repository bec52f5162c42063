"""The example figures' people: the variant with the best Mean, its seed with the best Mean, and its validation
people ranked from best to worst."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hourglass.family import DatasetFamily
from hourglass.io.annotations import AnnotationError, Annotations
from hourglass.io.eval_files import ReaderError, read_predictions
from hourglass.metrics import normalized_errors, within
from hourglass.report.inputs import SeedRun, VariantRun, final_scores

KINDS = ("best", "worst")
MIN_JOINTS = 4  # a person with fewer annotated joints is not ranked


@dataclass(frozen=True)
class Example:
    """One validation person chosen for the example figures."""

    row: int
    accuracy: float  # % of annotated joints within the threshold
    error: float  # mean normalised error over annotated joints (capped at 10 per joint)


def rank_people(pred: np.ndarray, gt: Annotations, threshold: float, min_joints: int = MIN_JOINTS
                ) -> tuple[list[Example], list[Example]]:
    """All people with at least ``min_joints`` annotated joints, best first and worst first."""
    errors = normalized_errors(pred, gt.joints, gt.annotated, gt.normalize)
    people = []
    for row in np.flatnonzero(gt.annotated.sum(axis=1) >= min_joints):
        err = errors[row][gt.annotated[row]]
        people.append(Example(int(row), 100.0 * float(within(err, threshold).mean()),
                              float(np.minimum(err, 10.0).mean())))
    best = sorted(people, key=lambda e: (-e.accuracy, e.error, e.row))
    worst = sorted(people, key=lambda e: (e.accuracy, -e.error, e.row))
    return best, worst


def read_rgb(path: Path) -> np.ndarray | None:
    """The image at ``path`` as RGB; None when it is absent or cannot be decoded."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class Examples:
    """Whose predictions the example figures show, and which people; ``problem`` says why they are not drawn."""

    shown: str  # the run as the report names it ('hg', or 'hg seed 1' with several seeds); '' without one
    preds_path: Path | None
    problem: str | None
    people: Mapping[str, tuple[Example, ...]] = field(default_factory=dict)  # 'best' / 'worst' -> drawn people
    absent_images: Mapping[str, int] = field(default_factory=dict)  # 'best' / 'worst' -> images not readable


def _mean(run: SeedRun | VariantRun, family: DatasetFamily) -> float:
    return final_scores(run, family)[0].get("Mean", -1.0)


def choose_examples(runs: Sequence[VariantRun], family: DatasetFamily, variant: str | None, count: int,
                    by_seed: bool, load_valid: Callable[[], Annotations], images_dir: Path) -> Examples:
    """The ``count`` best and worst people of the run with the best Mean: of ``variant`` when given, else of the
    variant with the best (seed-averaged) Mean; of that variant, its seed with the best Mean (``by_seed``: named
    with its seed)."""
    seeds_with_preds = {r.name: [s for s in r.evaluated if s.preds_path.is_file() and final_scores(s, family)]
                        for r in runs}
    candidates = [r for r in runs if seeds_with_preds[r.name] and final_scores(r, family)]
    if variant is not None:
        candidates = [r for r in candidates if r.name == variant]
    chosen = max(candidates, key=lambda r: _mean(r, family), default=None)
    if chosen is None:
        wanted = f"variant `{variant}`" if variant else "any variant"
        return Examples("", None, f"no predictions for {wanted} (`models/<variant>/seed-<n>/eval/preds.h5`)")
    run = max(seeds_with_preds[chosen.name], key=lambda s: _mean(s, family))
    shown = run.label if by_seed else run.name
    try:
        pred = read_predictions(run.preds_path)
        gt = load_valid()
    except (ReaderError, AnnotationError) as err:
        return Examples(shown, run.preds_path, str(err))
    if pred.shape != gt.joints.shape:
        return Examples(shown, run.preds_path, f"`{run.preds_path}` has shape {pred.shape}, the validation "
                                               f"annotations {gt.joints.shape}")
    best, worst = rank_people(pred, gt, family.threshold, MIN_JOINTS)
    if not best:
        return Examples(shown, run.preds_path, f"no validation person has {MIN_JOINTS} or more annotated joints")
    people = {"best": tuple(best[:count]), "worst": tuple(worst[:count])}
    absent = {kind: sum(read_rgb(images_dir / gt.imgname[e.row]) is None for e in chosen_people)
              for kind, chosen_people in people.items()}
    return Examples(shown, run.preds_path, None, people, absent)
