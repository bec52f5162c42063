"""The network as an ONNX file: ``torch.onnx.export`` with the torch.export-based exporter (``dynamo=True``).

Chosen over the TorchScript exporter (deprecated since torch 2.9) because its graph is cleaner for this network: no
``Constant`` nodes, no tracer warnings, the batch a named symbolic dimension (``batch``) rather than a traced one.
Input ``images`` (N, 3, R, R) float32, output ``heatmaps`` (N, stacks, joints, R/4, R/4): every stack, as the
module's ``forward``; decoding, the flip test and the supervision mode's choice of stack stay in the runner. The
metadata (:mod:`hourglass.export.metadata`) goes into ``metadata_props``; the file is written atomically.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from hourglass.export.deps import require
from hourglass.export.metadata import INPUT_NAME, OUTPUT_NAME, ExportMetadata
from hourglass.io.atomic import atomic_path

ONNX_NAME = "model.onnx"
OPSET = 18  # the dynamo exporter's own default; onnxruntime and OpenVINO both read it


def export_onnx(model: nn.Module, metadata: ExportMetadata, out_dir: str | Path) -> Path:
    """Write ``out_dir/model.onnx`` of ``model`` (already in eval mode, BatchNorm folded) with ``metadata``; returns
    its path. Needs ``onnx`` and ``onnxscript`` (the exporter's own dependency)."""
    onnx = require("onnx")
    require("onnxscript")
    example = torch.zeros(2, 3, metadata.input_res, metadata.input_res)
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(_StacksOnly(model).eval(), (example,), dynamo=True, input_names=[INPUT_NAME],
                                    output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},), opset_version=OPSET,
                                    optimize=True, verbose=False)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, metadata.to_props())
    onnx.checker.check_model(proto)
    path = Path(out_dir) / ONNX_NAME
    with atomic_path(path, suffix=".onnx") as tmp:
        onnx.save_model(proto, str(tmp))
    return path


class _StacksOnly(nn.Module):
    """The network with its stacks' heatmaps as the one output (a runtime has no use for the resolutions mode's
    training heads; the exporter drops them from the graph)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images).stacks


class _quiet_exporter:
    """Silence the exporter's progress lines and its note about torchvision ops (not used by this network)."""

    def __enter__(self) -> None:
        self.logger = logging.getLogger("torch.onnx")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self.logger.setLevel(self.level)
