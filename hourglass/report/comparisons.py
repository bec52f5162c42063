"""The report's decisions between variants, each from a paired bootstrap interval: the best variant (crowned only
when its interval against the runner-up excludes 0) and where our Figure-4 ordering of the paper's variants differs
from the paper's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hourglass.report.bootstrap import Interval, PeopleBootstrap
from hourglass.report.paper import PAPER_FIGURE4_VARIANTS, REFERENCE_VARIANT

# The two comparisons with the paper's Figure 4: HG-Stacked-Int is best, and the stacked network beats the single one.
SINGLE, STACKED = "hg", "hg_stacked"


@dataclass(frozen=True)
class BestVariant:
    """The variant with the highest Mean, and whether it is distinguishably ahead of the runner-up."""

    leader: str
    mean: float  # the leader's Mean (%)
    runner_up: str | None  # None when the leader is the only variant scored
    runner_up_mean: float | None
    margin: Interval | None  # leader minus runner-up, paired; None without both variants' predictions

    @property
    def best(self) -> str | None:
        """The leader when it is the only one scored or its margin over the runner-up excludes 0, else None."""
        if self.runner_up is None:
            return self.leader
        return self.leader if self.margin is not None and self.margin.excludes_zero else None


def best_variant(scored: Mapping[str, float], boot: PeopleBootstrap | None) -> BestVariant | None:
    """From each scored variant's Mean (``scored``, in the order a tie is broken in: the first listed leads)."""
    order = sorted(scored, key=lambda n: -scored[n])
    if not order:
        return None
    leader = order[0]
    if len(order) == 1:
        return BestVariant(leader, scored[leader], None, None, None)
    runner = order[1]
    margin = boot.difference(leader, runner, "Mean") if boot is not None and {leader, runner} <= set(
        boot.estimates) else None
    return BestVariant(leader, scored[leader], runner, scored[runner], margin)


@dataclass(frozen=True)
class Versus:
    """``variant`` minus ``other`` in Figure-4 accuracy (points), paired over the same resampled people."""

    variant: str
    other: str
    difference: Interval


@dataclass(frozen=True)
class PaperOrdering:
    """Our Figure-4 ordering of the paper's variants against the paper's (at least two of them scored)."""

    scored: tuple[str, ...]  # the paper's variants with intervals, in the paper's order
    above_reference: tuple[Versus, ...]  # variants scoring above hg_stacked_int, where the paper has it best
    reference_best: bool | None  # hg_stacked_int scores best; None when it is not scored
    single_vs_stacked: Versus | None  # hg minus hg_stacked, when both are scored
    single_above_stacked: bool | None  # hg scores above hg_stacked, where the paper's stacked network wins
    stacked_supervision: str | None  # hg_stacked's supervision ('final': no loss on its first stack)
    stacked_first_mean: float | None  # hg_stacked's first-hourglass Mean (%), when evaluated per stack

    @property
    def agrees(self) -> bool:
        """Nothing contradicts the paper, and at least one of its two orderings was checked."""
        return not self.above_reference and not self.single_above_stacked and (
            self.reference_best is not None or self.single_above_stacked is not None)


def paper_ordering(boot: PeopleBootstrap | None, supervision: Mapping[str, str | None],
                   first_means: Mapping[str, float | None]) -> PaperOrdering | None:
    """Where our ordering of the paper's Figure-4 variants differs from the paper's; None when fewer than two of
    them have intervals. ``supervision`` and ``first_means``: each variant's, by name."""
    have = tuple(v for v in PAPER_FIGURE4_VARIANTS if boot is not None and v in boot.estimates)
    if len(have) < 2:
        return None

    def versus(a: str, b: str) -> Versus:
        return Versus(a, b, boot.difference(a, b, "figure4"))

    score = {v: boot.estimates[v]["figure4"] for v in have}
    above: Sequence[Versus] = ()
    reference_best = None
    if REFERENCE_VARIANT in have:
        above = tuple(versus(v, REFERENCE_VARIANT) for v in have
                      if v != REFERENCE_VARIANT and score[v] > score[REFERENCE_VARIANT])
        reference_best = not above
    single = single_above = None
    if SINGLE in have and STACKED in have:
        single_above = bool(score[SINGLE] > score[STACKED])
        single = versus(SINGLE, STACKED)
    return PaperOrdering(have, tuple(above), reference_best, single, single_above, supervision.get(STACKED),
                         first_means.get(STACKED))
