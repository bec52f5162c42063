"""Rasterising the synthetic people: an image with a per-pixel part-id buffer (who is in front where), anti-aliased
capsules, polygons and ellipses painted with fabrics, and whole figures drawn limb by limb in depth order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from hourglass.data.synthetic_figure import L_EYE, L_TOE, NOSE, POINT, R_EYE, R_TOE, Skeleton, unit_vector
from hourglass.data.synthetic_look import Fabric, Outfit

BACKGROUND, OCCLUDER = -1, -2
PARTS_PER_PERSON = 32  # id-buffer stride: part id = person * PARTS_PER_PERSON + part index


@dataclass
class Canvas:
    """The image being drawn (float32 BGR) and, per pixel, the id of the part that is in front."""

    image: np.ndarray
    ids: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[:2]

    def roi(self, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
        """Integer window covering [lo, hi] clipped to the image, with its pixel coordinate grids."""
        h, w = self.shape
        x0, y0 = max(0, int(math.floor(lo[0]))), max(0, int(math.floor(lo[1])))
        x1, y1 = min(w, int(math.ceil(hi[0])) + 1), min(h, int(math.ceil(hi[1])) + 1)
        if x0 >= x1 or y0 >= y1:
            return None
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        return slice(y0, y1), slice(x0, x1), xs, ys

    def compose(self, window: tuple[slice, slice], alpha: np.ndarray, colour: np.ndarray, part_id: int | None) -> None:
        """Alpha-blend ``colour`` into the window; pixels mostly covered take ``part_id`` (None keeps the ids)."""
        sy, sx = window
        a = alpha[..., None]
        self.image[sy, sx] = self.image[sy, sx] * (1 - a) + colour * a
        if part_id is not None:
            self.ids[sy, sx] = np.where(alpha > 0.5, part_id, self.ids[sy, sx])


def _capsule_alpha(xs: np.ndarray, ys: np.ndarray, a: np.ndarray, b: np.ndarray,
                   radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Anti-aliased coverage of a capsule and the normalised distance to its axis (for shading)."""
    d = b - a
    t = np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / max(float(d @ d), 1e-6), 0, 1)
    dist = np.hypot(xs - (a[0] + t * d[0]), ys - (a[1] + t * d[1]))
    return np.clip(radius - dist + 0.5, 0, 1), np.clip(dist / max(radius, 1e-3), 0, 1)


def draw_capsule(canvas: Canvas, a: np.ndarray, b: np.ndarray, radius: float, fabric: Fabric,
                 part_id: int | None, shade: float = 1.0) -> None:
    """A limb: a thick segment with rounded ends, shaded darker towards its silhouette."""
    window = canvas.roi(np.minimum(a, b) - radius - 1, np.maximum(a, b) + radius + 1)
    if window is None:
        return
    sy, sx, xs, ys = window
    alpha, across = _capsule_alpha(xs, ys, a, b, radius)
    colour = fabric.paint(xs, ys) * (shade * (1 - 0.35 * across ** 2))[..., None]
    canvas.compose((sy, sx), alpha, colour, part_id)


def draw_polygon(canvas: Canvas, poly: np.ndarray, fabric: Fabric | Callable[[np.ndarray, np.ndarray], np.ndarray],
                 part_id: int | None, shade: float = 1.0) -> None:
    """A filled anti-aliased polygon; ``fabric`` may be a function of the pixel grids."""
    window = canvas.roi(poly.min(0) - 1, poly.max(0) + 1)
    if window is None:
        return
    sy, sx, xs, ys = window
    mask = np.zeros(xs.shape, np.uint8)
    local = np.round((poly - [sx.start, sy.start]) * 16).astype(np.int32)
    cv2.fillPoly(mask, [local], 255, cv2.LINE_AA, shift=4)
    paint = fabric.paint if isinstance(fabric, Fabric) else fabric
    canvas.compose((sy, sx), mask.astype(np.float32) / 255, paint(xs, ys) * shade, part_id)


