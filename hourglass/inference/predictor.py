"""Pose prediction on a user's own images and videos: the library behind ``hourglass predict`` and the served model.

One person per crop, as the network was trained: the person is given by a box, by MPII's centre and scale, or by
default as the whole image with the person assumed centred (:mod:`hourglass.inference.people`). Each crop is cut
with the training preprocessing's own warp (``hourglass.data.crop.crop_person``: the ``hourglass.geometry`` crop
matrix, anti-aliased for large downscales), run through the network with the flip test as in evaluation
(``hourglass.inference.runner.predict_heatmaps``), and decoded with the quarter-pixel step back to the original image
(``decode_to_image``). Keypoints are ``(x, y, confidence)`` in 0-based pixels of the image as displayed.

The confidence is on the training target's scale: the peak value of the final (flip-averaged) heatmap divided by
the checkpoint config's ``train.target_scale`` (1 when the config has none). Training multiplies the Gaussian
targets, whose peak is 1, by that factor (10 in the CPU preset, 1 in the recipes), so a raw peak runs to about
``target_scale``; divided by it, a perfect peak is about 1 and 0 means no evidence at all. It is a heatmap value,
not a probability: it can be a little above 1 or below 0. The served model (``hourglass.inference.serving``) runs
through :meth:`PosePredictor.predict_crops` too, so it reports the same numbers (:data:`CONFIDENCE_NOTE`).

What the model was trained on travels with it (:class:`~hourglass.inference.trained_on.TrainedOn`): the dataset
and the validation score of its weights, with a warning for a model trained on the synthetic people.

Models come from a checkpoint (a file, or a ``models/<variant>/seed-<n>/`` directory holding ``checkpoint.pt``),
from an MLflow model URI (``models:/<name>@champion``, ``runs:/<id>/model``) whose pose pyfunc carries such a
checkpoint as an artifact, or from an export directory of ``hourglass export`` (its metadata stands in for the
checkpoint's config). Checkpoints are only ever read with ``torch.load(weights_only=True)``. The network runs on the
runtime asked for (:mod:`hourglass.inference.runtimes`: torch, onnxruntime, openvino); everything around it (crop,
flip test, decoding, confidence) is this module's, the same for all.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hourglass.data.augment import to_float_chw
from hourglass.data.crop import CropSpec, crop_person
from hourglass.dataset_card import CardError
from hourglass.family import family_of_checkpoint
from hourglass.inference.errors import PredictError
from hourglass.inference.people import Person
from hourglass.inference.runner import LoadedModel, decode_to_image, load_model, predict_heatmaps
from hourglass.inference.runtimes import TORCH, Runtime, TorchRuntime, export_file, open_exported, open_runtime
from hourglass.inference.trained_on import TrainedOn, read_trained_on
from hourglass.io.checkpoint import CheckpointError
from hourglass.joints import JOINT_SETS, JointSet
from hourglass.precision import Precision, select_precision
from hourglass.weights.source import MLFLOW_SCHEMES, resolve_checkpoint

CONFIDENCE_NOTE = ("the final heatmap's peak (flip-averaged with the flip test) divided by the checkpoint's "
                   "train.target_scale, the factor training multiplied the targets by: about 1 for a perfect "
                   "peak, 0 for no evidence; a heatmap value, not a probability (can be slightly above 1 or "
                   "below 0)")


def model_joint_set(loaded: LoadedModel) -> JointSet:
    """The keypoints the model predicts: its training config's dataset card (stored in the checkpoint, else the
    card its dataset names), else MPII's or FLIC's joints recognised by their count (checkpoints without a config)."""
    config = loaded.config
    try:
        named = family_of_checkpoint(config, config.get("dataset_card")).joints
    except (CardError, ValueError):
        named = None
    if named is not None and named.count == loaded.model.joints:
        return named
    by_count = [s for s in JOINT_SETS.values() if s.count == loaded.model.joints]
    if not by_count:
        raise CheckpointError(f"{loaded.path}: the model predicts {loaded.model.joints} keypoints and its "
                              "checkpoint carries no dataset card naming them (known without a card: "
                              f"{', '.join(f'{s.name}: {s.count}' for s in JOINT_SETS.values())})")
    return by_count[0]


@dataclass(frozen=True)
class PoseResult:
    """One person's prediction: ``keypoints`` (J, 3) = x, y, confidence in original-image pixels."""

    keypoints: np.ndarray
    person: Person

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: keypoints as ``[x, y, confidence]`` rows, the crop's centre and scale."""
        return {"keypoints": [[round(float(x), 2), round(float(y), 2), round(float(c), 4)]
                              for x, y, c in self.keypoints],
                "center": [round(float(v), 2) for v in self.person.center],
                "scale": round(float(self.person.scale), 4)}


