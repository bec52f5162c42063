"""``python -m hourglass.bench profile`` at tiny sizes: every part of the step is there, backward included, and the
shares add up to the profiled step."""

from __future__ import annotations

import argparse
import json

import pytest
from shipped import PARAMS

from hourglass.bench import profile
from hourglass.bench.step_parts import GRAD_ACCUMULATION, OTHER_FORWARD, POOL

pytestmark = pytest.mark.usefixtures("one_thread")

NETWORK_PARTS = ("stem", "residuals 16px", "residuals 8px", "residuals 4px", "residuals 2px", "residuals 1px", POOL,
                 "heads", profile.LOSS)


def test_profile_shares_cover_the_step_and_every_part(tmp_path):
    parser = argparse.ArgumentParser()
    profile.add_arguments(parser)
    out = tmp_path / "profile.json"
    args = parser.parse_args(["--variant", "hg_int", "hg_stacked_int", "--res", "64", "--batch", "2", "--steps", "2",
                              "--warmup", "1", "--people", "6", "--val-people", "5", "--matmul-size", "64",
                              "--params", str(PARAMS), "--json", str(out)])
    result = profile.run(args)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert set(result["variants"]) == {"hg_int", "hg_stacked_int"}
    for figures in result["variants"].values():
        parts = figures["parts"]
        assert sum(row["share"] for row in parts.values()) == pytest.approx(100.0)
        for name in NETWORK_PARTS:  # forward and backward, each attributed to its part
            assert parts[name]["forward_ms"] > 0 and parts[name]["backward_ms"] > 0, name
        for name in ("data", "zero_grad", "optimiser", OTHER_FORWARD, GRAD_ACCUMULATION):
            assert parts[name]["ms"] > 0, name
        assert abs(parts["unattributed"]["share"]) < 15
        assert figures["gflops"] > 0 and figures["peak_share"] > 0 and figures["gflop_per_sample"] > 0
        assert figures["validation"]["epoch_s"] > 0 and 0 < figures["validation"]["epoch_share"] < 1
