"""Our network on the exported runtimes, for ``python -m hourglass.bench peer``: ONNX Runtime and OpenVINO, each in
fp32 and in int8. The int8 graph is quantised from the fp32 export with ONNX Runtime's ``quantize_static``, as
``hourglass export --int8`` does, but calibrated on the benchmark's own input batch: these rows measure speed only.
The accuracy cost of int8 is measured on real validation people by ``hourglass export --int8`` and ``python -m
hourglass.bench predict --runtime all --data DIR``."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch

CPU = torch.device("cpu")
PACKAGES = {"onnxruntime": ("onnx", "onnxscript", "onnxruntime"), "openvino": ("onnx", "onnxscript", "openvino")}
# Result keys of the exported contenders: runtime, then runtime_int8.
EXPORTED_RUNTIMES = ("onnxruntime", "openvino", "onnxruntime_int8", "openvino_int8")


def missing(packages: tuple[str, ...]) -> list[str]:
    """The packages of ``packages`` that are not installed."""
    return [name for name in packages if importlib.util.find_spec(name) is None]


def loaded_for_export(network: torch.nn.Module, args: argparse.Namespace, workdir: Path) -> Any:
    """Our network as ``hourglass export`` loads a checkpoint (written to ``workdir``, read back)."""
    from hourglass.bench.predict import PAPER_NETWORK
    from hourglass.inference.runner import load_model
    from hourglass.io.checkpoint import save_checkpoint

    config = {"dataset": "mpii", "model": PAPER_NETWORK.model_copy(update={
        "stacks": args.stacks, "features": args.features, "input_res": args.res}).model_dump(mode="json")}
    path = workdir / "checkpoint.pt"
    save_checkpoint({"model": network.state_dict(), "config": config}, path)
    return load_model(path, CPU)


def exported_runtimes(network: torch.nn.Module, args: argparse.Namespace, workdir: Path, batch: np.ndarray
                      ) -> tuple[dict[str, Any], dict[str, str]]:
    """({name: engine}, {name: why it was skipped}) for :data:`EXPORTED_RUNTIMES`; ``batch`` (N, 3, R, R) float32
    calibrates the int8 graph."""
    engines: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    wanted = [name for name, packages in PACKAGES.items() if not missing(packages)]
    for name, packages in PACKAGES.items():
        if name not in wanted:
            skipped[name] = skipped[f"{name}_int8"] = f"not installed: {', '.join(missing(packages))}"
    if not wanted:
        return engines, skipped
    from hourglass.export.exporter import export_loaded
    from hourglass.export.int8 import write_onnx_metadata
    from hourglass.export.openvino import export_openvino
    from hourglass.export.quantize import quantize_onnx
    from hourglass.inference.runtimes import open_exported

    loaded = loaded_for_export(network, args, workdir)
    onnx = export_loaded(loaded, "onnx", workdir / "onnx")
    int8 = workdir / "int8" / onnx.path.name
    int8.parent.mkdir(parents=True, exist_ok=True)
    quantize_onnx(onnx.path, int8, [batch])
    write_onnx_metadata(int8, onnx.metadata)
    if "onnxruntime" in wanted:
        engines["onnxruntime"] = open_exported("onnxruntime", onnx.path)
        engines["onnxruntime_int8"] = open_exported("onnxruntime", int8)
    if "openvino" in wanted:
        engines["openvino"] = open_exported("openvino", export_openvino(onnx.path, onnx.metadata, workdir / "openvino"))
        engines["openvino_int8"] = open_exported("openvino", export_openvino(int8, onnx.metadata,
                                                                             workdir / "openvino-int8"))
    return engines, skipped