def draw_ellipse(canvas: Canvas, centre: np.ndarray, axes: tuple[float, float], angle: float, fabric: Fabric,
                 part_id: int | None, shade: float = 1.0, clip: Callable[[np.ndarray, np.ndarray], np.ndarray]
                 | None = None) -> None:
    """A filled ellipse (``angle`` in degrees); ``clip`` multiplies the coverage (a face stays inside its head)."""
    r = max(axes) + 1
    window = canvas.roi(centre - r, centre + r)
    if window is None:
        return
    sy, sx, xs, ys = window
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    u = ((xs - centre[0]) * c + (ys - centre[1]) * s) / max(axes[0], 0.5)
    v = (-(xs - centre[0]) * s + (ys - centre[1]) * c) / max(axes[1], 0.5)
    rho = np.sqrt(u * u + v * v)
    alpha = np.clip((1 - rho) * min(axes) + 0.5, 0, 1)
    if clip is not None:
        alpha = alpha * clip(xs, ys)
    colour = fabric.paint(xs, ys) * (shade * (1 - 0.25 * np.clip(rho, 0, 1) ** 2))[..., None]
    canvas.compose((sy, sx), alpha, colour, part_id)


# --------------------------------------------------------------------------------------------------- people

# Parts that own each MPII joint: the joint counts as visible when one of them is in front at its pixel.
PART_NAMES = ("torso", "neck", "head", "l_upper_arm", "l_forearm", "l_hand", "r_upper_arm", "r_forearm", "r_hand",
              "l_thigh", "l_shin", "l_foot", "r_thigh", "r_shin", "r_foot")
_P = {name: i for i, name in enumerate(PART_NAMES)}
JOINT_OWNERS: dict[int, tuple[int, ...]] = {
    POINT["pelvis"]: (_P["torso"],), POINT["thorax"]: (_P["torso"], _P["neck"]),
    POINT["upper_neck"]: (_P["neck"], _P["head"]), POINT["head_top"]: (_P["head"],),
    L_EYE: (_P["head"],), R_EYE: (_P["head"],), NOSE: (_P["head"],),
}
for _s in ("l", "r"):
    JOINT_OWNERS.update({
        POINT[f"{_s}_shoulder"]: (_P["torso"], _P[f"{_s}_upper_arm"]),
        POINT[f"{_s}_elbow"]: (_P[f"{_s}_upper_arm"], _P[f"{_s}_forearm"]),
        POINT[f"{_s}_wrist"]: (_P[f"{_s}_forearm"], _P[f"{_s}_hand"]),
        POINT[f"{_s}_hip"]: (_P["torso"], _P[f"{_s}_thigh"]),
        POINT[f"{_s}_knee"]: (_P[f"{_s}_thigh"], _P[f"{_s}_shin"]),
        POINT[f"{_s}_ankle"]: (_P[f"{_s}_shin"], _P[f"{_s}_foot"]),
    })


@dataclass(frozen=True)
class Person:
    """A skeleton placed in the image: 2-D points (px), depth per point, and what it wears."""

    skeleton: Skeleton
    points: np.ndarray  # (NUM_POINTS, 2) px
    depth: np.ndarray  # (NUM_POINTS,) larger = nearer the camera
    height: float  # standing height, px
    outfit: Outfit


def place(skeleton: Skeleton, height: float, pelvis_xy: np.ndarray, outfit: Outfit) -> Person:
    """Orthographic projection: ``height`` px per body unit, image y pointing down, pelvis at ``pelvis_xy``."""
    pts = skeleton.points * height
    xy = np.stack([pts[:, 0], -pts[:, 1]], axis=1) + pelvis_xy
    return Person(skeleton=skeleton, points=xy, depth=pts[:, 2], height=height, outfit=outfit)


def _tinted(fabric: Fabric, tint: tuple[float, float, float]) -> Fabric:
    mix = lambda c: tuple(float(np.clip(v * t, 0, 255)) for v, t in zip(c, tint, strict=True))  # noqa: E731
    return Fabric(mix(fabric.colour), mix(fabric.second), fabric.style, fabric.period, fabric.angle, fabric.phase)


def _torso_polygon(person: Person) -> np.ndarray:
    """Shoulders-to-hips quadrilateral, at least as wide as the body's thickness when seen from the side."""
    q, h, w = person.points, person.height, person.skeleton.proportions.width
    top, bottom = q[POINT["thorax"]], q[POINT["pelvis"]]
    axis = unit_vector(top - bottom, np.array([0.0, -1.0]))
    normal = np.array([-axis[1], axis[0]])
    shoulders = q[POINT["l_shoulder"]] - q[POINT["r_shoulder"]]
    half_top = max(0.5 * abs(float(shoulders @ normal)) + 0.02 * h, 0.07 * h * w)
    half_bot = max(0.5 * abs(float((q[POINT["l_hip"]] - q[POINT["r_hip"]]) @ normal)) + 0.035 * h, 0.07 * h * w)
    top = top + axis * 0.01 * h
    bottom = bottom - axis * 0.03 * h
    return np.array([top + normal * half_top, top - normal * half_top, bottom - normal * half_bot,
                     bottom + normal * half_bot])


