"""Accuracy bars on the embedded synthetic dataset (slow: minutes of training; `make test-slow`).

These train the real pipeline pieces (generator -> preprocessing -> ``hourglass.train.loop`` ->
``hourglass.evaluation.stage``) on the default ``params.yaml`` data and check three bars:

* the demo's champion variant trained exactly as params.yaml ships it reaches 45% PCKh@0.5 (flip test), issue 26's
  bar for `make demo`;
* a 2-stack model trained for at most ten minutes on two cores (``TEN_MINUTES``: the demo's model with its former
  batch, 125 steps of 32, for 15 epochs) reaches 60% PCKh@0.5, scored by the evaluation stage (flip test). The tests
  print the training time and assert none (NOTES.md has the studies and the measured figures);
* a model trained in bf16 reaches the fp32 model's validation PCKh within one point (CPUs with native bf16 only:
  elsewhere ``auto`` never picks bf16 and emulated bf16 is slower than fp32).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from hourglass.config.params_file import load_params
from hourglass.data.dataset import create_dataset
from hourglass.data.preprocess import preprocess
from hourglass.data.synthetic import generate_dataset
from hourglass.evaluation.stage import evaluate
from hourglass.precision import cpu_supports_bf16
from hourglass.train.loop import train

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]

# The ten-minute run: params.yaml's model and recipe with the demo's former length and batch (125 steps of 32) for
# 15 epochs instead of 7 (cosine decay over all 15), 60k samples; pinned so the measurement below stays the test's.
# Measured on the 2-core development machine (bf16): 519-555 s of training, 61.95 with flip test (60.11 without). The
# result depends on when the network learns left from right (NOTES.md, third study): nearby runs with batch 16 gave
# 57.7 to 62.6.
FORMER_DEMO = {"mlflow.enabled": False, "train.batch_size": 32, "train.steps_per_epoch": 125, "train.epochs": 7}
TEN_MINUTES = {**FORMER_DEMO, "train.epochs": 15}
TEN_MINUTE_PCKH = 60.0  # % PCKh@0.5 a ten-minute CPU run must reach
# bf16 against fp32: the demo's former run of the same model (7 x 125 x 32). Measured: fp32 47.47 in 483 s, bf16
# 47.66 in 287 s.
PRECISION_RUN = FORMER_DEMO


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    """The default synthetic dataset, generated and preprocessed exactly as the pipeline's first two stages do."""
    params = load_params(REPO / "params.yaml")
    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(params.synthetic, root / "raw", progress=False)
    preprocess(root / "raw", root / "processed", params, progress=False)
    return root


def _train(root: Path, out: Path, overrides: dict) -> tuple[dict, float]:
    params = load_params(REPO / "params.yaml", overrides)
    train_set = create_dataset(root / "processed", "train", params, train=True)
    val_set = create_dataset(root / "processed", "valid", params, train=False)
    started = time.perf_counter()
    result = train(params, out, train_set=train_set, val_set=val_set, variant="hg_stacked_int")
    return result.final_metrics, time.perf_counter() - started


# The demo as shipped (5 epochs of 440 steps of 8): 48.33 (bf16) and 47.92 (fp32) for hg_stacked_int in the study
# (NOTES.md, session 19); with 4 epochs the fp32 demo's champion fell to 44.5.
DEMO_CHAMPION_PCKH = 45.0


def _trained_and_scored(root: Path, tmp_path: Path, overrides: dict, label: str) -> dict:
    """hg_stacked_int trained with ``overrides`` and scored by the evaluate stage (flip test); prints the record."""
    metrics, seconds = _train(root, tmp_path / "model", overrides)
    scored = evaluate(load_params(REPO / "params.yaml", overrides), "hg_stacked_int", tmp_path / "model",
                      root / "processed", root / "raw" / "annot" / "valid.h5", tmp_path / "eval", progress=False)
    record = {"train_seconds": round(seconds), "threads": torch.get_num_threads(), "flip_test": scored["flip_test"],
              "val/pckh/Mean (no flip)": metrics["val/pckh/Mean"], "PCKh@0.5 Mean (flip test)": scored["final"]["Mean"]}
    print(f"{label}:", json.dumps(record))
    return record


def test_the_demo_recipe_keeps_the_champion_above_its_bar(synthetic, tmp_path):
    record = _trained_and_scored(synthetic, tmp_path, {"mlflow.enabled": False}, "the demo's champion")
    assert record["flip_test"] and record["PCKh@0.5 Mean (flip test)"] >= DEMO_CHAMPION_PCKH, record


def test_two_stacks_trained_for_ten_minutes(synthetic, tmp_path):
    record = _trained_and_scored(synthetic, tmp_path, TEN_MINUTES, "ten-minute run")
    assert record["flip_test"] and record["PCKh@0.5 Mean (flip test)"] >= TEN_MINUTE_PCKH, record


@pytest.mark.skipif(not cpu_supports_bf16() and not torch.cuda.is_available(),
                    reason="this CPU has no native bf16 (AVX512-BF16/AMX): training never runs in bf16 here")
def test_bf16_training_matches_fp32_within_one_point(synthetic, tmp_path):
    scores = {}
    for precision in ("fp32", "bf16"):
        metrics, seconds = _train(synthetic, tmp_path / precision, {**PRECISION_RUN, "train.precision": precision})
        scores[precision] = metrics["val/pckh/Mean"]
        print(f"{precision}: PCKh {scores[precision]:.2f} in {seconds:.0f} s")
    assert scores["fp32"] > 25.0, scores  # both far above the mean pose, so the comparison means something
    assert abs(scores["bf16"] - scores["fp32"]) <= 1.0, scores
