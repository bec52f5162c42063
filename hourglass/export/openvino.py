"""The network as OpenVINO IR (``model.xml`` + ``model.bin``), converted from the ONNX export.

Converting the ONNX file rather than tracing the module again keeps one graph behind every runtime: the same folded
network, the same dynamic batch. It is read by OpenVINO's ONNX frontend (``Core.read_model``), the one
``openvino.convert_model`` calls for an ``.onnx`` file, without ``convert_model``'s usage telemetry, which it sends
unasked (``enable_opt_in_dialog=False``) wherever no CI variable is set; this project sends nothing. The weights
are saved in fp32 (``compress_to_fp16=False``; OpenVINO's default halves them, which would break fp32 parity). The
metadata goes into the model's ``rt_info`` under ``hourglass`` (one entry per :class:`ExportMetadata` field, the same
JSON text as the ONNX ``metadata_props``); both files are written under temporary names and renamed, the ``.xml``
last.
"""

from __future__ import annotations

from pathlib import Path

from hourglass.export.deps import require
from hourglass.export.metadata import PREFIX, ExportMetadata
from hourglass.io.atomic import atomic_files

XML_NAME = "model.xml"
BIN_NAME = "model.bin"
RT_INFO_SECTION = PREFIX.rstrip(".")  # rt_info: hourglass -> {input_res: "...", ...}


def export_openvino(onnx_path: str | Path, metadata: ExportMetadata, out_dir: str | Path) -> Path:
    """Write ``out_dir/model.xml`` (+ ``model.bin``) converted from ``onnx_path`` with ``metadata``; returns the
    ``.xml`` path."""
    ov = require("openvino")
    model = ov.Core().read_model(str(onnx_path))
    for key, value in metadata.to_props().items():
        model.set_rt_info(value, [RT_INFO_SECTION, key.removeprefix(PREFIX)])
    with atomic_files(out_dir, [BIN_NAME, XML_NAME]) as staging:
        ov.save_model(model, str(staging / XML_NAME), compress_to_fp16=False)
    return Path(out_dir) / XML_NAME


def read_rt_info(model: object, fields: list[str]) -> dict[str, str]:
    """The ``hourglass.<field>`` map :meth:`ExportMetadata.from_props` reads, from an ``openvino.Model``'s rt_info
    (fields it lacks are left out, for ``from_props`` to name)."""
    props: dict[str, str] = {}
    for field in fields:
        if model.has_rt_info([RT_INFO_SECTION, field]):  # type: ignore[attr-defined]
            props[f"{PREFIX}{field}"] = model.get_rt_info([RT_INFO_SECTION, field]).astype(str)  # type: ignore
    return props
