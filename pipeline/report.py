"""DVC stage ``report``: the results report from every trained, evaluated and imported model (hourglass.report).

``python -m pipeline.report [--params params.yaml] [--models models] [--out reports]``

Writes ``<out>/results.md`` (our variants beside the paper's numbers and the mean-pose baseline with 95 % bootstrap
intervals, model size and speed, Figures 4 and 5, examples, provenance), ``summary.json`` (its every number),
``scores.json`` and ``curves.csv`` (DVC's metric and plot) and ``figures/*.png``; with MLflow on, the sweep's parent
run gets the summary. Missing optional inputs (an untrained variant, no evaluation yet, no images, no anchor data)
are listed in the report, not fatal. An invalid params file exits 2 with the reason.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hourglass.config.params_file import load_params
from hourglass.report.build import run_report
from hourglass.report.inputs import ReportPaths, find_anchor_data
from pipeline import stage

log = logging.getLogger("pipeline.report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="the params file (default: %(default)s)")
    parser.add_argument("--models", type=Path, default=Path("models"),
                        help="directory holding <variant>/seed-<n>/ per trained model (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("reports"),
                        help="report directory; only the report's own files (results.md, summary.json, scores.json, "
                             "curves.csv, figures/) are written (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=None,
                        help="raw dataset directory with annot/{train,valid}.h5 and images/ "
                             "(default: <download.root>/<dataset> from the params)")
    parser.add_argument("--dvc-lock", type=Path, default=Path("dvc.lock"),
                        help="dvc.lock whose data/processed/<dataset> md5 names the data version "
                             "(default: %(default)s; absent: annotation-file digests are used)")
    parser.add_argument("--anchor-data", type=Path, default=None,
                        help="shared/anchor-data with the authors' released predictions (default: "
                             "$HOURGLASS_ANCHOR_DATA, else the nearest shared/anchor-data above the working "
                             "directory; absent: the reference row is omitted and the report says so)")
    return parser


def report(args: argparse.Namespace) -> str:
    """Build the report; returns the summary line."""
    params = load_params(args.params)
    anchor = args.anchor_data if args.anchor_data is not None else find_anchor_data()
    paths = ReportPaths(params=args.params, models=args.models, out=args.out,
                        raw=args.data or Path(params.download.root) / params.dataset, dvc_lock=args.dvc_lock,
                        anchor=anchor)
    summary, parent_run = run_report(params, paths)
    for line in summary["missing"]:
        log.warning("missing input: %s", line)
    if parent_run:
        log.info("summary and report logged to the parent run of sweep %r", params.mlflow.sweep)
    return (f"report: {len(summary['variants'])} variant(s), {len(summary['missing'])} missing input(s) "
            f"-> {args.out / 'results.md'}")


def main(argv: list[str] | None = None) -> int:
    """Run the stage; exit codes as :mod:`pipeline.stage` says."""
    return stage.run(build_parser(), report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
