"""Markdown cells and tables: how a number, a duration and a bootstrap interval are printed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from hourglass.family import DatasetFamily
from hourglass.report.bootstrap import Interval
from hourglass.report.inputs import finite
from hourglass.report.paper import ScoreRow


def cell(value: Any, digits: int = 1) -> str:
    """A number with ``digits`` decimals; '–' for anything that is not a finite number."""
    number = finite(value)
    return "–" if number is None else f"{number:.{digits}f}"


def duration(hours: float | None) -> str:
    """Hours with two decimals, or three significant digits for runs shorter than a quarter of an hour."""
    if hours is None:
        return "–"
    return f"{hours:.2f}" if hours >= 0.25 else f"{hours:.3g}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` is one character per column, 'l' or 'r' (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---" if a == "l" else "---:" for a in align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def scores_table(rows: Sequence[ScoreRow], family: DatasetFamily,
                 extra: Sequence[tuple[str, str]] = ()) -> str:
    """Groups, Mean and (MPII) Mean@0.1, in %, one row per model, then ``extra`` columns (header, key of the rows'
    ``notes``; '–' where a row has none), then a source column."""
    metric = family.metric
    columns = [*family.groups, "Mean"] + (["Mean@0.1"] if family.mean_at_0_1 else [])
    header = ["Model", *(f"{c} {metric} (%)" if c != "Mean@0.1" else "Mean PCKh@0.1 (%)" for c in columns),
              *(h for h, _ in extra), "Source"]
    body = [[r.name, *(cell(r.values.get(c)) for c in columns), *(r.notes.get(k, "–") for _, k in extra), r.source]
            for r in rows]
    return markdown_table(header, body, "l" + "r" * (len(columns) + len(extra)) + "l")


def bounds(interval: Interval | None, signed: bool = False) -> str:
    """'[58.3, 64.0]' for a score, '[-1.23, +0.08]' for a difference (``signed``: two decimals, so that an interval
    that just excludes 0 does not print as ending at 0.0); '–' without an interval."""
    if interval is None or not (math.isfinite(interval.low) and math.isfinite(interval.high)):
        return "–"
    form = "+.2f" if signed else ".1f"
    return f"[{interval.low:{form}}, {interval.high:{form}}]"


def with_bounds(interval: Interval | None, signed: bool = False) -> str:
    """'61.2 [58.3, 64.0]' (a difference: '+1.25 [+0.31, +2.20]'): the estimate and its interval."""
    if interval is None or not math.isfinite(interval.estimate):
        return "–"
    form = "+.2f" if signed else ".1f"
    return f"{interval.estimate:{form}} {bounds(interval, signed)}".rstrip(" –")

