"""Decoding encoded images (training preprocessing and users' photos share it) and OpenCV's thread setting.

libjpeg decodes a truncated JPEG with a grey bottom and only a warning, so a JPEG must end with its end-of-image
marker (a little trailing padding is allowed) before it is decoded.
"""

from __future__ import annotations

import cv2
import numpy as np

_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"
_EOI_WINDOW = 1024  # bytes at the end of the file searched for the end-of-image marker


def decode_rgb(data: bytes, *, apply_orientation: bool, check_eoi: bool = True) -> np.ndarray:
    """Encoded bytes (JPEG, PNG, ...) -> RGB uint8 (H, W, 3), decoded straight to RGB.

    ``apply_orientation``: rotate by the EXIF orientation (a user's photo is meant the way a viewer shows it) or
    keep the stored pixel grid (dataset annotations refer to it, as Torch's ``image.load`` read it).
    Raises ``ValueError`` on empty, truncated or undecodable data."""
    if not data:
        raise ValueError("empty, not an image")
    if check_eoi and data[:2] == _JPEG_START and _JPEG_END not in data[-_EOI_WINDOW:]:
        raise ValueError("truncated JPEG (no end-of-image marker)")
    flags = cv2.IMREAD_COLOR_RGB | (0 if apply_orientation else cv2.IMREAD_IGNORE_ORIENTATION)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None or image.size == 0:
        raise ValueError("not a decodable image")
    return image


def single_threaded_cv2(*_: object) -> None:
    """Process-pool initialiser and DataLoader ``worker_init_fn``: one OpenCV thread per worker process, since
    the workers already take one core each and OpenCV's own threads would only contend for them."""
    cv2.setNumThreads(1)
