"""A champion history record as markdown (the Prefect artifact of a contest or of a run with nothing new) and
where its model lives in MLflow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hourglass.tracking.candidate import score_cell


def mlflow_links(model: str, version: str, run_id: str | None, tracking_uri: str | None,
                 experiment_id: str | None = None) -> str:
    """Where version ``version`` of ``model`` lives in MLflow: links into the UI when the store is a server, else
    the ids and the UI's routes for ``mlflow ui`` on that store."""
    uri = f"models:/{model}/{version}"
    run_route = f"#/experiments/{experiment_id or 0}/runs/{run_id}" if run_id else None
    version_route = f"#/models/{model}/versions/{version}"
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        base = tracking_uri.rstrip("/")
        run = f"[run {run_id}]({base}/{run_route})" if run_id else "run unknown"
        return f"**MLflow:** {run}, [model version `{uri}`]({base}/{version_route})"
    return (f"**MLflow:** run `{run_id or 'unknown'}`, model version `{uri}` in `{tracking_uri}` "
            f"(`mlflow ui --backend-store-uri {tracking_uri}`, then `{version_route}`)")


def record_markdown(record: Mapping[str, Any], tracking_uri: str | None = None,
                    experiment_id: str | None = None) -> str:
    """The Prefect artifact of one history record (a contest, or a run with nothing new): both scores on the same
    split side by side, the paired difference, the verdict, which seed competed, and where the candidate is."""
    model, alias, version = record["model"], record["alias"], record["candidate_version"]
    seed, seed_scores = record.get("seed"), record.get("seed_scores") or {}
    candidate = f"`{record.get('variant')}`" if seed is None else f"`{record.get('variant')}` seed {seed}"
    links = mlflow_links(model, version, record.get("run_id"), tracking_uri, experiment_id)
    split = f"`{str(record.get('split_digest'))[:12]}`"
    if record["kind"] != "contest":
        return "\n".join([
            f"## `{model}@{alias}`: {record['kind']}, no contest",
            "",
            f"**Reason:** {record['reason']}. **Serving:** version {record.get('serving_version') or '—'} "
            f"(candidate {candidate}, version {version}; validation split {split}; {record['decided_at']}).",
            "",
            links,
        ])
    verdict = "promoted" if record["promoted"] else "kept the current champion"
    seeds = []
    if seed is not None and seed_scores:
        listed = ", ".join(f"seed {s}: {score_cell(v)}" for s, v in seed_scores.items())
        seeds = ["", f"**Seed:** {seed}, the best of the variant's {len(seed_scores)} seed(s) by "
                     f"{record['metric']} ({listed}).", ""]
    difference = record.get("difference")
    paired = ("no champion to compare with" if not difference else
              f"{difference['estimate']:+.2f} [{difference['low']:.2f}, {difference['high']:.2f}] "
              f"({difference['confidence'] * 100:g} % paired bootstrap over {difference['people']} people)")
    rescored = {True: "re-scored now", False: "its stored score on this split", None: "—"}[
        record.get("champion_rescored")]
    return "\n".join([
        f"## `{model}@{alias}`: {verdict}",
        "",
        f"| | version | {record['metric']} on split {split} |",
        "|---|---|---|",
        f"| candidate ({candidate}) | {version} | {score_cell(record['candidate_score'])} |",
        f"| champion before ({rescored}) | {record.get('champion_version') or '—'} | "
        f"{score_cell(record.get('champion_score'))} |",
        *seeds,
        "",
        f"**Difference (candidate - champion):** {paired}; promotion needs it to exclude 0 and to be at least "
        f"{record.get('min_improvement')} points. ",
        f"**Reason:** {record['reason']}. ",
        f"**Serving now:** version {record.get('serving_version') or '—'} "
        f"({'higher' if record['higher_is_better'] else 'lower'} is better; decided {record['decided_at']}).",
        "",
        f"**Candidate trained on:** {record.get('candidate_lineage') or 'not recorded'}. ",
        f"**Champion trained on:** {record.get('champion_lineage') or 'not recorded'}.",
        "",
        links,
    ])
