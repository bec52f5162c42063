"""Skeleton drawing with matplotlib, shared by the report's example figures and single-image prediction output.

Everything works on a ``matplotlib.figure.Figure`` built without pyplot (the Agg canvas), so drawing never touches
global GUI state and works headless. Coordinates are 0-based image pixels (pixel centres at integers), as everywhere
inside the code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hourglass.joints import JointSet

TRUE_STYLE = {"colour": "#1a9850", "linestyle": "-", "label": "ground truth"}
PRED_STYLE = {"colour": "#d7301f", "linestyle": "--", "label": "prediction"}


def draw_skeleton(ax: Axes, joints: np.ndarray, joint_set: JointSet, *, colour: str, linestyle: str = "-",
                  label: str | None = None, linewidth: float = 2.0, marker_size: float = 18.0) -> None:
    """Draw the limbs of ``joints`` (J, 2) on ``ax``; joints with a NaN coordinate and their limbs are skipped.

    Joints named ``l_*`` get filled markers and the others hollow ones, so a left/right swap is visible even
    where both skeletons share a colour (person-left for MPII; FLIC's labels are observer-centric). ``label``
    names the skeleton once in the legend; ``marker_size`` is matplotlib's ``s`` (points squared).
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape != (joint_set.count, 2):
        raise ValueError(f"draw_skeleton: expected ({joint_set.count}, 2) {joint_set.name} joints, "
                         f"got {joints.shape}")
    labelled = False
    for a, b in joint_set.limbs:
        if np.isfinite(joints[[a, b]]).all():
            ax.plot(joints[[a, b], 0], joints[[a, b], 1], color=colour, linestyle=linestyle, linewidth=linewidth,
                    solid_capstyle="round", label=None if labelled else label)
            labelled = True
    finite = np.isfinite(joints).all(axis=1)
    left = np.array([n.startswith("l_") for n in joint_set.names])
    for mask, face in ((finite & left, colour), (finite & ~left, "none")):
        if mask.any():
            ax.scatter(joints[mask, 0], joints[mask, 1], s=marker_size, facecolors=face, edgecolors=colour,
                       linewidths=1.2,
                       zorder=3, label=None if labelled else label)
            labelled = True


def show_crop(ax: Axes, image: np.ndarray | None, center: np.ndarray, side: float) -> None:
    """Show ``image`` (H, W, 3 RGB uint8, or None for a blank canvas) zoomed to a square of ``side`` px at
    ``center``; the image keeps its own pixel coordinates, so skeletons drawn afterwards line up."""
    half = side / 2.0
    ax.set_facecolor("#d9d9d9")  # outside the image, and the whole panel when there is no image
    if image is not None:
        ax.imshow(image, extent=(-0.5, image.shape[1] - 0.5, image.shape[0] - 0.5, -0.5), interpolation="bilinear")
    ax.set_xlim(center[0] - half, center[0] + half)
    ax.set_ylim(center[1] + half, center[1] - half)  # image rows grow downwards
    ax.set_xticks([])
    ax.set_yticks([])


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG atomically (temporary name, then ``os.replace``), so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def pose_overlay(image: np.ndarray, poses: list[np.ndarray], joint_set: JointSet, *, min_confidence: float = 0.0,
                 colour: str = PRED_STYLE["colour"], dpi: int = 100) -> np.ndarray:
    """``image`` (H, W, 3 RGB uint8) with the skeleton of every pose drawn on it, as an RGB uint8 array of the same
    size (what ``hourglass predict`` writes for images and video frames).

    ``poses`` are (J, 3) arrays of x, y, confidence; joints below ``min_confidence`` are left out (as NaN joints
    are by :func:`draw_skeleton`). Line width grows with the image so a skeleton stays visible on large photos.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    height, width = image.shape[:2]
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.imshow(image, extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="nearest")
    linewidth = max(1.5, min(width, height) / 150.0)
    for pose in poses:
        pose = np.asarray(pose, dtype=np.float64)
        joints = pose[:, :2].copy()
        joints[pose[:, 2] < min_confidence] = np.nan
        draw_skeleton(ax, joints, joint_set, colour=colour, linewidth=linewidth, marker_size=(2.5 * linewidth) ** 2)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_axis_off()
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[:, :, :3]
    if rgb.shape[:2] != (height, width):  # figsize * dpi may round a pixel off
        import cv2

        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)
