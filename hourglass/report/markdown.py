"""``reports/results.md``, rendered from the :class:`~hourglass.report.summary.Summary`: the summary and missing
inputs, the results beside the paper's numbers, per-joint scores, the uncertainty, the mean-pose baseline, costs,
the ablation figures, the examples and the provenance. Nothing here reads a file or computes a number the summary
does not hold; the wording of each decision is here, the decision itself is the summary's."""

from __future__ import annotations

from collections.abc import Mapping

from hourglass.family import DatasetFamily
from hourglass.report.comparisons import PaperOrdering, Versus
from hourglass.report.paper import (
    REFERENCE_VARIANT,
    ScoreRow,
    paper_figure5,
    paper_footnote,
    paper_rows,
    paper_summary_line,
    released_predictions_label,
)
from hourglass.report.summary import Summary, VariantSummary, figure5_variants
from hourglass.report.tables import bounds, cell, duration, markdown_table, scores_table, with_bounds

FIGURE_LINKS = {"figure4": "Figure 4: validation accuracy against training progress",
                "figure5": "Figure 5: first-hourglass against final predictions"}


def on_seeds(summary: Summary, *names: str) -> str:
    """'one seed', '3 seeds' or '2-3 seeds': what the variants ``names`` were scored on."""
    counts = sorted({max(summary.seed_count(n), 1) for n in names} or {1})
    if counts == [1]:
        return "one seed"
    return f"{counts[0]} seeds" if len(counts) == 1 else f"{counts[0]}-{counts[-1]} seeds"


def spread_cell(variant: VariantSummary, statistic: str = "Mean") -> str:
    """'48.1 ± 0.6 (2 seeds)', '48.1 (1 seed)', or '–'."""
    spread = variant.across_seeds.get(statistic)
    if spread is None or spread.mean is None:
        return "–"
    sd = "" if spread.sd is None else f" ± {spread.sd:.1f}"
    return f"{spread.mean:.1f}{sd} ({spread.n} seed{'s' if spread.n != 1 else ''})"


def reference_note(summary: Summary) -> str:
    """How the report names the reference variant, and why it is that one."""
    paper = f"`{REFERENCE_VARIANT}` (HG-Stacked-Int, the paper's best Figure-4 variant)"
    if summary.reference_is_papers:
        return paper
    return f"`{summary.reference}`, the first variant of the sweep: {paper} is not in the sweep"


# -- summary ------------------------------------------------------------------------------------------------------
def best_line(summary: Summary) -> str:
    """The best variant, crowned only when its paired interval against the runner-up excludes 0."""
    best = summary.best
    leader = summary.variant(best.leader)
    interval = (leader.interval or {}).get("Mean")
    spread = leader.across_seeds.get("Mean") if summary.several_seeds else None
    sd = "" if spread is None or spread.sd is None else f" ± {spread.sd:.1f} sd over {spread.n} seeds"
    mean = f"Mean {summary.metric} {best.mean:.1f} %{sd}" + ("" if interval is None else
                                                             f" [95 % interval {bounds(interval)[1:]}")
    baseline = summary.baseline
    over = "" if baseline is None else (f", {best.mean - baseline.mean:+.1f} points over the mean-pose baseline "
                                        f"({baseline.mean:.1f} %)")
    if best.runner_up is None:
        return f"- Best variant: `{best.leader}` (the only one scored) with {mean}{over}."
    diff = best.margin
    gap = (f"{best.mean - best.runner_up_mean:+.2f} points (no interval: predictions missing)" if diff is None
           else f"{with_bounds(diff, True)} points (paired 95 % interval)")
    if best.best is not None:
        return f"- Best variant: `{best.leader}` with {mean}{over}; ahead of the runner-up `{best.runner_up}` by {gap}."
    return (f"- Best variant: not distinguishable on {on_seeds(summary, best.leader, best.runner_up)}. "
            f"`{best.leader}` ({mean}) leads the runner-up `{best.runner_up}` by {gap}"
            + (", an interval that includes 0." if diff is not None else "."))


