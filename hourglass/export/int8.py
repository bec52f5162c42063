"""``hourglass export --int8``: an int8 export whose accuracy cost is measured before it is written.

The steps, all but the last in a temporary directory: the fp32 ONNX export; the calibration crops
(:mod:`~hourglass.export.calibration`); the quantised graph (:mod:`~hourglass.export.quantize`); the headline score
on the validation split of the fp32 graph and of the int8 one, both on the runtime the format is for (ONNX Runtime
for ``onnx``, OpenVINO for ``openvino``; :mod:`~hourglass.export.accuracy`); then, only when the drop (fp32 minus
int8, in points) is at most ``max_drop``, the int8 file into ``out_dir`` with the quantisation record in its
metadata. A larger drop is an :class:`AccuracyDropError` giving both scores, and ``out_dir`` is left as it was.

The data is the preprocessed directory the model was trained on: given, or ``data/processed/<dataset>`` as the
model's config names the dataset, checked against the preprocessing fingerprint its lineage recorded.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from hourglass.data.shards import SUMMARY_NAME
from hourglass.export.accuracy import validation_score
from hourglass.export.calibration import load_calibration
from hourglass.export.deps import require
from hourglass.export.exporter import ExportFormat, ExportResult, export_loaded
from hourglass.export.int8_options import Int8Options
from hourglass.export.metadata import ExportMetadata
from hourglass.export.onnx import ONNX_NAME
from hourglass.export.openvino import export_openvino
from hourglass.export.quantize import quantize_onnx
from hourglass.family import family_of_checkpoint
from hourglass.inference.runner import LoadedModel, load_model
from hourglass.inference.runtimes import open_exported
from hourglass.io.atomic import atomic_path
from hourglass.lineage import Lineage
from hourglass.weights.source import resolve_checkpoint

RUNTIME_OF = {"onnx": "onnxruntime", "openvino": "openvino"}  # where each format's drop is measured


class AccuracyDropError(ValueError):
    """The int8 graph scores more than ``--max-drop`` points below the fp32 one; nothing was written."""


class DataDirError(ValueError):
    """No preprocessed data to calibrate and measure on; the message says what was looked for."""


def find_data_dir(loaded: LoadedModel, given: str | Path | None) -> Path:
    """``given``, else ``data/processed/<dataset>`` of the model's config when it exists and its preprocessing
    fingerprint is the one the model's lineage recorded (or it recorded none)."""
    if given is not None:
        path = Path(given)
        if not (path / SUMMARY_NAME).is_file():
            raise DataDirError(f"--data {path}: no {SUMMARY_NAME} there; give the preprocessed data directory "
                               "(data/processed/<dataset>)")
        return path
    dataset = loaded.config.get("dataset")
    if not isinstance(dataset, str):
        raise DataDirError(f"{loaded.path}: the model's config names no dataset; give --data DIR (the preprocessed "
                           "data it was trained on)")
    path = Path("data/processed") / dataset
    if not (path / SUMMARY_NAME).is_file():
        raise DataDirError(f"--int8 calibrates on and measures the accuracy drop with the preprocessed data the "
                           f"model was trained on: {path / SUMMARY_NAME} (dataset {dataset!r} of its config) is not "
                           "there; give --data DIR")
    lineage = Lineage.from_record(loaded.config.get("lineage"))
    found = json.loads((path / SUMMARY_NAME).read_text()).get("fingerprint")
    if lineage is not None and lineage.data_fingerprint and found != lineage.data_fingerprint:
        raise DataDirError(f"{path}: preprocessed with fingerprint {str(found)[:12]}, but the model was trained on "
                           f"{lineage.data_fingerprint[:12]} (its lineage); give --data DIR to use this or other "
                           "data anyway")
    return path


def export_int8_model(source: str | Path, fmt: ExportFormat, out_dir: str | Path, options: Int8Options,
                      tracking_uri: str | None = None) -> ExportResult:
    """:func:`export_int8` of the model ``source`` names (checkpoint, model directory or MLflow URI)."""
    with tempfile.TemporaryDirectory(prefix="hourglass-model-") as tmp:
        loaded = load_model(resolve_checkpoint(source, tmp, tracking_uri), "cpu")
        return export_int8(loaded, fmt, out_dir, options)


def export_int8(loaded: LoadedModel, fmt: ExportFormat, out_dir: str | Path, options: Int8Options) -> ExportResult:
    """Quantise, measure, and write only within ``options.max_drop`` (see the module docstring)."""
    calibration, max_drop = options.calibration, options.max_drop
    data = find_data_dir(loaded, options.data_dir)
    runtime = RUNTIME_OF[fmt]
    require("onnxruntime", purpose="--int8")
    family = family_of_checkpoint(loaded.config, loaded.config.get("dataset_card"))
    with tempfile.TemporaryDirectory(prefix="hourglass-int8-") as tmp:
        fp32 = export_loaded(loaded, "onnx", Path(tmp) / "fp32")
        calib = load_calibration(data, int(loaded.model_config.input_res), family.joints, calibration)
        _progress(f"calibrating on {len(calib.images)} training crops of {data}")
        int8_path = Path(tmp) / "int8" / ONNX_NAME
        int8_path.parent.mkdir()
        settings = quantize_onnx(fp32.path, int8_path, calib.batches())
        write_onnx_metadata(int8_path, fp32.metadata)  # the runtimes read the metadata from the file
        _progress(f"scoring the fp32 and int8 graphs on {data}'s validation split ({runtime})")
        before = validation_score(loaded, family, data, open_exported(runtime, fp32.path))
        after = validation_score(loaded, family, data, open_exported(runtime, int8_path))
        drop = round(before.score - after.score, 4)
        if drop > max_drop:
            raise AccuracyDropError(
                f"int8 {fmt} export refused: {before.metric} on {data}'s validation split ({before.people} people, "
                f"flip test {'on' if before.flip_test else 'off'}, {runtime}) is {before.score:.2f} in fp32 and "
                f"{after.score:.2f} in int8, a drop of {drop:.2f} points > --max-drop {max_drop:g}; nothing written "
                "to " + str(out_dir))
        record = {**settings, "calibration": calib.record(), "validation": {
            "data_dir": str(data), "runtime": runtime, "metric": before.metric, "people": before.people,
            "flip_test": before.flip_test, "fp32": before.score, "int8": after.score, "drop": drop,
            "max_drop": max_drop}, "data_fingerprint": _fingerprint(data)}
        metadata = replace(fp32.metadata, quantization=record)
        if fmt == "onnx":
            path = write_onnx_metadata(int8_path, metadata, Path(out_dir) / ONNX_NAME)
        else:
            path = export_openvino(write_onnx_metadata(int8_path, metadata), metadata, out_dir)
    return ExportResult(path, fmt, metadata, fp32.folded, fp32.batchnorms_left)


def write_onnx_metadata(source: Path, metadata: ExportMetadata, target: Path | None = None) -> Path:
    """``source`` with ``metadata`` as its metadata_props, written atomically to ``target`` (default: in place)."""
    onnx = require("onnx")
    proto = onnx.load_model(str(source))
    onnx.helper.set_model_props(proto, metadata.to_props())
    target = target or source
    with atomic_path(target, suffix=".onnx") as tmp:
        onnx.save_model(proto, str(tmp))
    return target


def _fingerprint(data: Path) -> str | None:
    return json.loads((data / SUMMARY_NAME).read_text()).get("fingerprint")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
