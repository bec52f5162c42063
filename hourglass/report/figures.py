"""The report's figures, rendered from the :class:`~hourglass.report.summary.Summary` (and, for the examples, the
predictions and validation people they draw): Figure 4 (validation accuracy during training), Figure 5 (first
hourglass against final predictions, small multiples) and the best and worst examples.

Figures are drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas (no pyplot, no global state): DVC's
HTML plots load Vega from a CDN and stay blank offline, PNGs do not. A figure without content still exists and
says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from hourglass.draw import PRED_STYLE, TRUE_STYLE, draw_skeleton, save_figure, show_crop
from hourglass.family import DatasetFamily
from hourglass.io.annotations import Annotations
from hourglass.report.examples import KINDS, Example, read_rgb
from hourglass.report.inputs import finite
from hourglass.report.paper import paper_figure5
from hourglass.report.summary import FIGURE4_KEY, Summary, VariantSummary, figure5_variants
from hourglass.report.tables import with_bounds

FIRST_COLOUR, FINAL_COLOUR = "#9ecae1", "#08519c"
FIGURE_NAMES = ("figure4.png", "figure5.png", "examples_best.png", "examples_worst.png")  # under figures/


def message_figure(title: str, message: str) -> Figure:
    """A figure that states why its content is absent, so a declared output always exists and says so."""
    fig = Figure(figsize=(7, 2.5))
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=11)
    return fig



def _evaluated_step(variant: VariantSummary, x: Sequence[float]) -> float:
    """Where on the variant's curve the evaluated checkpoint lies: the row of its epoch, else the last point."""
    epoch = variant.evaluated_epoch
    for row, value in zip(variant.epochs or [], x, strict=False):
        if epoch is not None and row.get("epoch") == epoch:
            return value
    return x[-1]


def figure4(summary: Summary) -> Figure:
    """Validation accuracy against optimiser steps, one line per variant (the paper's Figure 4). A variant with
    intervals has its evaluated model's Figure-4 accuracy (flip test) with its 95 % bootstrap interval drawn as a
    diamond with an error bar at the evaluated checkpoint's step, and quoted in the legend."""
    family = summary.family
    label = f"validation {family.metric} (%), mean of " + ", ".join(
        word + "s" for word in family.figure4_words)
    curves = [v for v in summary.variants if v.curve]
    if not curves:
        return message_figure("Figure 4: validation accuracy during training",
                              f"No variant has per-epoch validation ({FIGURE4_KEY} in "
                              "models/<variant>/seed-<n>/epochs.csv).")
    finals = {v.name: v.interval["figure4"] for v in curves if v.interval is not None}
    by_step = all(all(math.isfinite(e.get("step", math.nan)) for e in v.epochs) for v in curves)
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    xs = {v.name: [e["step"] if by_step else e["epoch"] for e in v.epochs] for v in curves}
    span = max(max(x) for x in xs.values()) - min(min(x) for x in xs.values()) or 1.0
    with_bar = [v.name for v in curves if v.name in finals and math.isfinite(finals[v.name].low)]
    for i, variant in enumerate(curves):
        colour = f"C{i % 10}"
        x = xs[variant.name]
        name = variant.name
        interval = finals.get(variant.name)
        if variant.name in with_bar:
            name += f" (final {with_bounds(interval)})"
        ax.plot(x, [e.get(FIGURE4_KEY, math.nan) for e in variant.epochs], marker="o", markersize=3, color=colour,
                label=name)
        if variant.name in with_bar:
            # Side by side at the evaluated step, so that the bars of variants trained equally long do not overlap.
            offset = (with_bar.index(variant.name) - (len(with_bar) - 1) / 2) * 0.012 * span
            ax.errorbar([_evaluated_step(variant, x) + offset], [interval.estimate],
                        yerr=[[interval.estimate - interval.low], [interval.high - interval.estimate]],
                        fmt="D", markersize=5, color=colour, capsize=3, elinewidth=1.2)
    ax.set_xlabel("training progress (optimiser steps)" if by_step else "training progress (epochs)")
    ax.set_ylabel(label)
    ax.set_title("Figure 4: validation accuracy during training, all variants")
    ax.grid(alpha=0.3)
    title = "variant" + (" (final: evaluated, flip test, 95 % interval)" if with_bar else "")
    ax.legend(title=title, fontsize=8, title_fontsize=8)
    return fig


def _panel_grid(panels: int, width: float = 8.6, max_aspect: float = 2.0) -> tuple[int, int, float, float]:
    """(rows, columns, panel width, panel height) in inches: about square panels, at most ``width`` wide in all
    (so the PNG is read at page width without shrinking its text), and never wider than ``max_aspect`` : 1."""
    cols = max(1, math.ceil(math.sqrt(panels)))
    while True:
        rows = math.ceil(panels / cols)
        panel_w = min(4.3, width / cols)
        panel_h = 0.75 * panel_w + 0.4
        if cols == 1 or cols * panel_w <= max_aspect * (rows * panel_h + 0.8):
            return rows, cols, panel_w, panel_h
        cols -= 1


