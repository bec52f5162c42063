"""A user's inputs to prediction: image files, encoded bytes or arrays, folders of images, and videos.

Every image comes back as RGB uint8 (H, W, 3) as a viewer displays it (EXIF orientation applied), decoded by the
same check as the training preprocessing (:func:`hourglass.io.images.decode_rgb`: a JPEG without its end-of-image
marker is refused rather than decoded with a grey bottom). Every failure is a :class:`PredictError` naming the input.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hourglass.inference.errors import PredictError
from hourglass.io.images import decode_rgb

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})


def decode_image_bytes(data: bytes, name: str = "image") -> np.ndarray:
    """Encoded bytes (JPEG, PNG, ...) -> RGB uint8 (H, W, 3) as displayed (EXIF orientation applied, unlike the
    training preprocessing: a user's photo is meant the way a viewer shows it). Errors name ``name``."""
    try:
        return decode_rgb(data, apply_orientation=True)
    except ValueError as err:
        raise PredictError(f"{name}: {err}") from None


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
