"""The fp32 ONNX export quantised to int8: ONNX Runtime's post-training static quantisation (``quantize_static``).

One quantised graph serves both formats: ONNX Runtime runs it as it is, and OpenVINO's ONNX frontend reads its
QuantizeLinear/DequantizeLinear pairs as FakeQuantize and runs the convolutions in int8, so OpenVINO needs no
quantiser of its own (NNCF) and both runtimes run the same ranges. The settings are the usual ones for CPUs:

* QDQ format (QuantizeLinear/DequantizeLinear around float operators), which both engines fuse into int8 kernels;
* weights int8, symmetric, per output channel (a convolution's channels differ widely in scale, BatchNorm having
  been folded into them);
* activations uint8, asymmetric, one range per tensor, the min/max seen over the calibration crops (MinMax).

ONNX Runtime's MinMax calibrator adds a ReduceMin/ReduceMax pair per tensor to a copy of the graph and keeps only
those scalars per batch, so a few hundred crops of the paper's network fit in memory. ``CalibMaxIntermediateOutputs``
is not used: in onnxruntime 1.32 it drops the batches it clears instead of merging their ranges.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from hourglass.export.deps import require
from hourglass.export.metadata import INPUT_NAME

SETTINGS: dict[str, Any] = {
    "method": "onnxruntime.quantization.quantize_static",
    "format": "QDQ",
    "weights": "int8 symmetric, per output channel",
    "activations": "uint8 asymmetric, per tensor",
    "calibration_method": "MinMax",
}


def quantize_onnx(fp32_path: str | Path, int8_path: str | Path, batches: Iterable[np.ndarray]) -> dict[str, Any]:
    """Write ``int8_path`` quantised from ``fp32_path`` on the calibration crops ``batches`` ((n, 3, R, R) float32,
    e.g. :meth:`CalibrationSet.batches`); returns the settings used (for the export's metadata). ``int8_path`` is a
    working file: the exporter adds the metadata and places it."""
    require("onnxruntime", purpose="--int8")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        """The calibration crops, one batch per ``get_next``."""

        def __init__(self) -> None:
            self.batches = iter(batches)

        def get_next(self) -> dict[str, Any] | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    with _quiet_quantizer():
        quantize_static(str(fp32_path), str(int8_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    return dict(SETTINGS)


class _quiet_quantizer:
    """The quantiser logs on the root logger: advice to pre-process the model, and one warning per use of a
    BatchNorm's rank-1 scale (per-channel on axis 1 does not apply to it; it is quantised per tensor instead)."""

    def __enter__(self) -> None:
        self.logger = logging.getLogger()
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self.logger.setLevel(self.level)
