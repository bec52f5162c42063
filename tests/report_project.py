"""A fabricated models/ tree for the report tests, over a tiny synthetic dataset, and the report stage run on it.

Predictions are the ground truth plus noise, scored with the real metric, so every number of the report can be
checked against an independent computation; :func:`run_stage` also checks that summary.json, scores.json,
curves.csv and results.md are the stage's :class:`~hourglass.report.summary.Summary` serialised and rendered.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import yaml
from shipped import paper, write_params

from hourglass.config.params_file import load_params, parse_params
from hourglass.data.synthetic import generate_dataset
from hourglass.evaluation.score import score
from hourglass.family import family_named
from hourglass.io.annotations import Annotations, read_annotations
from hourglass.io.eval_files import read_ground_truth, read_predictions, write_predictions
from hourglass.report.bootstrap import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED
from hourglass.report.inputs import ReportPaths
from hourglass.report.markdown import render_markdown
from hourglass.report.summary import Summary, compute_summary
from pipeline.report import main

FIGURES = ("figure4.png", "figure5.png", "examples_best.png", "examples_worst.png")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def synthetic_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/raw/synthetic with a few images: real JPEGs and annotation files in the download layout."""
    out = tmp_path_factory.mktemp("data") / "raw" / "synthetic"
    generate_dataset(paper("synthetic", train_images=16, valid_images=8, workers=1), out, progress=False)
    return out


def project_params(tmp: Path, raw: Path, dataset: str = "synthetic", seeds: tuple[int, ...] = (0,)) -> Path:
    params = {"dataset": dataset, "sweep": ["hg2", "hg1", "hg4"], "seeds": list(seeds),
              "flows": {"champion_variant": "hg2"},
              "download": {"root": str(raw.parent)},
              "train": {"batch_size": 4, "variants": {"hg2": {"model": {"stacks": 2}}, "hg1": {"model": {"stacks": 1}},
                                                      "hg4": {"model": {"stacks": 4}}}},
              "mlflow": {"enabled": False}, "report": {"examples": 4}}
    return write_params(tmp / "params.yaml", params)


