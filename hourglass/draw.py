"""Skeleton drawing with matplotlib, shared by the report's example figures and single-image prediction output.

Everything works on a ``matplotlib.figure.Figure`` built without pyplot (the Agg canvas), so drawing never touches
global GUI state and works headless. Coordinates are 0-based image pixels (pixel centres at integers), as everywhere
inside the code.

Sides: the dataset card's flip pairs say which joint is "left" and which "right" (``JointSet.joint_sides``), any
other is the centre; a limb takes the side of its joints (a limb across the body counts as centre). For most cards
left is the person's left. FLIC's labels are observer-centric (``sides: observer``): its ``l_*`` is the joint at larger
x, the image's right side, so the overlay legend says so rather than claiming the person's side.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from hourglass.io.atomic import write_atomic
from hourglass.joints import JointSet

TRUE_STYLE = {"colour": "#1a9850", "linestyle": "-", "label": "ground truth"}
PRED_STYLE = {"colour": "#d7301f", "linestyle": "--", "label": "prediction"}
# Prediction overlays: the two sides in colours that stay apart for colour-blind readers (Okabe-Ito sky blue and
# orange), the centre in white; every line has a dark outline so it reads on any photo.
LEFT_COLOUR = "#56b4e9"
RIGHT_COLOUR = "#e69f00"
CENTRE_COLOUR = "#ffffff"
LEGEND_MIN_SIDE = 160  # images whose shorter side is below this (px) get no legend: it would cover the person


def joint_sides(joint_set: JointSet) -> tuple[str, ...]:
    """Per joint ``"left"``, ``"right"`` or ``"centre"`` (the dataset card's pairs say which)."""
    return joint_set.joint_sides


def limb_side(joint_set: JointSet, a: int, b: int) -> str:
    """The side of the limb from joint ``a`` to ``b``: one side's if no joint of it is on the other, else centre."""
    sides = {joint_sides(joint_set)[a], joint_sides(joint_set)[b]} - {"centre"}
    return sides.pop() if len(sides) == 1 else "centre"


def side_labels(joint_set: JointSet) -> tuple[str, str]:
    """The legend's words for the left and the right joints of ``joint_set``: the person's left and right, or, where
    the labels are observer-centric (FLIC), the side of the image they are labelled by."""
    if joint_set.observer:
        return ("left labels: image right (observer-centric)", "right labels: image left (observer-centric)")
    return ("person's left", "person's right")


def draw_skeleton(ax: Axes, joints: np.ndarray, joint_set: JointSet, *, colour: str, linestyle: str = "-",
                  label: str | None = None, linewidth: float = 2.0, marker_size: float = 18.0,
                  side_colours: tuple[str, str] | None = None, outline: bool = False) -> None:
    """Draw the limbs of ``joints`` (J, 2) on ``ax``; joints with a NaN coordinate and their limbs are skipped.

    Joints named ``l_*`` get filled markers and the others hollow ones, so a left/right swap is visible even
    where both skeletons share a colour (person-left for MPII; FLIC's labels are observer-centric). With
    ``side_colours = (left, right)`` the left limbs and joints are drawn in the first colour, the right ones in the
    second and the centre in ``colour`` (see the module docstring for the sides). ``outline`` puts a dark edge
    under every line and marker, for drawing on photos. ``label`` names the skeleton once in the legend;
    ``marker_size`` is matplotlib's ``s`` (points squared).
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape != (joint_set.count, 2):
        raise ValueError(f"draw_skeleton: expected ({joint_set.count}, 2) {joint_set.name} joints, "
                         f"got {joints.shape}")
    by_side = {"centre": colour, "left": side_colours[0] if side_colours else colour,
               "right": side_colours[1] if side_colours else colour}
    effects = [patheffects.withStroke(linewidth=linewidth * 1.8, foreground="#202020")] if outline else None
    labelled = False
    for a, b in joint_set.limbs:
        if np.isfinite(joints[[a, b]]).all():
            ax.plot(joints[[a, b], 0], joints[[a, b], 1], color=by_side[limb_side(joint_set, a, b)],
                    linestyle=linestyle, linewidth=linewidth, solid_capstyle="round", path_effects=effects,
                    label=None if labelled else label)
            labelled = True
    finite = np.isfinite(joints).all(axis=1)
    sides = np.array(joint_sides(joint_set))
    edge = "#202020" if outline else None
    for side, filled in (("left", True), ("right", False), ("centre", False)):
        mask = finite & (sides == side)
        if mask.any():
            shade = by_side[side]
            ax.scatter(joints[mask, 0], joints[mask, 1], s=marker_size, facecolors=shade if filled else "none",
                       edgecolors=shade, linewidths=1.2 if edge is None else max(1.2, linewidth / 2),
                       path_effects=[patheffects.withStroke(linewidth=linewidth, foreground=edge)] if edge else None,
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
    """Write ``fig`` as a PNG atomically (``hourglass.io.atomic.write_atomic``: temporary name, then ``os.replace``), so
    readers never see half a file; the file gets the umask's mode like any other output."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    path = Path(path)
    write_atomic(path, buffer.getvalue())
    return path


def legend_corner(poses: list[np.ndarray], width: int, height: int) -> str:
    """The image corner farthest from every drawn joint (``"upper left"`` ... ``"lower right"``, matplotlib's names),
    where the legend covers the least of the people; upper left when no joint is drawn."""
    points = [np.asarray(p, dtype=np.float64)[:, :2] for p in poses]
    joints = np.concatenate(points) if points else np.empty((0, 2))
    joints = joints[np.isfinite(joints).all(axis=1)]
    corners = {"upper left": (0.0, 0.0), "upper right": (width - 1.0, 0.0), "lower left": (0.0, height - 1.0),
               "lower right": (width - 1.0, height - 1.0)}
    if not len(joints):
        return "upper left"
    return max(corners, key=lambda c: np.min(np.hypot(joints[:, 0] - corners[c][0], joints[:, 1] - corners[c][1])))


def overlay_figure(image: np.ndarray, poses: list[np.ndarray], joint_set: JointSet, *, min_confidence: float = 0.0,
                   colour: str = CENTRE_COLOUR, side_colours: tuple[str, str] = (LEFT_COLOUR, RIGHT_COLOUR),
                   dpi: int = 100, legend: bool | None = None) -> Figure:
    """The figure :func:`pose_overlay` renders: ``image`` filling it, each pose's skeleton with the left side in
    ``side_colours[0]``, the right in ``side_colours[1]`` and the centre in ``colour``, and a legend naming the
    sides (:func:`side_labels`) in the corner farthest from the joints. ``legend=None`` draws it when the
    image's shorter side is at least :data:`LEGEND_MIN_SIDE` px."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    height, width = image.shape[:2]
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.imshow(image, extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="nearest")
    linewidth = max(1.5, min(width, height) / 150.0)
    marker_size = (2.5 * linewidth) ** 2
    drawn = []
    for pose in poses:
        pose = np.asarray(pose, dtype=np.float64)
        joints = pose[:, :2].copy()
        joints[pose[:, 2] < min_confidence] = np.nan
        drawn.append(joints)
        draw_skeleton(ax, joints, joint_set, colour=colour, linewidth=linewidth, marker_size=marker_size,
                      side_colours=side_colours, outline=True)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_axis_off()
    if legend is None:
        legend = min(width, height) >= LEGEND_MIN_SIDE
    if legend:
        left, right = side_labels(joint_set)
        size = float(np.clip(min(width, height) / 45.0, 10.0, 24.0)) * 72.0 / dpi  # px -> points
        marker = 2.5 * linewidth * 72.0 / dpi
        handles = [Line2D([], [], color=side_colours[0], linewidth=linewidth, marker="o", markersize=marker,
                          markerfacecolor=side_colours[0], label=left),
                   Line2D([], [], color=side_colours[1], linewidth=linewidth, marker="o", markersize=marker,
                          markerfacecolor="none", label=right)]
        box = ax.legend(handles=handles, loc=legend_corner(drawn, width, height), fontsize=size, frameon=True,
                        facecolor="#202020", edgecolor="none", framealpha=0.7, labelcolor="white",
                        borderaxespad=0.4, handlelength=2.0)
        box.set_zorder(5)
    return fig


def pose_overlay(image: np.ndarray, poses: list[np.ndarray], joint_set: JointSet, *, min_confidence: float = 0.0,
                 colour: str = CENTRE_COLOUR, side_colours: tuple[str, str] = (LEFT_COLOUR, RIGHT_COLOUR),
                 dpi: int = 100, legend: bool | None = None) -> np.ndarray:
    """``image`` (H, W, 3 RGB uint8) with the skeleton of every pose drawn on it, as an RGB uint8 array of the same
    size (what ``hourglass predict`` writes for images and video frames).

    ``poses`` are (J, 3) arrays of x, y, confidence; joints below ``min_confidence`` are left out (as NaN joints
    are by :func:`draw_skeleton`). Left and right limbs and joints get two colours (``l_*`` joints also filled
    markers, ``r_*`` hollow ones) and a legend says which is which (:func:`overlay_figure`). Line width grows with
    the image so a skeleton stays visible on large photos.
    """
    fig = overlay_figure(image, poses, joint_set, min_confidence=min_confidence, colour=colour,
                         side_colours=side_colours, dpi=dpi, legend=legend)
    height, width = image.shape[:2]
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[:, :, :3]
    if rgb.shape[:2] != (height, width):  # figsize * dpi may round a pixel off
        import cv2

        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)
