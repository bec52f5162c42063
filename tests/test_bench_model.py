"""``python -m hourglass.bench model --demo`` at tiny sizes: each demo variant's FLOPs per sample are its own network's
and loss's, and its achieved GFLOP/s and peak share follow from them and the measured rates of the same run."""

from __future__ import annotations

import argparse

import pytest
import torch
from shipped import write_params

from hourglass.bench import model as bench_model
from hourglass.model import create_model
from hourglass.precision import Precision
from hourglass.train.criterion import build_criterion

pytestmark = pytest.mark.usefixtures("one_thread")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_model.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_demo_networks_report_flops_gflops_and_peak_share(tmp_path):
    params = write_params(tmp_path / "params.yaml", {"sweep": ["hg", "hg_int"],
                                                     "model": {"features": 16, "input_res": 64, "stem_width": 16},
                                                     "train": {"batch_size": 2}, "flows": {"champion_variant": "hg"}},
                            base="preset")
    result = bench_model.run(_args("--demo", "--params", str(params), "--iters", "1", "--warmup", "0",
                                   "--matmul-size", "64", "--precision", "fp32", "--threads", "1"))
    assert (result["networks"], result["batch"], result["res"], result["threads"]) == ("demo", 2, 64, 1)
    assert set(result["gflop_per_sample"]) == {"hg", "hg_int"}

    # hg_int is hg with three 1x1 heads and their losses: a little more arithmetic, counted independently here
    fp32 = Precision(torch.device("cpu"), "fp32", True)
    batch = {"image": torch.rand(2, 3, 64, 64), "target": torch.rand(2, 16, 16, 16)}
    for name, supervision in (("hg", "final"), ("hg_int", "resolutions")):
        network = create_model(stacks=1, modules=2, features=16, stem_width=16, supervision=supervision)
        flops = bench_model.training_flops(network, build_criterion(supervision, 10.0), batch, fp32) / 2
        assert result["gflop_per_sample"][name] == pytest.approx(flops / 1e9)
    assert result["gflop_per_sample"]["hg_int"] > result["gflop_per_sample"]["hg"]

    for name, per_sample in result["gflop_per_sample"].items():
        for prefix in ("", "baseline_"):
            gflops = result[f"{prefix}train_img_s"][name] * per_sample
            assert result[f"{prefix}train_gflops"][name] == pytest.approx(gflops)
            assert result[f"{prefix}peak_share"][name] == pytest.approx(gflops / result["matmul_gflops_fp32"])


def test_paper_networks_keep_their_defaults():
    subjects, batch, res = bench_model.paper_subjects(_args("--stacks", "1"))
    assert (batch, res) == (bench_model.PAPER_BATCH, bench_model.PAPER_RES)
    assert [s.network for s in subjects] == [{"stacks": 1}] and subjects[0].train.optimizer == "rmsprop"
