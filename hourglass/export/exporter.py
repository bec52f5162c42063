"""A trained model to an export directory: ``hourglass export MODEL --format onnx|openvino --out DIR``.

MODEL is named as ``hourglass predict`` names it (a checkpoint file, a directory holding ``checkpoint.pt``, an MLflow
``models:/`` or ``runs:/`` URI) and loaded by the same helpers, so the export describes the network exactly as
prediction would run it. The network is exported in eval mode with BatchNorm folded; ``openvino`` is converted from
the ONNX graph (written to a temporary directory, not to DIR). ``--int8`` (:mod:`hourglass.export.int8`, kept out
of this module so that the pipeline's stages, which export through :mod:`hourglass.inference.runtimes`, do not
depend on the quantiser's code) quantises the fp32 ONNX file this writes.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hourglass.export.deps import require
from hourglass.export.fold import count_batchnorms, fold_batchnorm
from hourglass.export.metadata import ExportMetadata
from hourglass.export.onnx import export_onnx
from hourglass.export.openvino import export_openvino
from hourglass.inference.predictor import model_joint_set
from hourglass.inference.runner import LoadedModel, load_model
from hourglass.inference.trained_on import read_trained_on
from hourglass.weights.source import resolve_checkpoint

ExportFormat = Literal["onnx", "openvino"]
FORMATS: tuple[str, ...] = ("onnx", "openvino")
PACKAGES: dict[str, tuple[str, ...]] = {"onnx": ("onnx", "onnxscript"), "openvino": ("onnx", "onnxscript", "openvino")}


@dataclass(frozen=True)
class ExportResult:
    """What was written: the model file, its metadata, and how many BatchNorms were folded / left."""

    path: Path
    format: str
    metadata: ExportMetadata
    folded: int
    batchnorms_left: int


def export_loaded(loaded: LoadedModel, fmt: ExportFormat, out_dir: str | Path) -> ExportResult:
    """Export an already loaded checkpoint (see the module docstring)."""
    if fmt not in FORMATS:
        raise ValueError(f"export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    for module in PACKAGES[fmt]:  # a missing package is named before any work, not after the ONNX step
        require(module)
    metadata = ExportMetadata.from_loaded(loaded, model_joint_set(loaded), read_trained_on(loaded))
    network, folded = fold_batchnorm(loaded.model.cpu())
    if fmt == "onnx":
        path = export_onnx(network, metadata, out_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="hourglass-onnx-") as tmp:
            path = export_openvino(export_onnx(network, metadata, tmp), metadata, out_dir)
    return ExportResult(path, fmt, metadata, folded, count_batchnorms(network))


def export_model(source: str | Path, fmt: ExportFormat, out_dir: str | Path,
                 tracking_uri: str | None = None) -> ExportResult:
    """Export the model ``source`` names (checkpoint, model directory or MLflow URI) into ``out_dir``."""
    with tempfile.TemporaryDirectory(prefix="hourglass-model-") as tmp:
        loaded = load_model(resolve_checkpoint(source, tmp, tracking_uri), "cpu")
        return export_loaded(loaded, fmt, out_dir)
