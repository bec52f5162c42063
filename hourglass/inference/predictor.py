"""Pose prediction on a user's own images and videos: the library behind ``hourglass predict`` and the served model.

One person per crop, as the network was trained: the person is given by a box, by MPII's centre and scale, or by
default as the whole image with the person assumed centred (what pose-hg-demo expects). Each crop is cut with the
training preprocessing's own warp (``hourglass.data.crop.crop_person``: the ``hourglass.geometry`` crop matrix,
anti-aliased for large downscales), run through the network with the flip test as in evaluation
(``hourglass.inference.runner.predict_heatmaps``), and decoded with the quarter-pixel step back to the original image
(``decode_to_image``). Keypoints are ``(x, y, confidence)`` in 0-based pixels of the image as displayed.

The confidence is on the training target's scale: the peak value of the final (flip-averaged) heatmap divided by
the checkpoint config's ``train.target_scale`` (1 when the config has none). Training multiplies the Gaussian
targets, whose peak is 1, by that factor (10 in the CPU preset, 1 in the recipes), so a raw peak runs to about
``target_scale``; divided by it, a perfect peak is about 1 and 0 means no evidence at all. It is a heatmap value,
not a probability: it can be a little above 1 or below 0. The served model (``hourglass.inference.serving``) runs through
:meth:`PosePredictor.predict_crops` too, so it reports the same numbers (:data:`CONFIDENCE_NOTE`).

What the model was trained on travels with it (:class:`TrainedOn`, from the checkpoint's stored config and,
where present, its per-epoch ``history`` or ``metrics``): the dataset, and the family's headline validation score
(``hourglass.family``) of the epoch the weights are from. A model trained on the synthetic people is flagged, since
it does poorly on real photos; a checkpoint without metrics (a serving checkpoint) has its score "unknown".

Models come from a checkpoint (a file, or a ``models/<variant>/seed-<n>/`` directory holding ``checkpoint.pt``) or
from an MLflow model URI (``models:/<name>@champion``, ``runs:/<id>/model``) whose pose pyfunc carries such a
checkpoint as an artifact. Checkpoints are only ever read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import base64
import math
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from hourglass.data.augment import to_float_chw
from hourglass.data.crop import CropSpec, crop_person
from hourglass.family import family_for
from hourglass.geometry import CROP_UNIT
from hourglass.inference.runner import LoadedModel, decode_to_image, load_model, predict_heatmaps
from hourglass.io.checkpoint import CheckpointError, load_checkpoint
from hourglass.joints import JOINT_SETS, JointSet
from hourglass.precision import Precision, select_precision
from hourglass.weights.source import resolve_checkpoint

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})
# MPII's person annotation is (objpos, s) with s = person height / 200 px; the training rows (and the original's
# loader) move the centre down by 15 * s px and enlarge the box by 1.25, so user-given MPII values get the same.
MPII_SCALE_FACTOR = 1.25
MPII_CENTER_SHIFT = 15.0
SYNTHETIC_WARNING = ("trained on the synthetic people, not on real photos: expect poor results on real images")
CONFIDENCE_NOTE = ("the final heatmap's peak (flip-averaged with the flip test) divided by the checkpoint's "
                   "train.target_scale, the factor training multiplied the targets by: about 1 for a perfect "
                   "peak, 0 for no evidence; a heatmap value, not a probability (can be slightly above 1 or "
                   "below 0)")


class PredictError(ValueError):
    """Bad input to prediction (an unreadable image, a person box outside the image); the message names it."""


# ---------------------------------------------------------------------------------------------------------------
# Who to look at


@dataclass(frozen=True)
class Person:
    """One person to predict, as the crop the network sees: a square of ``200 * scale`` px centred on ``center``."""

    center: tuple[float, float]
    scale: float

    @classmethod
    def from_box(cls, box: Sequence[float], width: int, height: int) -> Person:
        """The crop around ``box = (x1, y1, x2, y2)``: its centre, its longer side times MPII's 1.25 margin. A box
        that is empty, not finite, or does not overlap the ``width`` x ``height`` image is an error naming it."""
        x1, y1, x2, y2 = _four(box, "box")
        if not (x2 > x1 and y2 > y1):
            raise PredictError(f"box {_fmt(box)}: expected x1,y1,x2,y2 with x2 > x1 and y2 > y1")
        if x2 <= -0.5 or y2 <= -0.5 or x1 >= width - 0.5 or y1 >= height - 0.5:
            raise PredictError(f"box {_fmt(box)} lies outside the {width}x{height} image")
        side = max(x2 - x1, y2 - y1)
        return cls(((x1 + x2) / 2.0, (y1 + y2) / 2.0), MPII_SCALE_FACTOR * side / CROP_UNIT)

    @classmethod
    def from_mpii(cls, center: Sequence[float], scale: float, width: int, height: int) -> Person:
        """MPII's ``objpos`` and ``scale`` (person height / 200 px), adjusted as the training data are."""
        if len(center) != 2 or not all(math.isfinite(float(v)) for v in center):
            raise PredictError(f"center {_fmt(center)}: expected two finite numbers x,y")
        scale = float(scale)
        if not (math.isfinite(scale) and scale > 0):
            raise PredictError(f"scale {scale!r}: expected a positive number (person height / 200 px)")
        cx, cy = float(center[0]), float(center[1]) + MPII_CENTER_SHIFT * scale
        half = CROP_UNIT * MPII_SCALE_FACTOR * scale / 2.0
        if cx + half <= -0.5 or cy + half <= -0.5 or cx - half >= width - 0.5 or cy - half >= height - 0.5:
            raise PredictError(f"center {_fmt(center)} with scale {scale:g} lies outside the {width}x{height} image")
        return cls((cx, cy), MPII_SCALE_FACTOR * scale)

    @classmethod
    def whole_image(cls, width: int, height: int) -> Person:
        """The whole image with the person centred: the crop is the image's longer side (pose-hg-demo's input)."""
        return cls(((width - 1) / 2.0, (height - 1) / 2.0), max(width, height) / CROP_UNIT)


