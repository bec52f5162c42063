"""Where the network runs: torch eager, or an export on ONNX Runtime or OpenVINO; one factory, one interface.

A :class:`Runtime` maps a batch of crops (N, 3, R, R) to every stack's heatmaps (N, stacks, joints, R/4, R/4) as a
float32 tensor, which is all the runner needs of a network: the flip test, the supervision mode's choice of stack
and the decoding stay in :mod:`hourglass.inference.runner` for every runtime alike. Exported runtimes run in fp32 on
the CPU (fp32 to keep parity with torch: OpenVINO is told so, since its CPU plugin otherwise computes in bf16 where
the CPU has it) and read the export's metadata (:mod:`hourglass.export.metadata`) from the model file itself.

:func:`open_runtime` is the one place a runtime name becomes an object; ``hourglass predict --runtime``, the
evaluate stage and the served model (``HOURGLASS_RUNTIME``) all come through it.
"""

from __future__ import annotations

import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from hourglass.export.deps import require
from hourglass.export.metadata import INPUT_NAME, ExportMetadata
from hourglass.inference.runner import LoadedModel
from hourglass.inference.signal_stack import kept_signal_stack
from hourglass.model import StackedHourglass
from hourglass.precision import Precision

TORCH = "torch"
ONNX_FILE, OPENVINO_FILE = "model.onnx", "model.xml"


class RuntimeChoiceError(ValueError):
    """A runtime name or an export path that cannot be run; the message says which and why."""


class Runtime(ABC):
    """Every stack's heatmaps of a batch of crops, on one engine."""

    name: ClassVar[str]

    @abstractmethod
    def __call__(self, images: Tensor) -> Tensor:
        """(N, stacks, joints, h, w) heatmaps of ``images`` (N, 3, R, R) float32 in [0, 1]."""


class TorchRuntime(Runtime):
    """The module itself, eager, in the run's precision (autocast, memory format)."""

    name = TORCH

    def __init__(self, model: StackedHourglass, precision: Precision) -> None:
        self.model, self.precision = model, precision

    def __call__(self, images: Tensor) -> Tensor:
        with torch.no_grad(), self.precision.autocast():
            return self.model(images.contiguous(memory_format=self.precision.memory_format)).stacks


class ExportedRuntime(Runtime):
    """An exported file on a CPU engine; ``metadata`` is what the file carries."""

    suffixes: ClassVar[tuple[str, ...]]  # the model files this engine reads, preferred first
    metadata: ExportMetadata
    path: Path

    def __call__(self, images: Tensor) -> Tensor:
        batch = np.ascontiguousarray(images.detach().cpu().float().numpy())
        return torch.from_numpy(np.asarray(self._run(batch), dtype=np.float32)).to(images.device)

    @abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray:
        """The engine's output for ``batch``."""


class OnnxRuntime(ExportedRuntime):
    """ONNX Runtime's CPU provider on ``model.onnx``; as many intra-op threads as torch uses (``--threads``)."""

    name = "onnxruntime"
    suffixes = (".onnx",)

    def __init__(self, path: Path) -> None:
        ort = require("onnxruntime", purpose=f"--runtime {self.name}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.log_severity_level = 3  # errors only
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        self.metadata = ExportMetadata.from_props(props, path)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {INPUT_NAME: batch})[0]


class OpenVinoRuntime(ExportedRuntime):
    """OpenVINO's CPU plugin on ``model.xml`` (or ``model.onnx`` through its ONNX frontend), f32 inference."""

    name = "openvino"
    suffixes = (".xml", ".onnx")

    def __init__(self, path: Path) -> None:
        ov = require("openvino", purpose=f"--runtime {self.name}")
        from hourglass.export.openvino import read_rt_info

        core = ov.Core()
        model = core.read_model(str(path))
        self.path = path
        if path.suffix == ".onnx":
            props = _onnx_props(path)
        else:
            props = read_rt_info(model, list(ExportMetadata.__dataclass_fields__))
        self.metadata = ExportMetadata.from_props(props, path)
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": torch.get_num_threads()}
        with kept_signal_stack():  # OpenVINO leaves its own signal stack on the thread (signal_stack.py)
            self.compiled = core.compile_model(model, "CPU", config)
            self.request = self.compiled.create_infer_request()

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with kept_signal_stack():
            return self.request.infer({INPUT_NAME: batch})[self.compiled.output(0)]