def draw_person(canvas: Canvas, person: Person, person_index: int) -> None:
    """Paint all parts far-to-near; the far side of the body is shaded darker (a left/right depth cue)."""
    q, z, h, o = person.points, person.depth, person.height, person.outfit
    w = person.skeleton.proportions.width
    torso_depth = 0.5 * (z[POINT["thorax"]] + z[POINT["pelvis"]])
    base = person_index * PARTS_PER_PERSON

    def shade(*idx: int) -> float:
        return float(np.clip(0.9 + 0.25 * (np.mean(z[list(idx)]) - torso_depth) / (0.1 * h), 0.65, 1.1))

    def side_fabric(fabric: Fabric, side: str) -> Fabric:
        return _tinted(fabric, o.left_tint) if side == "l" else fabric

    jobs: list[tuple[float, Callable[[], None]]] = []

    def add(depth: float, fn: Callable[[], None]) -> None:
        jobs.append((depth, fn))

    def torso() -> None:
        poly = _torso_polygon(person)
        pelvis, thorax = q[POINT["pelvis"]], q[POINT["thorax"]]
        axis = thorax - pelvis
        length2 = max(float(axis @ axis), 1e-6)
        belt = 0.22

        def cloth(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            t = ((xs - pelvis[0]) * axis[0] + (ys - pelvis[1]) * axis[1]) / length2
            return np.where((t < belt)[..., None], o.pants.paint(xs, ys), o.shirt.paint(xs, ys))

        pid = base + _P["torso"]
        draw_polygon(canvas, poly, cloth, pid, shade(POINT["thorax"], POINT["pelvis"]))
        for a, b, r in ((POINT["l_shoulder"], POINT["r_shoulder"], 0.045), (POINT["l_hip"], POINT["r_hip"], 0.05)):
            fab = o.shirt if a == POINT["l_shoulder"] else o.pants
            draw_capsule(canvas, q[a], q[b], r * h * w, fab, pid, shade(a, b))
        front = float(person.skeleton.torso_frame[2, 2])  # z of the torso's forward axis: > 0 faces the camera
        if front > 0.25:
            chest = person.skeleton.torso_frame @ np.array([0.06, 0.2, 0.06]) * h
            spot = q[POINT["pelvis"]] + np.array([chest[0], -chest[1]])
            draw_ellipse(canvas, spot, (0.022 * h, 0.022 * h), 0.0, o.emblem, None)
        if o.strap:
            draw_capsule(canvas, q[POINT["r_shoulder"]], q[POINT["l_hip"]], 0.012 * h, o.shoes, None, 0.9)

    add(torso_depth, torso)
    add(0.5 * (z[POINT["thorax"]] + z[POINT["upper_neck"]]) - 0.01 * h, lambda: draw_capsule(
        canvas, q[POINT["thorax"]], q[POINT["upper_neck"]], 0.04 * h * w, o.skin, base + _P["neck"],
        shade(POINT["upper_neck"])))
    for s in ("l", "r"):
        sho, elb, wri = POINT[f"{s}_shoulder"], POINT[f"{s}_elbow"], POINT[f"{s}_wrist"]
        hip, kne, ank = POINT[f"{s}_hip"], POINT[f"{s}_knee"], POINT[f"{s}_ankle"]
        toe = L_TOE if s == "l" else R_TOE
        sleeve = side_fabric(o.shirt, s)
        legwear = side_fabric(o.pants, s)
        hand = q[wri] + 0.35 * (q[wri] - q[elb]) * (0.08 / max(person.skeleton.proportions.forearm, 1e-3))
        add(0.5 * (z[sho] + z[elb]), lambda s=s, a=sho, b=elb, f=sleeve: draw_capsule(
            canvas, q[a], q[b], 0.038 * h * w, f, base + _P[f"{s}_upper_arm"], shade(a, b)))

        def forearm(s: str = s, a: int = elb, b: int = wri, f: Fabric = sleeve) -> None:
            fab = f if o.long_sleeves else o.skin
            draw_capsule(canvas, q[a], q[b], 0.03 * h * w, fab, base + _P[f"{s}_forearm"], shade(a, b))
            if s == "l" and o.watch:
                along = unit_vector(q[b] - q[a], np.array([0.0, 1.0]))
                across = np.array([-along[1], along[0]]) * 0.03 * h * w
                c = q[b] - along * 0.04 * h
                draw_capsule(canvas, c - across, c + across, 0.012 * h, o.shoes, None, 0.8)

        add(0.5 * (z[elb] + z[wri]), forearm)
        add(z[wri] + 0.001, lambda s=s, b=wri, c=hand: draw_capsule(
            canvas, q[b], c, 0.032 * h * w, o.skin, base + _P[f"{s}_hand"], shade(b)))
        add(0.5 * (z[hip] + z[kne]), lambda s=s, a=hip, b=kne, f=legwear: draw_capsule(
            canvas, q[a], q[b], 0.055 * h * w, f, base + _P[f"{s}_thigh"], shade(a, b)))
        add(0.5 * (z[kne] + z[ank]), lambda s=s, a=kne, b=ank, f=legwear: draw_capsule(
            canvas, q[a], q[b], 0.042 * h * w, f if o.long_pants else o.skin, base + _P[f"{s}_shin"], shade(a, b)))
        add(0.5 * (z[ank] + z[toe]), lambda s=s, a=ank, b=toe: draw_capsule(
            canvas, q[a], q[b], 0.03 * h * w, side_fabric(o.shoes, s), base + _P[f"{s}_foot"], shade(a, b)))
    add(0.5 * (z[POINT["upper_neck"]] + z[POINT["head_top"]]), lambda: _draw_head(canvas, person, base + _P["head"]))
    for _, fn in sorted(jobs, key=lambda job: job[0]):
        fn()


def _draw_head(canvas: Canvas, person: Person, part_id: int) -> None:
    """Hair-coloured head, a face on its front (only when it faces the camera), eyes and mouth."""
    q, h, o = person.points, person.height, person.outfit
    frame = person.skeleton.head_frame
    length = person.skeleton.proportions.head * h
    neck = q[POINT["upper_neck"]]

    def to_image(v: np.ndarray) -> np.ndarray:
        return np.array([v[0], -v[1]])

    up = to_image(frame[:, 1])
    angle = math.degrees(math.atan2(up[1], up[0])) - 90 if np.hypot(*up) > 1e-3 else 0.0
    centre = neck + to_image(frame @ np.array([0, 0.58, -0.02])) * length
    axes = (0.36 * length, 0.44 * length)
    draw_ellipse(canvas, centre, axes, angle, o.hair, part_id)
    facing = float(frame[2, 2])  # > 0: the face looks towards the camera
    if facing > -0.35:
        face_c = neck + to_image(frame @ np.array([0, 0.5, 0.22])) * length
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))

        def inside_head(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            u = ((xs - centre[0]) * c + (ys - centre[1]) * s) / axes[0]
            v = (-(xs - centre[0]) * s + (ys - centre[1]) * c) / axes[1]
            return np.clip((1 - np.sqrt(u * u + v * v)) * min(axes) + 0.5, 0, 1)

        draw_ellipse(canvas, face_c, (0.3 * length, 0.34 * length), angle, o.skin, part_id, 1.0, inside_head)
        dark = Fabric((25, 25, 30), (25, 25, 30), "solid", 1.0, 0.0, (0, 0, 0, 0))
        for eye in (L_EYE, R_EYE):
            if faces_camera(person, eye):
                draw_ellipse(canvas, q[eye], (0.05 * length, 0.05 * length), 0.0, dark, None)
        mouth = neck + to_image(frame @ np.array([0, 0.25, 0.42])) * length
        if facing > 0.2:
            draw_ellipse(canvas, mouth, (0.1 * length, 0.03 * length), angle, dark, None, 0.9)


def faces_camera(person: Person, point: int) -> bool:
    """A face point is on the camera's side of the head: nearer than the head's centre."""
    centre = 0.5 * (person.depth[POINT["upper_neck"]] + person.depth[POINT["head_top"]])
    return bool(person.depth[point] > centre + 0.01 * person.height)