def _four(values: Sequence[float], what: str) -> tuple[float, float, float, float]:
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise PredictError(f"{what} {values!r}: expected four numbers x1,y1,x2,y2") from None
    if len(numbers) != 4 or not all(math.isfinite(v) for v in numbers):
        raise PredictError(f"{what} {_fmt(values)}: expected four finite numbers x1,y1,x2,y2")
    return numbers  # type: ignore[return-value]


def _fmt(values: Any) -> str:
    try:
        return ",".join(f"{float(v):g}" for v in values)
    except (TypeError, ValueError):
        return repr(values)


def parse_numbers(text: str, count: int, what: str) -> tuple[float, ...]:
    """``"1,2,3"`` -> floats, exactly ``count`` of them; the error names ``what`` and the text."""
    try:
        numbers = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise PredictError(f"{what} {text!r}: expected {count} comma-separated numbers") from None
    if len(numbers) != count:
        raise PredictError(f"{what} {text!r}: expected {count} comma-separated numbers, got {len(numbers)}")
    return numbers


# ---------------------------------------------------------------------------------------------------------------
# Images


def decode_image_bytes(data: bytes, name: str = "image") -> np.ndarray:
    """Encoded bytes (JPEG, PNG, ...) -> RGB uint8 (H, W, 3) as displayed (EXIF orientation applied, unlike the
    training preprocessing: a user's photo is meant the way a viewer shows it). Errors name ``name``."""
    if not data:
        raise PredictError(f"{name}: empty, not an image")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-1024:]:
        raise PredictError(f"{name}: truncated JPEG (no end-of-image marker)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
    if image is None or image.size == 0:
        raise PredictError(f"{name}: not a decodable image")
    return image


def read_image(path: str | Path) -> np.ndarray:
    """An image file as RGB uint8; a missing, unreadable or undecodable file is a :class:`PredictError` naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PredictError(f"{path}: no such file") from None
    except OSError as err:
        raise PredictError(f"{path}: unreadable ({err.strerror or err})") from None
    return decode_image_bytes(data, str(path))


def as_rgb_array(image: Any, name: str = "image") -> np.ndarray:
    """An image given as encoded bytes, base64 text of them, or an (H, W[, 3|4]) array -> RGB uint8 (H, W, 3)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_image_bytes(bytes(image), name)
    if isinstance(image, str):
        try:
            data = base64.b64decode(image)  # line breaks (``base64`` without -w0) are fine
        except ValueError:
            raise PredictError(f"{name}: a string image must be base64 of the encoded file") from None
        return decode_image_bytes(data, name)
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.shape[0] < 1 or array.shape[1] < 1:
        raise PredictError(f"{name}: array of shape {array.shape} is not an (H, W, 3) RGB image")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
            raise PredictError(f"{name}: array of dtype {array.dtype} is not an image (expected uint8 0..255)")
        array = np.clip(np.rint(array.astype(np.float64)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array[:, :, :3])


# ---------------------------------------------------------------------------------------------------------------
# Models


def model_joint_set(loaded: LoadedModel) -> JointSet:
    """The joints the model predicts: named by its training config, else recognised by their count."""
    config = loaded.config
    try:
        named = family_for(config.get("dataset"), (config.get("synthetic") or {}).get("joint_set", "mpii")).joints
    except ValueError:
        named = None
    if named is not None and named.count == loaded.model.joints:
        return named
    by_count = [s for s in JOINT_SETS.values() if s.count == loaded.model.joints]
    if not by_count:
        raise CheckpointError(f"{loaded.path}: the model predicts {loaded.model.joints} joints, which is neither "
                              f"joint set ({', '.join(f'{s.name}: {s.count}' for s in JOINT_SETS.values())})")
    return by_count[0]


def confidence_divisor(config: Mapping[str, Any], path: str | Path) -> float:
    """What raw heatmap peaks are divided by: the config's ``train.target_scale`` (1 when absent). A value that is
    not a positive number is a :class:`CheckpointError` naming the file."""
    value = (config.get("train") or {}).get("target_scale", 1.0)
    try:
        scale = float(value)
    except (TypeError, ValueError):
        scale = float("nan")
    if not (math.isfinite(scale) and scale > 0):
        raise CheckpointError(f"{path}: train.target_scale {value!r} in the checkpoint's config is not a positive "
                              "number")
    return scale


def _finite_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _epoch(value: Any) -> int | None:
    number = _finite_number(value)
    return int(number) if number is not None else None


@dataclass(frozen=True)
class TrainedOn:
    """What a checkpoint says about how its model was made: the data, and the validation score of its weights.

    ``score`` is the family's headline (``metric``, e.g. ``val/pckh/Mean``: a percentage) of the latest epoch
    with one, ``score_epoch``; None when the checkpoint stores no metrics. ``dataset`` is None when its config
    names none."""

    dataset: str | None  # mpii, flic or synthetic
    joint_set: str | None  # the joints of the family: mpii or flic
    metric: str | None  # the headline key, e.g. val/pckh/Mean
    metric_name: str | None  # as people write it, e.g. PCKh@0.5
    score: float | None
    score_epoch: int | None
    epoch: int | None  # the epoch the weights are from
    variant: str | None
    target_scale: float  # raw heatmap peaks are divided by this (CONFIDENCE_NOTE)

    @property
    def synthetic(self) -> bool:
        return self.dataset == "synthetic"

    @classmethod
    def from_checkpoint(cls, state: Mapping[str, Any], path: str | Path) -> TrainedOn:
        """From a checkpoint's entries: ``config`` (``dataset``, ``synthetic.joint_set``, ``train.target_scale``),
        ``history`` (per-epoch metric dicts, as train.py saves them) or else ``metrics`` (one dict), ``epoch`` and
        ``variant``. Anything missing is left unknown."""
        config = state.get("config")
        config = config if isinstance(config, Mapping) else {}
        dataset = config.get("dataset") if isinstance(config.get("dataset"), str) else None
        synthetic = config.get("synthetic") if isinstance(config.get("synthetic"), Mapping) else {}
        family = None
        if dataset is not None:
            try:
                family = family_for(dataset, synthetic.get("joint_set", "mpii"))
            except ValueError:
                family = None
        score = score_epoch = None
        if family is not None:
            score, score_epoch = _headline_score(state, family.headline)
        variant = state.get("variant")
        return cls(dataset=dataset, joint_set=family.name if family else None,
                   metric=family.headline if family else None, metric_name=family.metric if family else None,
                   score=score, score_epoch=score_epoch, epoch=_epoch(state.get("epoch")),
                   variant=variant if isinstance(variant, str) else None,
                   target_scale=confidence_divisor(config, path))

    def summary(self) -> str:
        """One line: the data and the score, e.g. ``MPII (real photos), variant hg, epoch 100; validation
        PCKh@0.5 (val/pckh/Mean) 88.12 % at epoch 100 (per-epoch validation, no flip test)``."""
        if self.dataset is None:
            data = "unknown (the checkpoint's config names no dataset)"
        elif self.synthetic:
            data = f"the synthetic people ({(self.joint_set or '?').upper()} joints), not real photos"
        elif self.joint_set is not None:
            data = f"{self.dataset.upper()} (real photos)"
        else:
            data = f"{self.dataset!r} (not a dataset this code knows)"
        made = ", ".join(p for p in (f"variant {self.variant}" if self.variant else "",
                                     f"epoch {self.epoch}" if self.epoch is not None else "") if p)
        if self.score is None:
            why = ("the checkpoint stores no validation metrics" if self.metric else "no known dataset to score")
            score = f"validation score unknown ({why})"
        else:
            where = " on the synthetic validation split" if self.synthetic else ""
            at = f" at epoch {self.score_epoch}" if self.score_epoch is not None else ""
            score = (f"validation {self.metric_name} ({self.metric}) {self.score:.2f} %{at}{where} "
                     "(per-epoch validation, no flip test)")
        return f"{data}{', ' + made if made else ''}; {score}"

    def warnings(self) -> list[str]:
        """Lines to warn with (a synthetic-trained model)."""
        return [SYNTHETIC_WARNING] if self.synthetic else []

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the summary line and any warning."""
        return {"dataset": self.dataset, "joint_set": self.joint_set, "synthetic": self.synthetic,
                "metric": self.metric, "metric_name": self.metric_name,
                "score": None if self.score is None else round(self.score, 4), "score_epoch": self.score_epoch,
                "epoch": self.epoch, "variant": self.variant, "target_scale": self.target_scale,
                "summary": self.summary(), "warnings": self.warnings()}


def _headline_score(state: Mapping[str, Any], headline: str) -> tuple[float | None, int | None]:
    """(score, its epoch) from the latest ``history`` entry holding a finite ``headline``, else ``metrics``."""
    history = state.get("history")
    if isinstance(history, (list, tuple)):
        for entry in reversed(history):
            if isinstance(entry, Mapping) and _finite_number(entry.get(headline)) is not None:
                return float(entry[headline]), _epoch(entry.get("epoch"))
    metrics = state.get("metrics")
    if isinstance(metrics, Mapping) and _finite_number(metrics.get(headline)) is not None:
        return float(metrics[headline]), _epoch(metrics.get("epoch", state.get("epoch")))
    return None, None


def read_trained_on(loaded: LoadedModel) -> TrainedOn:
    """:class:`TrainedOn` of a loaded model, reading its checkpoint's history and metrics again (memory-mapped:
    the weights are not read a second time); the config and epoch of ``loaded`` when that read fails."""
    try:
        state = torch.load(loaded.path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, OSError, ValueError):  # not a zip-format file: no mmap, read it plainly
        try:
            state = load_checkpoint(loaded.path)
        except CheckpointError:
            state = {}
    if not isinstance(state, Mapping):
        state = {}
    return TrainedOn.from_checkpoint({**state, "config": loaded.config, "variant": loaded.variant,
                                      "epoch": loaded.epoch}, loaded.path)


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
    joints: JointSet = field(init=False)

    def __post_init__(self) -> None:
        self.joints = model_joint_set(self.loaded)
        if self.trained_on is None:
            self.trained_on = TrainedOn.from_checkpoint({"config": self.loaded.config, "variant": self.loaded.variant,
                                                         "epoch": self.loaded.epoch}, self.loaded.path)
        self.target_scale = self.trained_on.target_scale
        self.model = self.loaded.model.to(self.precision.device, memory_format=self.precision.memory_format).eval()
        self.input_res = int(self.loaded.model_config.input_res)
        self.spec = CropSpec(margin=1.0, crop_res=self.input_res, antialias=True)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", precision: str = "auto",
                        flip: bool | None = None, batch_size: int = 8) -> PosePredictor:
        """Load ``path`` (file or directory); ``flip=None`` follows the training config's ``targets.flip_test``."""
        dev = resolve_device(device)
        loaded = load_model(path, dev)
        targets = loaded.config.get("targets") or {}
        try:
            chosen = select_precision(precision, dev)  # type: ignore[arg-type]
        except ValueError as err:
            raise PredictError(f"--precision {precision}: {err}") from None
        return cls(loaded, chosen, flip=bool(targets.get("flip_test", True)) if flip is None else flip,
                   shift=bool(targets.get("flip_shift", False)), batch_size=batch_size, source=str(path),
                   trained_on=read_trained_on(loaded))

    @classmethod
    def from_source(cls, source: str | Path, device: str = "cpu", precision: str = "auto",
                    flip: bool | None = None, batch_size: int = 8,
                    tracking_uri: str | None = None) -> PosePredictor:
        """A checkpoint path or an MLflow model URI (its checkpoint artifact is fetched to a temporary dir)."""
        with tempfile.TemporaryDirectory(prefix="hourglass-model-") as tmp:
            path = resolve_checkpoint(source, tmp, tracking_uri)
            predictor = cls.from_checkpoint(path, device, precision, flip, batch_size)
        predictor.source = str(source)
        return predictor

    def describe(self) -> str:
        """What runs, for logs and the JSON header."""
        cfg = self.loaded.model_config
        return (f"{self.source or self.loaded.path} ({cfg.stacks} stack(s), {cfg.features} features, "
                f"{self.input_res} px, "
                f"{self.joints.name} {self.joints.count} joints), {self.precision.describe()}, "
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
            final, stacks = predict_heatmaps(self.model, images, self.precision, flip_perm, self.shift)
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


# ---------------------------------------------------------------------------------------------------------------
# Inputs


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders as their image files (sorted, not recursive). A missing path is an error naming it;
    a folder without images too."""
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise PredictError(f"{path}: folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            out.extend(images)
        elif path.exists():
            out.append(path)
        else:
            raise PredictError(f"{path}: no such file or folder")
    return out


def video_frames(path: Path) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(index, time in s, RGB frame)`` of a video file; an unopenable file is an error naming it."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise PredictError(f"{path}: cannot open as a video")
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield index, (index / fps if fps > 0 else float("nan")), cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()


def video_info(path: Path) -> tuple[float, int, int, int]:
    """``(fps, frame count, width, height)`` as the container reports them (count may be 0 when unknown)."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise PredictError(f"{path}: cannot open as a video")
    try:
        return (float(capture.get(cv2.CAP_PROP_FPS) or 0.0), int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
                int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        capture.release()


def people_for(image: np.ndarray, boxes: Sequence[Sequence[float]] = (), center: Sequence[float] | None = None,
               scale: float | None = None) -> list[Person]:
    """The people to predict in ``image``: every box, or the MPII centre/scale, or the whole image."""
    height, width = image.shape[:2]
    people = [Person.from_box(b, width, height) for b in boxes]
    if center is not None or scale is not None:
        if center is None or scale is None:
            raise PredictError("--center and --scale go together (MPII's objpos and person height / 200 px)")
        people.append(Person.from_mpii(center, scale, width, height))
    return people or [Person.whole_image(width, height)]


def whole_image_warning(name: str) -> str:
    """The warning for an input predicted without a person box or centre/scale (``name``: the image or video)."""
    return (f"{name}: no --box or --center/--scale given, so the whole image is taken as one person, centred and "
            "filling it; a smaller or off-centre person gets a skeleton on the background: give --box")


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