def figure5(summary: Summary) -> Figure:
    """First-hourglass against final predictions per joint group (the paper's Figure 5), as small multiples: one
    panel per variant evaluated per stack, and the paper's published numbers (MPII) in a panel of their own. Bars
    too short to see are labelled with their value ("0")."""
    family = summary.family
    groups = list(family.groups)
    series: list[tuple[str, Mapping[str, float], Mapping[str, float]]] = [
        (v.name + (" (no loss on stack 1)" if v.supervision == "final" else ""), v.intermediate[1], v.final)
        for v in figure5_variants(summary)]
    if not series:
        return message_figure("Figure 5: intermediate against final predictions",
                              "No multi-stack variant has per-stack evaluation "
                              "(models/<variant>/seed-<n>/eval/metrics.json 'stacks').")
    paper = paper_figure5(family)
    panels = [*series, *([paper] if paper is not None else [])]
    rows, cols, panel_w, panel_h = _panel_grid(len(panels))
    fig = Figure(figsize=(cols * panel_w, rows * panel_h + 0.8), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    x = np.arange(len(groups))
    width = 0.4
    small = 8 if cols < 3 else 7
    # the grid may have spare axes
    for i, (ax, (name, inter, final)) in enumerate(zip(axes.flat, panels, strict=False)):
        is_paper = paper is not None and i == len(panels) - 1
        for shift, values, colour, what in ((-width / 2, inter, FIRST_COLOUR, "first hourglass"),
                                            (width / 2, final, FINAL_COLOUR, "final")):
            heights = [finite(values.get(g)) for g in groups]
            ax.bar(x + shift, [np.nan if h is None else h for h in heights], width, color=colour, label=what,
                   hatch="//" if is_paper else None, edgecolor="white" if is_paper else None, linewidth=0)
            for xi, h in zip(x + shift, heights, strict=True):
                if h is not None and h < 3.0:  # invisible at this scale: say what it is
                    ax.text(xi, h + 1.0, "0" if round(h, 1) == 0 else f"{h:.1f}", ha="center", va="bottom",
                            fontsize=small - 1, color="#333333")
        title = f"{name} (published)" if is_paper else name
        means = (finite(inter.get("Mean")), finite(final.get("Mean")))
        if None not in means:
            title += f"\nMean {means[0]:.1f} → {means[1]:.1f}"
        ax.set_title(title, fontsize=small + 1)
        ax.set_xticks(x, groups, rotation=40 if cols > 1 else 0, ha="right" if cols > 1 else "center",
                      fontsize=small, rotation_mode="anchor")
        ax.tick_params(axis="y", labelsize=small)
        ax.set_ylim(0, 105)
        ax.grid(axis="y", alpha=0.3)
        if is_paper:
            ax.set_facecolor("#f4f4f4")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_axis_off()
    fig.supylabel(f"validation {family.metric} (%)", fontsize=small + 1)
    fig.suptitle("Figure 5: first hourglass against final predictions, per joint group", fontsize=small + 3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=small + 1, frameon=False)
    return fig


def _view(center: np.ndarray, side: float, *points: np.ndarray) -> tuple[np.ndarray, float]:
    """The square (centre, side) that holds the person box and every finite joint, so a prediction that landed
    on someone else is still in the picture."""
    box = center[None] + np.array([[-side / 2, -side / 2], [side / 2, side / 2]])
    pts = np.concatenate([box, *(p[np.isfinite(p).all(axis=1)] for p in points)])
    low, high = pts.min(axis=0), pts.max(axis=0)
    return (low + high) / 2.0, float(max(high - low) * 1.05)


def examples_figure(title: str, chosen: Sequence[Example], pred: np.ndarray, gt: Annotations, images_dir: Path,
                    family: DatasetFamily) -> Figure:
    """A grid of validation people with true and predicted skeletons (on grey where the image is missing)."""
    cols = min(3, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    fig = Figure(figsize=(3.6 * cols, 3.9 * rows + 0.8), layout="constrained")
    skeleton = family.joints
    metric = family.metric
    for i, ex in enumerate(chosen):
        ax = fig.add_subplot(rows, cols, i + 1)
        image = read_rgb(images_dir / gt.imgname[ex.row])
        show_crop(ax, image, *_view(gt.center[ex.row], 200.0 * gt.scale[ex.row], gt.joints[ex.row], pred[ex.row]))
        draw_skeleton(ax, gt.joints[ex.row], skeleton, **TRUE_STYLE)
        draw_skeleton(ax, pred[ex.row], skeleton, **PRED_STYLE)
        note = "" if image is not None else " (image missing)"
        ax.set_title(f"{gt.imgname[ex.row]} row {ex.row}{note}\n{metric} {ex.accuracy:.0f}% of "
                     f"{int(gt.annotated[ex.row].sum())} joints", fontsize=8)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    sides = ("filled markers: joints labelled left, hollow: right (the labels are observer-centric)"
             if family.joints.observer else "filled markers: person-left joints, hollow: person-right")
    fig.legend(handles, labels, loc="outside lower center", ncol=2, title=sides)
    fig.suptitle(title)
    return fig


def example_figures(summary: Summary, pred: np.ndarray | None, gt: Annotations | None) -> dict[str, Figure]:
    """'best' / 'worst' -> the figure of the summary's examples drawn from ``pred`` on ``gt`` (both None when the
    summary says why the examples are not drawn)."""
    examples = summary.examples
    if examples.problem is not None:
        return {kind: message_figure(f"Examples: {kind} cases", "Not drawn: " + examples.problem.replace("`", ""))
                for kind in KINDS}
    return {kind: examples_figure(f"{examples.shown}: the {len(examples.people[kind])} {kind} validation people "
                                  f"by {summary.metric}", examples.people[kind], pred, gt, summary.images_dir,
                                  summary.family)
            for kind in KINDS}


def write_figures(summary: Summary, figures: Path, pred: np.ndarray | None, gt: Annotations | None) -> list[Path]:
    """Every figure of the report as a PNG under ``figures`` (see :data:`FIGURE_NAMES`)."""
    drawn = {"figure4.png": figure4(summary), "figure5.png": figure5(summary),
             **{f"examples_{kind}.png": fig for kind, fig in example_figures(summary, pred, gt).items()}}
    return [save_figure(drawn[name], figures / name) for name in FIGURE_NAMES]