def reference_lines(summary: Summary) -> list[str]:
    """Which paired differences from the reference exclude 0, per statistic."""
    diffs = {v.name: v.difference for v in summary.variants if v.difference is not None}
    if not diffs:
        return []
    lines = []
    seeds = on_seeds(summary, summary.reference, *diffs)
    for statistic, label in (("Mean", f"Mean {summary.metric}"), ("figure4", "Figure-4 accuracy")):
        groups: dict[bool, list[str]] = {True: [], False: []}
        for name, difference in diffs.items():
            d = difference[statistic].as_dict()
            if d["estimate"] is None or d["low"] is None:
                continue
            groups[difference[statistic].excludes_zero].append(
                f"`{name}` {d['estimate']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]")
        lines.append(f"- {label} minus the reference `{summary.reference}` (points, paired 95 % intervals): "
                     f"distinguishable: {', '.join(groups[True]) or 'none'}; not distinguishable on {seeds}: "
                     f"{', '.join(groups[False]) or 'none'}.")
    return lines


def ordering_lines(summary: Summary, ordering: PaperOrdering | None) -> list[str]:
    """Where the Figure-4 ordering of the paper's variants differs from the paper's (HG-Stacked-Int best; the
    stacked network above the single hourglass), or that it agrees; empty without an ordering."""
    if ordering is None:
        return []

    def versus(pair: Versus) -> str:
        diff = pair.difference
        verdict = ("distinguishable" if diff.excludes_zero
                   else f"not distinguishable on {on_seeds(summary, pair.variant, pair.other)}")
        return f"{with_bounds(diff, True)} points, {verdict}"

    lines = [f"`{pair.variant}` scores above `{pair.other}` ({versus(pair)}), where the paper has HG-Stacked-Int "
             "best." for pair in ordering.above_reference]
    if ordering.single_above_stacked:
        line = (f"The single hourglass `hg` scores above the two-stack `hg_stacked` "
                f"({versus(ordering.single_vs_stacked)}), where the paper's stacked network beats the single one.")
        if ordering.stacked_supervision == "final":
            first = ordering.stacked_first_mean
            line += " `hg_stacked` has one loss, on its last stack: its first stack gets none, " + (
                f"which is why its first-hourglass score in Figure 5 is {first:.1f} %, not a bug."
                if first is not None and first < 5.0 else
                "so its first-hourglass score in Figure 5 says nothing about the network.")
        lines.append(line)
    if ordering.agrees:
        agree = (["`hg_stacked_int` is best, as in the paper"] if ordering.reference_best else []) + (
            ["`hg_stacked` scores above `hg`, as the paper's stacked network beats the single one"]
            if ordering.single_above_stacked is False else [])
        lines.append("Our ordering agrees with the paper's: " + "; ".join(agree) + ".")
    return lines


def summary_section(summary: Summary) -> str:
    lines = [f"- Dataset: **{summary.dataset}**, metric: validation **{summary.metric}**.",
             f"- Variants: {', '.join(f'`{v.name}`' for v in summary.variants) or 'none'}."]
    if summary.several_seeds:
        lines.append(f"- Training seeds: {', '.join(map(str, summary.seeds))}; each variant's numbers are the mean "
                     "over its seeds, with the sample standard deviation across them (± sd).")
    if summary.best is not None:
        lines.append(best_line(summary))
        lines += reference_lines(summary)
        ordering = ordering_lines(summary, summary.ordering)
        if ordering:
            lines.append("- Against the paper's Figure 4: " + " ".join(ordering))
    else:
        lines.append("- No variant has scores yet.")
    published = paper_summary_line(summary.family)
    if published is not None:
        lines.append("- " + published)
    missing = "\n".join(f"- {m}" for m in summary.missing) or "- none"
    return "## Summary\n\n" + "\n".join(lines) + f"\n\n### Missing inputs\n\n{missing}\n"


def _footnote(family: DatasetFamily) -> str:
    """The published rows' footnote under a table, or nothing where the card has no published numbers."""
    note = paper_footnote(family)
    return f"\n{note}\n" if note else ""