def noisy(gt: Annotations, sigma: float, seed: int) -> np.ndarray:
    """Predictions: ground truth plus Gaussian noise in head-size units; unannotated joints at the centre."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, sigma, gt.joints.shape) * gt.normalize[:, None, None]
    return np.where(gt.annotated[..., None], gt.joints + noise, gt.center[:, None, :])


def eval_block(preds: np.ndarray, valid: Path, dataset: str | None = None) -> tuple[dict, dict]:
    gt = read_ground_truth(valid)
    family = family_named(dataset or gt.dataset)
    result = score(preds, gt, dataset=family.name)
    final = {**result.as_dict(), "figure4": family.figure4(result)}
    return final, dict(zip(result.joint_names, result.per_joint.tolist(), strict=True))


def fake_variant(models: Path, raw: Path, params: Path, name: str, stacks: int, sigma: float,
                  seed: int = 0) -> dict:
    """models/<name>/seed-<seed>/ as training and evaluation leave it; returns the evaluation's final scores. The
    noise draw depends on the stack count and the seed only (two variants of equal stacks predict alike)."""
    out = models / name / f"seed-{seed}"
    (out / "eval").mkdir(parents=True)
    gt = read_annotations(raw / "annot" / "valid.h5")
    valid = raw / "annot" / "valid.h5"
    final_preds = noisy(gt, sigma, seed=stacks + 100 * seed)
    write_predictions(out / "eval" / "preds.h5", final_preds,
                      {"maxvals": np.ones(gt.joints.shape[:2]), "rows": np.arange(len(gt))})
    final, per_joint = eval_block(final_preds, valid)
    stack_list = [{"stack": stacks, "metrics": final, "per_joint": per_joint}]
    if stacks > 1:
        first, first_joints = eval_block(noisy(gt, 2 * sigma, seed=10 + stacks + 100 * seed), valid)
        stack_list.insert(0, {"stack": 1, "metrics": first, "per_joint": first_joints})
    evaluation = {"variant": name, "seed": seed, "dataset": "synthetic", "metric": "PCKh@0.5", "flip_test": True,
                  "num_people": len(gt), "final": final, "per_joint": per_joint, "stacks": stack_list,
                  "seconds": 12.5, "images_per_s": 3.2}
    if stacks > 1:  # the 1-stack variant's count must then come from its config
        evaluation["parameters"] = 6_570_400
    (out / "eval" / "metrics.json").write_text(json.dumps(evaluation))
    config = yaml.safe_load(params.read_text())
    resolved = parse_params(config).model_copy(deep=True).model_dump(mode="json")
    resolved["model"]["stacks"] = stacks
    (out / "config.yaml").write_text(yaml.safe_dump({"variant": name, **resolved, "seed": seed}))
    (out / "mlflow.json").write_text(json.dumps({"run_id": f"run-{name}" + (f"-{seed}" if seed else "")}))
    prefix = "val/pckh" if "Mean@0.1" in final else "val/pck"
    columns = ["epoch", f"{prefix}/Mean", "val/figure4",
               "val/loss", "train/loss", "train/lr", "train/img_s", "step"]
    with open(out / "epochs.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for epoch in range(1, 4):
            writer.writerow([epoch, 20 * epoch, 15 * epoch + stacks + seed, 1e-3, 2e-3, 2.5e-4, 8.0 + seed,
                             10 * epoch])
    (out / "metrics.json").write_text(json.dumps({f"{prefix}/Mean": 60.0, f"best/{prefix}/Mean": 60.0,
                                                  "best/epoch": 3.0, "steps": 30.0}))
    return final




@dataclass(frozen=True)
class Report:
    """What one run of the stage left: its output directory, its results.md, and the summary it renders."""

    out: Path
    text: str
    summary: Summary


def masked(markdown: str) -> str:
    """results.md without its "generated" time, the one line that differs between two renderings."""
    return "\n".join("| generated | (masked) |" if line.startswith("| generated | ") else line
                     for line in markdown.splitlines())


def run_stage(tmp: Path, params: Path, models: Path, anchor: Path) -> Report:
    """Run the stage, and compute the summary of the same inputs: the stage's summary.json, scores.json, curves.csv
    and results.md must be that summary serialised and rendered."""
    out = tmp / "reports"
    assert main(["--params", str(params), "--models", str(models), "--out", str(out),
                 "--dvc-lock", str(tmp / "dvc.lock"), "--anchor-data", str(anchor)]) == 0
    loaded = load_params(params)
    summary = compute_summary(loaded, ReportPaths(params=params, models=models, out=out,
                                                  raw=Path(loaded.download.root) / loaded.dataset,
                                                  dvc_lock=tmp / "dvc.lock", anchor=anchor))
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary.to_json()))
    assert json.loads((out / "scores.json").read_text()) == summary.scores()
    assert (out / "curves.csv").read_text() == summary.curves_csv()
    text = (out / "results.md").read_text()
    assert masked(text) == masked(render_markdown(summary))
    return Report(out, text, summary)


def section(text: str, title: str) -> str:
    """The markdown section headed ``title`` (up to the next section of the same or a higher level)."""
    return text.split(f"## {title}\n")[1].split("\n## ")[0]


def table_row(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


def assert_pngs(figures: Path) -> None:
    for name in FIGURES:
        path = figures / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE, name
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 200, (name, pixels.shape)
        assert pixels[..., :3].std() > 0.01, f"{name} is blank"


def resampled_scores(preds: Path, valid: Path) -> dict[str, np.ndarray]:
    """Mean and Figure-4 accuracy of ``preds`` on every resample of the validation people, each scored from
    scratch by the evaluator (the report's documented draws: rows with an annotated joint, resample b = row b of
    ``default_rng(BOOTSTRAP_SEED).integers(0, people, (BOOTSTRAP_RESAMPLES, people))``)."""
    gt = read_ground_truth(valid)
    pred = read_predictions(preds, joints=gt.joints.shape[1], people=len(gt))
    scored = np.flatnonzero(gt.annotated.any(axis=1))
    people = len(scored)
    draws = np.random.default_rng(BOOTSTRAP_SEED).integers(0, people, size=(BOOTSTRAP_RESAMPLES, people))
    family = family_named(gt.dataset)
    out: dict[str, list[float]] = {"Mean": [], "figure4": []}
    for rows in scored[draws]:
        result = family.score(pred[rows], gt.joints[rows], gt.annotated[rows], gt.normalize[rows])
        out["Mean"].append(result.mean)
        out["figure4"].append(family.figure4(result))
    return {k: np.array(v) for k, v in out.items()}
