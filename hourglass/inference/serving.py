"""The pose model that training registers in MLflow: an MLflow "model from code" pyfunc.

MLflow runs this file when the model is loaded (``mlflow.pyfunc.load_model``, ``mlflow models serve``); its last
line hands MLflow the model with ``mlflow.models.set_model``. The trained weights travel as the artifact
``checkpoint`` (a plain-tensor checkpoint read with ``torch.load(weights_only=True)``) and the code as the model's
copy of the ``hourglass`` package (``code_paths``), so loading never unpickles anything.

Input, one row per person (any number of rows):

* ``image``: the encoded image file (JPEG, PNG, ...) as bytes, or over REST its base64 text, e.g.
  ``{"dataframe_split": {"columns": ["image"], "data": [["/9j/4AAQ..."]]}}``; or the pixels as an (H, W, 3) RGB
  array (numpy in Python, nested lists of 0..255 over REST);
* ``box`` (optional, 4 numbers; typed "any" so JSON integers pass): ``[x1, y1, x2, y2]`` around the person;
  null or absent: the whole image with the person centred.

Output, one row per input row: ``keypoints`` ``[[x, y, confidence], ...]`` (16 joints for MPII models, 0-based
pixels of the image), ``center`` and ``scale`` of the crop used. The confidence is on the training target's
scale, exactly as ``hourglass predict`` reports it (the same ``PosePredictor.predict_crops`` computes both): the
heatmap peak divided by the checkpoint config's ``train.target_scale``, about 1 for a perfect peak
(``hourglass.inference.predictor.CONFIDENCE_NOTE``). A bad row (undecodable image, box outside the
image) fails the request (HTTP 400) with a message naming the row. ``HOURGLASS_DEVICE`` and
``HOURGLASS_PRECISION`` in the server's environment choose where and in what it computes (CPU, ``auto``), and
``HOURGLASS_RUNTIME`` on what (:mod:`hourglass.inference.runtimes`): ``torch`` (default) runs the checkpoint,
``onnxruntime`` or ``openvino`` the model's ``onnx`` artifact (logged with ``mlflow.log_onnx``), or, for a model
logged without one, the checkpoint exported when the model loads; those run fp32 on the CPU.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.types.schema import AnyType, Array, ColSpec, DataType, Schema

ARTIFACT = "checkpoint"
ONNX_ARTIFACT = "onnx"  # model.onnx of `hourglass export`, when the run logged one (mlflow.log_onnx)
MODEL_CODE = Path(__file__).resolve()  # what python_model= points at when logging
CODE_PACKAGE = MODEL_CODE.parents[1]  # the hourglass package, copied into the logged model (code_paths=)
DEVICE_ENV = "HOURGLASS_DEVICE"  # where the served model runs: cpu (default), cuda, cuda:N
PRECISION_ENV = "HOURGLASS_PRECISION"  # auto (default: bf16 where native, else fp32), fp32, bf16, fp16
RUNTIME_ENV = "HOURGLASS_RUNTIME"  # torch (default), onnxruntime, openvino


def signature() -> ModelSignature:
    """Images (+ optional boxes) in, keypoints out; column-based, so any number of rows is accepted. Both input
    columns are typed "any": ``image`` takes bytes, base64 text or a pixel array (MLflow's ``binary`` type would
    refuse arrays), ``box`` integers or floats (its ``Array(double)`` refuses JSON integers); ``_predict`` checks
    every value and names the row it rejects."""
    inputs = Schema([ColSpec(AnyType(), "image"), ColSpec(AnyType(), "box", required=False)])
    outputs = Schema([ColSpec(Array(Array(DataType.double)), "keypoints"), ColSpec(Array(DataType.double), "center"),
                      ColSpec(DataType.double, "scale")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example() -> pd.DataFrame:
    """A one-row request (a small grey PNG, no box) that MLflow stores beside the model as the example of a
    request (``serving_input_example.json``: the JSON a REST client sends)."""
    import cv2

    ok, png = cv2.imencode(".png", np.full((64, 48, 3), 128, np.uint8))
    if not ok:
        raise RuntimeError("cv2.imencode failed to write the example PNG")
    return pd.DataFrame({"image": [png.tobytes()]})


def _box(value: Any) -> list[float] | None:
    """A cell of the ``box`` column: None/NaN for no box, else its four numbers."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return [float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1)]


class PoseModel(PythonModel):
    """Keypoints of the person in each row's image (see the module docstring)."""

    def load_context(self, context: PythonModelContext) -> None:
        from hourglass.inference.predictor import PosePredictor
        from hourglass.inference.runtimes import TORCH, check_runtime

        runtime = check_runtime(os.environ.get(RUNTIME_ENV, TORCH))
        device, precision = os.environ.get(DEVICE_ENV, "cpu"), os.environ.get(PRECISION_ENV, "auto")
        exported = context.artifacts.get(ONNX_ARTIFACT)
        if runtime != TORCH and exported:
            self.predictor = PosePredictor.from_export(exported, runtime, device=device, precision=precision)
        else:
            self.predictor = PosePredictor.from_checkpoint(context.artifacts[ARTIFACT], device=device,
                                                           precision=precision, runtime=runtime)

    def predict(self, context: PythonModelContext, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        try:
            return self._predict(model_input)
        except ValueError as err:  # PredictError: a bad row; a 400 answer that says which and why
            raise MlflowException.invalid_parameter_value(str(err)) from None

    def _predict(self, model_input: pd.DataFrame) -> pd.DataFrame:
        from hourglass.inference.errors import PredictError
        from hourglass.inference.inputs import as_rgb_array
        from hourglass.inference.people import Person

        if not isinstance(model_input, pd.DataFrame) or "image" not in model_input.columns:
            raise PredictError("input must be a table with an 'image' column (encoded image bytes, base64 over REST)")
        items = []
        boxes = model_input["box"] if "box" in model_input.columns else [None] * len(model_input)
        for row, (image, box) in enumerate(zip(model_input["image"], boxes, strict=True)):
            name = f"row {row}"
            rgb = as_rgb_array(image, name)
            height, width = rgb.shape[:2]
            box = _box(box)
            try:
                person = Person.whole_image(width, height) if box is None else Person.from_box(box, width, height)
            except PredictError as err:
                raise PredictError(f"{name}: {err}") from None
            items.append((rgb, [person]))
        results = self.predictor.predict(items)
        records = [poses[0].to_dict() for poses in results]
        return pd.DataFrame({key: [r[key] for r in records] for key in ("keypoints", "center", "scale")})


def _register() -> None:
    import mlflow.models

    mlflow.models.set_model(PoseModel())


if __name__ != "hourglass.inference.serving":  # loaded by MLflow as model code, not imported as part of the package
    _register()