# -- results ------------------------------------------------------------------------------------------------------
def results_section(summary: Summary) -> str:
    family = summary.family
    rows = paper_rows(family)
    if summary.authors is not None:
        rows.append(ScoreRow("authors' released model (measured)", f"`{released_predictions_label(family)}` scored "
                             "here against "
                             "pose-hg-train's valid.h5", summary.authors.values))
    for v in summary.variants:
        if v.final is not None:
            label = f"**{v.name}**" + (" (released weights)" if v.released is not None else "")
            rows.append(ScoreRow(label, v.source, v.final, {"ci": bounds((v.interval or {}).get("Mean")),
                                                            "seeds": spread_cell(v)}))
    if summary.baseline is not None:
        rows.append(ScoreRow("mean-pose baseline", "average training pose placed in each crop",
                             summary.baseline.values))
    extra = [("Mean 95 % interval", "ci")]
    seeds = ""
    if summary.several_seeds:
        extra.append(("Mean across seeds, ± sd", "seeds"))
        seeds = (" A variant trained from several seeds shows the mean of its seeds' scores, and their mean ± "
                 "sample standard deviation beside it.")
    note = ""
    if family.card.format == "synthetic" and family.card.published is not None:
        real = family.card.published.dataset
        whose = "the paper's and the authors' rows are" if summary.authors is not None else "the paper's rows are"
        note = ("\n\nThe variants were trained and scored on the **synthetic** people (scored as "
                f"{real}); {whose} real {real} numbers, shown for scale, not as a like-for-like comparison.")
    return (f"## Results\n\nValidation {summary.metric} per joint group, in % of annotated joints "
            f"({family.mean_note}). '–' marks a number the source does not give; the 95 % intervals of our "
            f"variants' Means are explained under Uncertainty.{seeds}{note}\n\n"
            f"{scores_table(rows, family, extra)}\n" + _footnote(family))


def per_joint_section(summary: Summary) -> str:
    columns: list[tuple[str, Mapping[str, float]]] = [(v.name, v.per_joint) for v in summary.variants
                                                      if v.per_joint is not None]
    for name, measured in (("authors' model", summary.authors), ("mean pose", summary.baseline)):
        if measured is not None:
            columns.append((name, measured.per_joint))
    if not columns:
        return "### Per joint\n\nNo per-joint scores: no variant has `eval/metrics.json`.\n"
    header = ["Joint", *(f"{c} {summary.metric} (%)" for c, _ in columns)]
    body = [[j, *(cell(values.get(j)) for _, values in columns)] for j in summary.family.joints.names]
    seeds = " A variant's column is the mean over its seeds." if summary.several_seeds else ""
    return (f"### Per joint\n\nValidation {summary.metric} of every joint, in %.{seeds}\n\n"
            f"{markdown_table(header, body)}\n")


def seeds_note(summary: Summary) -> str:
    """What the intervals cover, given how many seeds each variant was trained from."""
    if not summary.several_seeds:
        return ("The intervals cover the choice of validation people only, not training noise: each variant was "
                "trained once, on one seed.")
    counts = sorted({len(v.seeds) for v in summary.variants if v.seeds})
    trained = (f"{counts[0]} training seeds" if len(counts) == 1
               else "its training seeds (counted in the second column)")
    return (f"Each variant's score is the mean over {trained}: every resample scores each seed on the same "
            "resampled people and averages the seeds' scores, so a paired difference compares seed-averaged "
            "scores on the same people. The intervals cover the choice of validation people, not training "
            "noise; the spread across seeds (sample standard deviation) is in the second column.")


