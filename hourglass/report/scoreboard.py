"""The console's view of a finished report: each variant's validation Mean beside the mean-pose baseline, read
from ``reports/summary.json`` (what ``make demo`` prints at the end)."""

from __future__ import annotations

import json
from pathlib import Path


def summary_table(summary_path: Path) -> str:
    """Each variant's validation Mean (the mean over its seeds, ± the sd across them when there are several) beside
    the mean-pose baseline, from the report stage's ``summary.json``."""
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError) as err:
        return f"(no summary: {summary_path}: {err})"
    metric = summary.get("metric", "Mean")
    baseline = (summary.get("mean_pose_baseline") or {}).get("Mean")
    variants = summary.get("variants") or {}
    spreads = {name: ((entry or {}).get("across_seeds") or {}).get("Mean") or {} for name, entry in variants.items()}
    several = any((spread.get("n") or 0) > 1 for spread in spreads.values())
    rows = [f"{'variant':<18} {metric + ' Mean (%)':>18} {'over mean pose':>15}"
            + (f" {'sd across seeds':>16} {'seeds':>5}" if several else "")]
    for name, entry in variants.items():
        mean = ((entry or {}).get("final") or {}).get("Mean")
        if mean is None:
            continue
        margin = entry.get("margin_over_mean_pose")
        row = f"{name:<18} {mean:>18.1f} {'' if margin is None else f'{margin:+.1f}':>15}"
        if several:
            sd, n = spreads[name].get("sd"), spreads[name].get("n")
            row += f" {'' if sd is None else f'± {sd:.1f}':>16} {n or '':>5}"
        rows.append(row)
    if baseline is not None:
        rows.append(f"{'mean-pose baseline':<18} {baseline:>18.1f}")
    return "\n".join(rows)
