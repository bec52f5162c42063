"""The published numbers a dataset card carries (the paper's, for MPII and FLIC), where they come from (the
footnotes), and the paper's reference points the report compares our variants with: the best Figure-4 variant."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hourglass.family import DatasetFamily

# The paper's Figure 4 has HG-Stacked-Int best: the variant every other one is compared with (paired intervals),
# when the sweep has it; otherwise the sweep's first variant.
REFERENCE_VARIANT = "hg_stacked_int"
# The paper's Figure-4 variants by their params.yaml names: the report checks its ordering of them.
PAPER_FIGURE4_VARIANTS = ("hg", "hg_int", "hg_stacked", "hg_stacked_int", "hg_stacked_add")


@dataclass(frozen=True)
class ScoreRow:
    """One row of a results table: group percentages (missing groups are blank), where it comes from."""

    name: str
    source: str
    values: Mapping[str, float]
    notes: Mapping[str, str] = field(default_factory=dict)  # text cells of extra columns (scores_table's extra)


def paper_rows(family: DatasetFamily, ablation_only: bool = False) -> list[ScoreRow]:
    """The published numbers of ``family``'s card, each row naming its source (none where the card has none);
    ``ablation_only``: the rows the card also prints under the ablation table."""
    published = family.card.published
    if published is None:
        return []
    return [ScoreRow(row.name, row.source, dict(row.values)) for row in published.rows
            if row.ablation or not ablation_only]


def paper_figure5(family: DatasetFamily) -> tuple[str, Mapping[str, float], Mapping[str, float]] | None:
    """The published Figure-5 panel (name, first hourglass, final), where the card has one (MPII)."""
    published = family.card.published
    if published is None or published.figure5 is None:
        return None
    label, first, final = published.figure5
    rows = {row.name: dict(row.values) for row in published.rows}
    return label, rows[first], rows[final]


def paper_footnote(family: DatasetFamily) -> str:
    """Where the published rows come from, printed under every table that shows them ('' where none)."""
    published = family.card.published
    return published.footnote if published is not None else ""


def paper_summary_line(family: DatasetFamily) -> str | None:
    """The published headline, as the report's summary quotes it (None where the card has none)."""
    published = family.card.published
    return published.summary if published is not None else None


def released_predictions_label(family: DatasetFamily) -> str:
    """The released predictions' file, as the results table names it."""
    published = family.card.published
    released = published.released if published is not None else None
    return released.predictions if released is not None else ""