def uncertainty_section(summary: Summary) -> str:
    head = "## Uncertainty\n\n"
    boot = summary.bootstrap
    if boot is None:
        return head + "No 95 % intervals: no variant's predictions could be scored (see Missing inputs).\n"
    ref = summary.reference if summary.paired else None
    several = summary.several_seeds
    rows = []
    for v in summary.variants:
        if v.interval is None:
            continue
        cells = [f"`{v.name}`", with_bounds(v.interval["Mean"]), with_bounds(v.interval["figure4"])]
        if several:
            cells.insert(1, spread_cell(v))
        if ref is not None and v.name == ref:
            cells += ["–", "–", "(reference)"]
        elif ref is not None:
            diffs = v.difference
            which = [label for k, label in (("Mean", "Mean"), ("figure4", "Figure-4")) if diffs[k].excludes_zero]
            cells += [with_bounds(diffs["Mean"], True), with_bounds(diffs["figure4"], True),
                      ", ".join(which) or f"neither (not distinguishable on {on_seeds(summary, v.name, ref)})"]
        rows.append(cells)
    metric = summary.metric
    header = ["Variant", f"Mean {metric} (%) [95 % interval]", "Figure-4 accuracy (%) [95 % interval]"]
    if several:
        header.insert(1, f"Mean {metric} (%) across seeds, ± sd")
    if ref is not None:
        header += [f"Mean − `{ref}` (points)", f"Figure-4 − `{ref}` (points)", f"distinguishable from `{ref}`"]
    preds = "seeds' `eval/preds.h5` files" if several else "`eval/preds.h5`"
    text = (head + f"95 % percentile-bootstrap intervals over the {boot.people} validation people with an "
            f"annotated joint: {boot.resamples} resamples of the people drawn with replacement (seed "
            f"{boot.seed}), each scored from the variant's {preds} against `{summary.valid_path}` (a missed "
            f"person counts as wrong). Figure-4 accuracy: {summary.family.figure4_label}. Differences from the "
            "reference are paired: in every resample both variants are scored on the same people. A difference "
            f"is distinguishable when its interval excludes 0. {seeds_note(summary)}\n\nReference: "
            f"{reference_note(summary)}.\n\n" + markdown_table(header, rows))
    ordering = ordering_lines(summary, summary.ordering)
    if ordering:
        text += "\n\nAgainst the paper's Figure 4:\n\n" + "\n".join(f"- {line}" for line in ordering)
    return text + "\n"


def baseline_section(summary: Summary) -> str:
    text = ("## Mean-pose baseline\n\nThe average training pose (joint offsets from the person centre in units "
            "of the person box) placed into every validation crop and scored with the same metric: what a "
            "model gets from the person box alone. A variant that learned from the images is far above it.\n\n")
    baseline = summary.baseline
    if baseline is None:
        return text + "Not available (see Missing inputs).\n"
    body = [[v.name, cell((v.final or {}).get("Mean")), bounds((v.interval or {}).get("Mean")), cell(baseline.mean),
             cell(v.margin_over_mean_pose)] for v in summary.variants]
    header = ["Variant", f"Mean {summary.metric} (%)", "95 % interval", f"mean pose Mean {summary.metric} (%)",
              "margin (percentage points)"]
    return text + markdown_table(header, body) + "\n"


def costs_section(summary: Summary) -> str:
    several = summary.several_seeds
    body = []
    for row in (r for v in summary.variants for r in v.cost_rows):
        seed = [] if not several else ["–" if row.seed is None else str(row.seed)]
        parameters = cell(None if row.parameters is None else row.parameters / 1e6, 2)
        body.append([row.name, *seed, str(row.stacks) if row.stacks is not None else "–",
                     parameters + (" (from config)" if row.parameters_from == "config" else ""),
                     cell(row.epochs, 0), cell(row.steps, 0), duration(row.train_hours), cell(row.train_img_per_s),
                     cell(row.eval_img_per_s), cell(row.eval_seconds), cell(row.best_mean), cell(row.best_epoch, 0),
                     f"`{row.mlflow_run}`" if row.mlflow_run else "–"])
    header = ["Variant", *(["Seed"] if several else []), "Stacks", "Parameters (M)", "Epochs", "Optimiser steps",
              "Training time (h)", "Training throughput (img/s)", "Evaluation throughput (img/s)",
              "Evaluation time (s)", f"Best validation Mean {summary.metric} (%)", "Best at epoch", "MLflow run"]
    return ("## Model size, training time and throughput\n\nParameters are trainable weights. Training time "
            "is optimiser time summed over epochs (steps x batch / measured images per second), validation "
            "excluded; throughputs are means over epochs (training) and the whole evaluation (evaluation)."
            + (" One row per training seed." if several else "") + "\n\n" + markdown_table(header, body) + "\n")