EXPORTED: dict[str, type[ExportedRuntime]] = {cls.name: cls for cls in (OnnxRuntime, OpenVinoRuntime)}
RUNTIMES: tuple[str, ...] = (TORCH, *EXPORTED)
RUNTIME_HELP = ("torch (eager, the checkpoint), onnxruntime (ONNX Runtime on model.onnx) or openvino (OpenVINO on "
                "model.xml, or model.onnx); the exported ones run fp32 on the CPU")


def _onnx_props(path: Path) -> dict[str, str]:
    onnx = require("onnx", purpose="reading an ONNX model's metadata")
    proto = onnx.load_model(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def check_runtime(name: str) -> str:
    """``name`` if it is a runtime, else :class:`RuntimeChoiceError` listing them."""
    if name not in RUNTIMES:
        raise RuntimeChoiceError(f"runtime {name!r}: expected one of {', '.join(RUNTIMES)}")
    return name


def export_file(path: str | Path, runtime: str) -> Path | None:
    """The model file ``runtime`` runs in ``path`` (an export directory or a model file), None when ``path`` is not
    an export (a checkpoint, a model directory holding ``checkpoint.pt``)."""
    path = Path(path)
    suffixes = EXPORTED[runtime].suffixes if runtime in EXPORTED else (".onnx", ".xml")
    if path.is_file():
        return path if path.suffix in (".onnx", ".xml") else None
    if not path.is_dir():
        return None
    names = {".onnx": ONNX_FILE, ".xml": OPENVINO_FILE}
    for suffix in suffixes:
        if (path / names[suffix]).is_file():
            return path / names[suffix]
    found = [names[s] for s in (".onnx", ".xml") if (path / names[s]).is_file()]
    if found:
        raise RuntimeChoiceError(f"{path}: holds {', '.join(found)}, which --runtime {runtime} does not run "
                            f"(it reads {', '.join(names[s] for s in suffixes)})")
    return None


def open_exported(runtime: str, path: str | Path) -> ExportedRuntime:
    """The exported model at ``path`` (a file, or an export directory) on ``runtime``."""
    check_runtime(runtime)
    if runtime not in EXPORTED:
        raise RuntimeChoiceError(f"{path}: an exported model runs on {' or '.join(EXPORTED)}, not {runtime} (torch "
                                 "runs the checkpoint it was exported from)")
    found = export_file(path, runtime)
    if found is None:
        raise RuntimeChoiceError(f"{path}: no {' or '.join(EXPORTED[runtime].suffixes)} model to run on {runtime}")
    if found.suffix not in EXPORTED[runtime].suffixes:
        raise RuntimeChoiceError(f"{found}: --runtime {runtime} reads {', '.join(EXPORTED[runtime].suffixes)} files")
    return EXPORTED[runtime](found)


def open_runtime(runtime: str, loaded: LoadedModel, precision: Precision) -> Runtime:
    """``runtime`` for a loaded checkpoint: torch runs its module as it is (at ``precision``); an exported runtime
    gets it exported (:mod:`hourglass.export`) to a temporary directory first: the same file ``hourglass export``
    writes, so what runs here is what would be deployed."""
    check_runtime(runtime)
    if runtime == TORCH:
        return TorchRuntime(loaded.model, precision)
    if precision.name != "fp32" or precision.device.type != "cpu":
        raise RuntimeChoiceError(f"--runtime {runtime} runs fp32 on the CPU, not {precision.describe()}")
    from hourglass.export.exporter import export_loaded  # export imports the predictor, which imports this module

    fmt = "onnx" if runtime == "onnxruntime" else "openvino"
    with tempfile.TemporaryDirectory(prefix="hourglass-export-") as tmp:
        result = export_loaded(loaded, fmt, tmp)
        return open_exported(runtime, result.path)  # the engine holds the model in memory once opened
