"""OpenVINO leaves its own alternate signal stack on the thread that compiles a model; the runtime puts the
thread's own back, so a later signal (a subprocess's SIGCHLD) is not delivered onto released memory."""

from __future__ import annotations

import faulthandler
import subprocess
import sys

import numpy as np
import pytest
import torch

from hourglass.inference.signal_stack import current_signal_stack, kept_signal_stack


def test_a_replaced_signal_stack_is_put_back(tmp_path):
    ov = pytest.importorskip("openvino")
    if current_signal_stack() is None:
        pytest.skip("no sigaltstack here (not Linux)")
    faulthandler.enable()  # as pytest and many programs run: an alternate stack of the interpreter's own
    before = current_signal_stack()
    torch.onnx.export(torch.nn.Conv2d(3, 4, 3), (torch.rand(1, 3, 8, 8),), str(tmp_path / "m.onnx"), dynamo=False)
    core = ov.Core()
    model = core.read_model(str(tmp_path / "m.onnx"))
    with kept_signal_stack():
        compiled = core.compile_model(model, "CPU")
        compiled(np.random.rand(1, 3, 8, 8).astype(np.float32))
    assert current_signal_stack() == before
    assert subprocess.run([sys.executable, "-c", "pass"]).returncode == 0  # a SIGCHLD handled on the kept stack


def test_without_a_change_nothing_is_touched():
    before = current_signal_stack()
    with kept_signal_stack():
        pass
    assert current_signal_stack() == before