def ablation_section(summary: Summary) -> str:
    family = summary.family
    table, unsupervised = [], []
    for v in figure5_variants(summary):
        stack, first = v.intermediate
        table.append(ScoreRow(f"{v.name}: stack {stack} (first hourglass)", "evaluate stage", first,
                              {"fig4": cell(first.get("figure4"))}))
        interval = v.interval or {}
        both = f"{bounds(interval.get('Mean'))}; {bounds(interval.get('figure4'))}"
        table.append(ScoreRow(f"{v.name}: final", "evaluate stage", v.final,
                              {"fig4": cell(v.final.get("figure4")), "ci": "–" if both == "–; –" else both}))
        if v.supervision == "final":
            unsupervised.append(v.name)
    table += paper_rows(family, ablation_only=True)
    return (f"## Ablation\n\n![{FIGURE_LINKS['figure4']}](figures/figure4.png)\n\n"
            f"Figure 4: validation accuracy of every variant at the end of each epoch ({family.figure4_label}; "
            "single pass, no flip test). Diamonds with error bars: the evaluated model's accuracy (evaluate "
            "stage, flip test) with its 95 % bootstrap interval over validation people, also quoted in the "
            f"legend.\n\n![{FIGURE_LINKS['figure5']}](figures/figure5.png)\n\n"
            f"Figure 5: validation {summary.metric} of the first hourglass's predictions against the final ones, "
            "one panel per multi-stack variant" + (" and one for the paper's published 8-stack numbers"
                                                   if paper_figure5(family) is not None else "")
            + " (light bars: first hourglass, dark: final; a bar too short to see is labelled with its value)."
            + "".join(f" `{n}` has one loss, on its last stack (supervision `final`): its first stack gets none, "
                      "so a near-0 first-hourglass score is expected, not a bug." for n in unsupervised)
            + "\n\n" + scores_table(table, family, [("Figure-4 accuracy (%)", "fig4"),
                                                   ("95 % intervals (Mean; Figure-4)", "ci")])
            + "\n" + _footnote(family))


def examples_section(summary: Summary) -> str:
    text = "## Examples\n\n"
    examples = summary.examples
    if examples.problem is not None:
        return text + f"Not drawn: {examples.problem}.\n"
    which = "" if not summary.several_seeds else " (of its seeds, the one with the best Mean)"
    family = summary.family
    return (text + f"Validation people of variant `{examples.shown}`{which} ranked by the share of joints within "
            f"{family.threshold:g} {family.unit} of the truth (ties: lower mean error first). "
            "Green solid: ground truth; red dashed: prediction.\n\n"
            "![best cases](figures/examples_best.png)\n\n![worst cases](figures/examples_worst.png)\n")


def provenance_section(summary: Summary) -> str:
    p = summary.provenance
    rows = [["params", f"`{p.params_path}` sha256 `{p.params_sha256}`"], ["git commit", p.git],
            ["data version", p.data], ["generated", p.generated]]
    rows += [[f"`{r.label}` resolved params", f"`{r.path}` sha256 `{r.sha256}`"] for r in p.resolved]
    return ("## Provenance\n\n" + markdown_table(["What", "Value"], rows, "ll")
            + f"\n\n<details><summary>params.yaml used for this report</summary>\n\n```yaml\n"
            f"{p.params_text.rstrip()}\n```\n\n</details>\n")


def render_markdown(summary: Summary) -> str:
    """The whole of results.md."""
    body = [results_section(summary), per_joint_section(summary), uncertainty_section(summary),
            baseline_section(summary), costs_section(summary), ablation_section(summary), examples_section(summary),
            provenance_section(summary)]
    return (f"# Stacked hourglass reproduction: results ({summary.dataset})\n\n" + summary_section(summary) + "\n"
            + "\n".join(body))
