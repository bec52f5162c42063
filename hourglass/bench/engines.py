"""The engines ``python -m hourglass.bench predict --runtime all`` compares, each built from one loaded checkpoint:
torch eager fp32 (NCHW, the baseline every ratio is to), torch's fast path (``precision: auto`` with channels_last:
bf16 where the CPU has it natively), ONNX Runtime and OpenVINO fp32 on the checkpoint's exports, and both runtimes on
int8 graphs: given (``--int8 DIR``, an ``hourglass export --int8`` directory) or made here from the fp32 ONNX file.

Every engine is what the product runs: the exports are ``hourglass export``'s own files, written to a temporary
directory; a made int8 graph is quantised as ``export --int8`` quantises (:mod:`hourglass.export.quantize`), on the
training crops of ``--data`` when given, else on the benchmark's own crops (then its speed is meaningful, its
accuracy is not, and the row says so).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from hourglass.export.calibration import load_calibration
from hourglass.export.exporter import export_loaded
from hourglass.export.int8 import write_onnx_metadata
from hourglass.export.openvino import export_openvino
from hourglass.export.quantize import quantize_onnx
from hourglass.family import DatasetFamily
from hourglass.inference.runner import LoadedModel
from hourglass.inference.runtimes import ONNX_FILE, OPENVINO_FILE, Runtime, TorchRuntime, open_exported
from hourglass.precision import Precision, select_precision

CPU = torch.device("cpu")
FP32 = select_precision("fp32", CPU, channels_last=False)


@dataclass(frozen=True)
class Engine:
    """One row of the table: what runs (``runtime``), in which numbers (``precision``), on which model."""

    label: str
    runtime: Runtime
    loaded: LoadedModel  # its module combines the stacks (and computes, for torch rows)
    precision: Precision  # the predictor's (an exported runtime's numbers are its graph's: ``numbers``)
    numbers: str  # what the table's precision column says
    note: str = ""


def torch_engines(loaded: LoadedModel) -> list[Engine]:
    """Eager fp32 NCHW, and the fast path on its own copy of the module (channels_last converts it in place)."""
    fast = select_precision("auto", CPU, channels_last=True)
    fast_model = copy.deepcopy(loaded.model).to(memory_format=fast.memory_format).eval()
    return [Engine("torch eager fp32", TorchRuntime(loaded.model, FP32), loaded, FP32, "fp32 NCHW"),
            Engine("torch fast path", TorchRuntime(fast_model, fast), replace(loaded, model=fast_model), fast,
                   f"{fast.name} {'channels_last' if fast.channels_last else 'NCHW'}")]


def exported_engines(loaded: LoadedModel, workdir: Path) -> tuple[list[Engine], Path]:
    """ONNX Runtime and OpenVINO fp32 on the checkpoint's exports; also returns the fp32 ONNX file."""
    onnx = export_loaded(loaded, "onnx", workdir / "fp32")
    xml = export_openvino(onnx.path, onnx.metadata, workdir / "fp32-ov")
    return [Engine("onnxruntime fp32", open_exported("onnxruntime", onnx.path), loaded, FP32, "fp32"),
            Engine("openvino fp32", open_exported("openvino", xml), loaded, FP32, "fp32 (f32 hint)")], onnx.path


def given_int8_engines(loaded: LoadedModel, export_dir: Path) -> list[Engine]:
    """Every runtime that reads ``export_dir``'s files: ONNX Runtime and OpenVINO a model.onnx, OpenVINO a
    model.xml."""
    engines = []
    for runtime, name in (("onnxruntime", ONNX_FILE), ("openvino", ONNX_FILE), ("openvino", OPENVINO_FILE)):
        if (export_dir / name).is_file():
            engine = open_exported(runtime, export_dir / name)
            kind = "int8" if engine.metadata.quantization is not None else "fp32"
            engines.append(Engine(f"{runtime} {kind}", engine, loaded, FP32, kind, note=f"{export_dir / name}"))
    return engines


def made_int8_engines(loaded: LoadedModel, fp32_onnx: Path, workdir: Path, family: DatasetFamily,
                      data: Path | None, calibration: int, own_crops: np.ndarray) -> list[Engine]:
    """Both runtimes on an int8 graph quantised from ``fp32_onnx`` (see the module docstring)."""
    batches: Iterable[np.ndarray]
    if data is not None:
        calib = load_calibration(data, int(loaded.model_config.input_res), family.joints, calibration)
        batches, note = calib.batches(), f"calibrated on {len(calib.images)} training crops of {data}"
    else:
        batches, note = [own_crops], f"calibrated on the benchmark's {len(own_crops)} crops: speed only"
    path = workdir / "int8" / ONNX_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    quantize_onnx(fp32_onnx, path, batches)
    metadata = open_exported("onnxruntime", fp32_onnx).metadata
    write_onnx_metadata(path, metadata)
    xml = export_openvino(path, metadata, workdir / "int8-ov")
    return [Engine("onnxruntime int8", open_exported("onnxruntime", path), loaded, FP32, "int8 QDQ", note=note),
            Engine("openvino int8", open_exported("openvino", xml), loaded, FP32, "int8 QDQ", note=note)]