@dataclass
class PosePredictor:
    """A loaded network and how to run it: crops at ``input_res``, flip test, precision, batch size."""

    loaded: LoadedModel
    precision: Precision
    flip: bool = True
    shift: bool = False
    batch_size: int = 8
    source: str | None = None  # what the user named (a path or an MLflow URI), for messages
    trained_on: TrainedOn | None = None  # None: from the loaded config alone (no history, score unknown)
    runtime: Runtime | None = None  # None: torch eager on loaded.model at precision
    joints: JointSet = field(init=False)

    def __post_init__(self) -> None:
        self.joints = model_joint_set(self.loaded)
        if self.trained_on is None:
            self.trained_on = TrainedOn.from_checkpoint({"config": self.loaded.config, "variant": self.loaded.variant,
                                                         "epoch": self.loaded.epoch}, self.loaded.path)
        self.target_scale = self.trained_on.target_scale
        if self.runtime is None:
            self.model = self.loaded.model.to(self.precision.device, memory_format=self.precision.memory_format)
            self.runtime = TorchRuntime(self.model.eval(), self.precision)
        else:  # an exported runtime computes; the module (possibly on the meta device) only combines the stacks
            self.model = self.loaded.model
        self.input_res = int(self.loaded.model_config.input_res)
        self.spec = CropSpec(margin=1.0, crop_res=self.input_res, antialias=True)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", precision: str = "auto",
                        flip: bool | None = None, batch_size: int = 8, runtime: str = TORCH) -> PosePredictor:
        """Load ``path`` (file or directory); ``flip=None`` follows the training config's ``targets.flip_test``.
        A ``runtime`` other than torch runs the checkpoint exported on the fly (fp32, CPU)."""
        if runtime != TORCH:
            device, precision = _exported_device(device, precision, runtime)
        dev = resolve_device(device)
        loaded = load_model(path, dev)
        targets = loaded.config.get("targets") or {}
        try:
            chosen = select_precision(precision, dev, channels_last=runtime == TORCH)  # type: ignore[arg-type]
        except ValueError as err:
            raise PredictError(f"--precision {precision}: {err}") from None
        return cls(loaded, chosen, flip=bool(targets.get("flip_test", True)) if flip is None else flip,
                   shift=bool(targets.get("flip_shift", False)), batch_size=batch_size, source=str(path),
                   trained_on=read_trained_on(loaded),
                   runtime=None if runtime == TORCH else open_runtime(runtime, loaded, chosen))

    @classmethod
    def from_export(cls, path: str | Path, runtime: str, device: str = "cpu", precision: str = "auto",
                    flip: bool | None = None, batch_size: int = 8) -> PosePredictor:
        """An export directory (or model file) of ``hourglass export`` on ``runtime`` (onnxruntime, openvino); what
        the checkpoint's config would say comes from the export's metadata."""
        _exported_device(device, precision, runtime)
        engine = open_exported(runtime, path)
        meta = engine.metadata
        trained_on = TrainedOn.from_checkpoint(meta.checkpoint_state(), engine.path)
        return cls(meta.loaded_model(engine.path), select_precision("fp32", torch.device("cpu"), channels_last=False),
                   flip=meta.flip_test if flip is None else flip, shift=meta.flip_shift, batch_size=batch_size,
                   source=str(path), trained_on=trained_on, runtime=engine)

    @classmethod
    def from_source(cls, source: str | Path, device: str = "cpu", precision: str = "auto",
                    flip: bool | None = None, batch_size: int = 8,
                    tracking_uri: str | None = None, runtime: str = TORCH) -> PosePredictor:
        """A checkpoint path, an export directory or an MLflow model URI (its checkpoint artifact is fetched to a
        temporary dir), run on ``runtime``."""
        if not isinstance(source, str) or not source.startswith(MLFLOW_SCHEMES):
            exported = export_file(source, runtime)
            if exported is not None:
                if runtime == TORCH:
                    raise PredictError(f"{source}: an exported model; run it with --runtime onnxruntime or openvino "
                                       "(torch runs the checkpoint it was exported from)")
                return cls.from_export(source, runtime, device, precision, flip, batch_size)
        with tempfile.TemporaryDirectory(prefix="hourglass-model-") as tmp:
            path = resolve_checkpoint(source, tmp, tracking_uri)
            predictor = cls.from_checkpoint(path, device, precision, flip, batch_size, runtime)
        predictor.source = str(source)
        return predictor

    def describe(self) -> str:
        """What runs, for logs and the JSON header."""
        cfg = self.loaded.model_config
        engine = "" if self.runtime is None or self.runtime.name == TORCH else f"{self.runtime.name} "
        return (f"{self.source or self.loaded.path} ({cfg.stacks} stack(s), {cfg.features} features, "
                f"{self.input_res} px, "
                f"{self.joints.name} {self.joints.count} joints), {engine}{self.precision.describe()}, "
                f"flip test {'on' if self.flip else 'off'}")

    def crop(self, image: np.ndarray, person: Person) -> np.ndarray:
        """The network input (3, R, R) float32 in [0, 1] for ``person`` in the RGB ``image``."""
        return to_float_chw(crop_person(image, np.asarray(person.center, np.float64), person.scale, self.spec))

    def predict_crops(self, crops: np.ndarray, people: Sequence[Person]) -> np.ndarray:
        """Keypoints (N, J, 3) of prepared crops (N, 3, R, R), in the batches of ``batch_size``; the confidence is
        the heatmap peak divided by ``target_scale`` (the one place it is scaled, for the CLI and the served
        model alike: see :data:`CONFIDENCE_NOTE`)."""
        out = np.empty((len(people), self.joints.count, 3), dtype=np.float64)
        flip_perm = self.joints.flip if self.flip else None
        for start in range(0, len(people), self.batch_size):
            stop = min(start + self.batch_size, len(people))
            images = torch.from_numpy(np.ascontiguousarray(crops[start:stop])).to(self.precision.device)
            final, stacks = predict_heatmaps(self.model, images, self.precision, flip_perm, self.shift,
                                             forward=self.runtime)
            center = np.array([p.center for p in people[start:stop]], dtype=np.float64)
            scale = np.array([p.scale for p in people[start:stop]], dtype=np.float64)
            coords, maxvals, _, _ = decode_to_image(final, stacks[:, -1:], center, scale)
            out[start:stop, :, :2] = coords
            out[start:stop, :, 2] = maxvals / self.target_scale
        return out

    def predict(self, items: Sequence[tuple[np.ndarray, Sequence[Person]]]) -> list[list[PoseResult]]:
        """Every person of every ``(image, people)`` pair, batched across images; results in the same nesting."""
        people = [p for _, ps in items for p in ps]
        if not people:
            return [[] for _ in items]
        crops = np.stack([self.crop(image, p) for image, ps in items for p in ps])
        keypoints = self.predict_crops(crops, people)
        results: list[list[PoseResult]] = []
        k = 0
        for _, ps in items:
            results.append([PoseResult(keypoints[k + i], p) for i, p in enumerate(ps)])
            k += len(ps)
        return results

    def predict_image(self, image: np.ndarray, people: Sequence[Person] | None = None) -> list[PoseResult]:
        """One RGB image; ``people`` default to the whole image with a centred person."""
        if people is None:
            people = [Person.whole_image(image.shape[1], image.shape[0])]
        return self.predict([(image, people)])[0]


def _exported_device(device: str, precision: str, runtime: str) -> tuple[str, str]:
    """("cpu", "fp32"): what an exported runtime runs in; anything else asked for is a :class:`PredictError`."""
    if device not in ("auto", "cpu"):
        raise PredictError(f"--device {device}: --runtime {runtime} runs on the CPU (use --device cpu or auto)")
    if precision not in ("auto", "fp32"):
        raise PredictError(f"--precision {precision}: --runtime {runtime} runs fp32 (use --precision fp32 or auto)")
    return "cpu", "fp32"


def resolve_device(device: str) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; CUDA without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise PredictError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PredictError(f"--device {device!r}: CUDA is not available on this machine; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise PredictError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")
    return dev


def result_record(name: str, image: np.ndarray | None, poses: Sequence[PoseResult] | None,
                  error: str | None = None) -> dict[str, Any]:
    """The JSON record of one image: its name, size, people (keypoints) or the error that stopped it."""
    record: dict[str, Any] = {"image": name}
    if image is not None:
        record.update(width=int(image.shape[1]), height=int(image.shape[0]))
    record["people"] = [p.to_dict() for p in poses] if poses is not None else []
    if error is not None:
        record["error"] = error
    return record
