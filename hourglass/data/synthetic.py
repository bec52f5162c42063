"""Procedural people: the offline default dataset, written in exactly the layout of a real MPII/FLIC download.

Why procedural rather than a toy: every later stage (preprocess, train, evaluate) must run the same code on
synthetic and real data, and the numbers must mean something. So each person is a 3-D kinematic tree with MPII
proportions and joint-angle limits, seen orthographically from any direction; clothing, faces and a few
dataset-wide asymmetric cues (chest emblem on the left, watch on the left wrist, bag strap from the right shoulder)
are the only way to tell left from right; limbs, other people and occluders hide joints (``visible = 0``, still
annotated); joints outside the image are not annotated, as in MPII.

Conventions (see ``/work/shared/design.md``): 0-based pixel coordinates in memory; the files are written by
:func:`hourglass.io.annotations.write_annotations` (1-based). ``center``/``scale`` follow the ADJUSTED convention of
pose-hg-train's MPII files: ``s_raw`` is derived from the head box as MPII's is (``normalize = 0.1 * 200 * scale``
holds for every real validation row), ``scale = 1.25 * s_raw`` and ``center.y = objpos.y + 15 * s_raw``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
from tqdm import tqdm

from hourglass.io.annotations import Annotations, write_annotations
from hourglass.config import SyntheticConfig
from hourglass.data.parallel import ordered_map
from hourglass.joints import FLIC, MPII, JointSet

# Internal skeleton points: the 16 MPII joints in MPII order, then the FLIC face points and the toes.
L_EYE, R_EYE, NOSE, L_TOE, R_TOE = 16, 17, 18, 19, 20
NUM_POINTS = 21
_M = {name: i for i, name in enumerate(MPII.names)}
# FLIC joint -> internal point, person-centric (the observer-centric swap happens in flic_labels).
FLIC_POINTS = tuple({"l_eye": L_EYE, "r_eye": R_EYE, "nose": NOSE}.get(n, _M.get(n, -1)) for n in FLIC.names)

SPLITS = ("train", "valid")
BACKGROUND, OCCLUDER = -1, -2
PARTS_PER_PERSON = 32  # id-buffer stride: part id = person * PARTS_PER_PERSON + part index


# --------------------------------------------------------------------------------------------------- 3-D skeleton

def _rot(axis: str, degrees: float) -> np.ndarray:
    """Rotation matrix about a body axis ('x' lateral, 'y' up, 'z' forward/towards the camera)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _rotate_about(vec: np.ndarray, axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rodrigues rotation of ``vec`` about the unit ``axis``."""
    t = math.radians(degrees)
    return vec * math.cos(t) + np.cross(axis, vec) * math.sin(t) + axis * float(axis @ vec) * (1 - math.cos(t))


def _unit(vec: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 1e-6 else fallback


def _clipped_normal(rng: np.random.Generator, mean: float, sd: float, low: float, high: float) -> float:
    return float(np.clip(rng.normal(mean, sd), low, high))


@dataclass(frozen=True)
class Proportions:
    """Segment lengths and limb radii in units of standing height (MPII head segment = height / 6)."""

    spine: float = 0.29
    neck: float = 0.04
    head: float = 1 / 6
    shoulder: float = 0.11  # half width
    hip: float = 0.085
    upper_arm: float = 0.17
    forearm: float = 0.15
    thigh: float = 0.24
    shin: float = 0.24
    foot: float = 0.11
    width: float = 1.0  # girth multiplier for every radius

    @staticmethod
    def sample(rng: np.random.Generator) -> "Proportions":
        """Per-person variation: lengths +-5 %, girth +-15 %."""
        base = Proportions()
        jitter = {k: getattr(base, k) * float(np.clip(rng.normal(1, 0.05), 0.88, 1.12))
                  for k in ("spine", "neck", "head", "shoulder", "hip", "upper_arm", "forearm", "thigh", "shin")}
        return Proportions(**jitter, foot=base.foot, width=float(np.clip(rng.normal(1, 0.15), 0.7, 1.35)))


def _arm(rng: np.random.Generator, shoulder: np.ndarray, frame: np.ndarray, side: int,
         p: Proportions) -> tuple[np.ndarray, np.ndarray]:
    """Elbow and wrist: abduction 0..170, flexion -50..170, elbow 0..150 degrees, humeral rotation -90..90."""
    if rng.random() < 0.2:
        abduction = float(rng.uniform(40, 170))
    else:
        abduction = _clipped_normal(rng, 15, 20, 0, 170)
    flexion = _clipped_normal(rng, 15, 45, -50, 170)
    down = np.array([0.0, -1.0, 0.0])
    upper = frame @ _rot("x", -flexion) @ _rot("z", side * abduction) @ down
    elbow = shoulder + p.upper_arm * upper
    bend = float(rng.uniform(0, 20) if rng.random() < 0.35 else rng.uniform(20, 150))
    forward = frame @ np.array([0.0, 0.0, 1.0])
    ref = _unit(forward - upper * float(forward @ upper), frame @ np.array([0.0, 1.0, 0.0]))
    plane = _rotate_about(ref, upper, float(rng.uniform(-90, 90)))
    fore = math.cos(math.radians(bend)) * upper + math.sin(math.radians(bend)) * plane
    return elbow, elbow + p.forearm * fore


def _leg(rng: np.random.Generator, hip: np.ndarray, side: int, p: Proportions,
         pose: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Knee, ankle, toe: hip flexion -30..130, abduction -15..60, knee 0..150 degrees (bends backwards)."""
    if pose == "sit":
        flexion, knee = float(rng.uniform(50, 120)), float(rng.uniform(40, 130))
    elif pose == "free":
        flexion, knee = float(rng.uniform(-30, 130)), float(rng.uniform(0, 150))
    else:
        flexion = _clipped_normal(rng, 5, 20, -30, 70)
        knee = float(rng.uniform(0, 15) if rng.random() < 0.5 else rng.uniform(15, 100))
    abduction = _clipped_normal(rng, 5, 10, -15, 60)
    thigh = _rot("x", -flexion) @ _rot("z", side * abduction) @ np.array([0.0, -1.0, 0.0])
    knee_pt = hip + p.thigh * thigh
    lateral = _unit(np.array([1.0, 0, 0]) - thigh * thigh[0], np.array([1.0, 0, 0]))
    shin = _rotate_about(thigh, lateral, knee)
    ankle = knee_pt + p.shin * shin
    toe = ankle + p.foot * _rotate_about(shin, lateral, -90 + float(rng.uniform(-20, 20)))
    return knee_pt, ankle, toe


@dataclass(frozen=True)
class Skeleton:
    """A posed person: 3-D points in camera axes (x right, y up, z towards the camera), in units of height."""

    points: np.ndarray  # (NUM_POINTS, 3)
    head_frame: np.ndarray  # (3, 3) columns: head lateral, up, forward
    torso_frame: np.ndarray  # (3, 3)
    proportions: Proportions


def sample_skeleton(rng: np.random.Generator, frontal: bool = False) -> Skeleton:
    """Sample a pose within joint limits and a viewpoint; ``frontal`` keeps the body facing the camera (FLIC)."""
    p = Proportions.sample(rng)
    pts = np.zeros((NUM_POINTS, 3))
    pose = rng.choice(["stand", "sit", "free"], p=[0.65, 0.2, 0.15])
    lean = float(rng.uniform(20, 90)) if rng.random() < 0.12 else _clipped_normal(rng, 5, 12, -20, 45)
    spine = _rot("y", _clipped_normal(rng, 0, 15, -40, 40)) @ _rot("x", lean) @ _rot("z", _clipped_normal(
        rng, 0, 8, -25, 25))
    pts[_M["pelvis"]] = 0
    pts[_M["thorax"]] = spine @ np.array([0, p.spine, 0])
    for name, side in (("l", 1), ("r", -1)):
        pts[_M[f"{name}_hip"]] = np.array([side * p.hip, 0, 0])
        pts[_M[f"{name}_shoulder"]] = pts[_M["thorax"]] + spine @ np.array([side * p.shoulder, -0.02, 0])
    neck_dir = spine @ _rot("x", _clipped_normal(rng, 5, 10, -20, 35)) @ np.array([0, 1.0, 0])
    pts[_M["upper_neck"]] = pts[_M["thorax"]] + p.neck * neck_dir
    head = (spine @ _rot("y", _clipped_normal(rng, 0, 35, -80, 80)) @ _rot("x", _clipped_normal(rng, 10, 15, -40, 60))
            @ _rot("z", _clipped_normal(rng, 0, 10, -35, 35)))
    neck = pts[_M["upper_neck"]]
    pts[_M["head_top"]] = neck + head @ np.array([0, p.head, 0])
    pts[L_EYE] = neck + head @ (p.head * np.array([0.14, 0.5, 0.3]))
    pts[R_EYE] = neck + head @ (p.head * np.array([-0.14, 0.5, 0.3]))
    pts[NOSE] = neck + head @ (p.head * np.array([0.0, 0.38, 0.42]))
    for name, side in (("l", 1), ("r", -1)):
        elbow, wrist = _arm(rng, pts[_M[f"{name}_shoulder"]], spine, side, p)
        pts[_M[f"{name}_elbow"]], pts[_M[f"{name}_wrist"]] = elbow, wrist
        knee, ankle, toe = _leg(rng, pts[_M[f"{name}_hip"]], side, p, str(pose))
        pts[_M[f"{name}_knee"]], pts[_M[f"{name}_ankle"]] = knee, ankle
        pts[L_TOE if name == "l" else R_TOE] = toe
    yaw = float(rng.uniform(-60, 60)) if frontal else float(rng.uniform(-180, 180))
    roll_draw = rng.random()
    if roll_draw < 0.75:
        roll = rng.normal(0, 10)
    elif roll_draw < 0.95:
        roll = rng.normal(0, 40)
    else:
        roll = rng.uniform(-180, 180)
    view = _rot("z", float(roll)) @ _rot("x", _clipped_normal(rng, 0, 10, -30, 30)) @ _rot("y", yaw)
    return Skeleton(points=pts @ view.T, head_frame=view @ head, torso_frame=view @ spine, proportions=p)


# --------------------------------------------------------------------------------------------------- appearance

@dataclass(frozen=True)
class Fabric:
    """A procedural texture: solid, stripes, checks or smooth noise between two colours (BGR floats 0..255)."""

    colour: tuple[float, float, float]
    second: tuple[float, float, float]
    style: str
    period: float
    angle: float
    phase: tuple[float, float, float, float]

    def paint(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Colour at image coordinates (arrays of equal shape) -> (..., 3) float32."""
        base = np.asarray(self.colour, np.float32)
        if self.style == "solid":
            return np.broadcast_to(base, xs.shape + (3,)).astype(np.float32)
        c, s = math.cos(self.angle), math.sin(self.angle)
        u, v = (xs * c + ys * s) / self.period, (-xs * s + ys * c) / self.period
        if self.style == "stripes":
            w = (np.sin(2 * np.pi * u + self.phase[0]) > 0).astype(np.float32)
        elif self.style == "checks":
            w = ((np.floor(u + self.phase[0]) + np.floor(v + self.phase[1])) % 2).astype(np.float32)
        else:
            w = 0.5 + 0.25 * (np.sin(2.1 * u + self.phase[0]) * np.sin(1.7 * v + self.phase[1])
                              + np.sin(0.9 * u + 1.3 * v + self.phase[2]) * np.cos(3.1 * v + self.phase[3]))
        w = w[..., None]
        return (base * (1 - w) + np.asarray(self.second, np.float32) * w).astype(np.float32)


def _colour(rng: np.random.Generator, dark: bool = False) -> tuple[float, float, float]:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(40, 256), rng.integers(30, 120 if dark else 256)]]])
    return tuple(float(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def random_fabric(rng: np.random.Generator, size: float, plain: float = 0.45) -> Fabric:
    """A garment or clutter texture whose pattern period scales with ``size`` (px)."""
    colour = _colour(rng)
    second = _colour(rng) if rng.random() < 0.6 else tuple(0.6 * c for c in colour)
    style = "solid" if rng.random() < plain else str(rng.choice(["stripes", "checks", "noise"]))
    return Fabric(colour, second, style, period=float(max(2.0, size * rng.uniform(0.04, 0.2))),
                  angle=float(rng.uniform(0, np.pi)), phase=tuple(float(v) for v in rng.uniform(0, 6.3, 4)))


_SKIN = ((60, 80, 120), (80, 110, 160), (100, 140, 190), (130, 170, 220), (160, 190, 235), (45, 60, 90))


@dataclass(frozen=True)
class Outfit:
    """A person's palette. Left and right sleeves/legs/shoes differ by a per-person tint, consistently."""

    skin: Fabric
    hair: Fabric
    shirt: Fabric
    pants: Fabric
    shoes: Fabric
    left_tint: tuple[float, float, float]
    long_sleeves: bool
    long_pants: bool
    watch: bool  # always on the LEFT wrist (a dataset-wide cue)
    strap: bool  # bag strap from the RIGHT shoulder to the left hip
    emblem: Fabric  # on the LEFT chest, front only

    @staticmethod
    def sample(rng: np.random.Generator, size: float) -> "Outfit":
        skin = np.asarray(_SKIN[int(rng.integers(len(_SKIN)))], float) * rng.uniform(0.85, 1.1)
        skin_t = tuple(float(v) for v in np.clip(skin, 0, 255))
        return Outfit(
            skin=Fabric(skin_t, skin_t, "solid", 1.0, 0.0, (0, 0, 0, 0)),
            hair=Fabric(_colour(rng, dark=True), _colour(rng, dark=True), "noise", size * 0.05, 0.0,
                        tuple(float(v) for v in rng.uniform(0, 6.3, 4))),
            shirt=random_fabric(rng, size), pants=random_fabric(rng, size, plain=0.7),
            shoes=Fabric(_colour(rng, dark=True), _colour(rng), "solid", 1.0, 0.0, (0, 0, 0, 0)),
            left_tint=tuple(float(v) for v in rng.uniform(0.7, 1.3, 3)),
            long_sleeves=bool(rng.random() < 0.6), long_pants=bool(rng.random() < 0.75),
            watch=bool(rng.random() < 0.5), strap=bool(rng.random() < 0.35),
            emblem=random_fabric(rng, size, plain=0.8),
        )


# --------------------------------------------------------------------------------------------------- rasterising

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
    _M["pelvis"]: (_P["torso"],), _M["thorax"]: (_P["torso"], _P["neck"]),
    _M["upper_neck"]: (_P["neck"], _P["head"]), _M["head_top"]: (_P["head"],),
    L_EYE: (_P["head"],), R_EYE: (_P["head"],), NOSE: (_P["head"],),
}
for _s in ("l", "r"):
    JOINT_OWNERS.update({
        _M[f"{_s}_shoulder"]: (_P["torso"], _P[f"{_s}_upper_arm"]),
        _M[f"{_s}_elbow"]: (_P[f"{_s}_upper_arm"], _P[f"{_s}_forearm"]),
        _M[f"{_s}_wrist"]: (_P[f"{_s}_forearm"], _P[f"{_s}_hand"]),
        _M[f"{_s}_hip"]: (_P["torso"], _P[f"{_s}_thigh"]),
        _M[f"{_s}_knee"]: (_P[f"{_s}_thigh"], _P[f"{_s}_shin"]),
        _M[f"{_s}_ankle"]: (_P[f"{_s}_shin"], _P[f"{_s}_foot"]),
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
    mix = lambda c: tuple(float(np.clip(v * t, 0, 255)) for v, t in zip(c, tint))  # noqa: E731
    return Fabric(mix(fabric.colour), mix(fabric.second), fabric.style, fabric.period, fabric.angle, fabric.phase)


def _torso_polygon(person: Person) -> np.ndarray:
    """Shoulders-to-hips quadrilateral, at least as wide as the body's thickness when seen from the side."""
    q, h, w = person.points, person.height, person.skeleton.proportions.width
    top, bottom = q[_M["thorax"]], q[_M["pelvis"]]
    axis = _unit(top - bottom, np.array([0.0, -1.0]))
    normal = np.array([-axis[1], axis[0]])
    half_top = max(0.5 * abs(float((q[_M["l_shoulder"]] - q[_M["r_shoulder"]]) @ normal)) + 0.02 * h, 0.07 * h * w)
    half_bot = max(0.5 * abs(float((q[_M["l_hip"]] - q[_M["r_hip"]]) @ normal)) + 0.035 * h, 0.07 * h * w)
    top = top + axis * 0.01 * h
    bottom = bottom - axis * 0.03 * h
    return np.array([top + normal * half_top, top - normal * half_top, bottom - normal * half_bot,
                     bottom + normal * half_bot])


def draw_person(canvas: Canvas, person: Person, person_index: int) -> None:
    """Paint all parts far-to-near; the far side of the body is shaded darker (a left/right depth cue)."""
    q, z, h, o = person.points, person.depth, person.height, person.outfit
    w = person.skeleton.proportions.width
    torso_depth = 0.5 * (z[_M["thorax"]] + z[_M["pelvis"]])
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
        pelvis, thorax = q[_M["pelvis"]], q[_M["thorax"]]
        axis = thorax - pelvis
        length2 = max(float(axis @ axis), 1e-6)
        belt = 0.22

        def cloth(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            t = ((xs - pelvis[0]) * axis[0] + (ys - pelvis[1]) * axis[1]) / length2
            return np.where((t < belt)[..., None], o.pants.paint(xs, ys), o.shirt.paint(xs, ys))

        pid = base + _P["torso"]
        draw_polygon(canvas, poly, cloth, pid, shade(_M["thorax"], _M["pelvis"]))
        for a, b, r in ((_M["l_shoulder"], _M["r_shoulder"], 0.045), (_M["l_hip"], _M["r_hip"], 0.05)):
            fab = o.shirt if a == _M["l_shoulder"] else o.pants
            draw_capsule(canvas, q[a], q[b], r * h * w, fab, pid, shade(a, b))
        front = float(person.skeleton.torso_frame[2, 2])  # z of the torso's forward axis: > 0 faces the camera
        if front > 0.25:
            chest = person.skeleton.torso_frame @ np.array([0.06, 0.2, 0.06]) * h
            spot = q[_M["pelvis"]] + np.array([chest[0], -chest[1]])
            draw_ellipse(canvas, spot, (0.022 * h, 0.022 * h), 0.0, o.emblem, None)
        if o.strap:
            draw_capsule(canvas, q[_M["r_shoulder"]], q[_M["l_hip"]], 0.012 * h, o.shoes, None, 0.9)

    add(torso_depth, torso)
    add(0.5 * (z[_M["thorax"]] + z[_M["upper_neck"]]) - 0.01 * h, lambda: draw_capsule(
        canvas, q[_M["thorax"]], q[_M["upper_neck"]], 0.04 * h * w, o.skin, base + _P["neck"],
        shade(_M["upper_neck"])))
    for s in ("l", "r"):
        sho, elb, wri = _M[f"{s}_shoulder"], _M[f"{s}_elbow"], _M[f"{s}_wrist"]
        hip, kne, ank = _M[f"{s}_hip"], _M[f"{s}_knee"], _M[f"{s}_ankle"]
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
                along = _unit(q[b] - q[a], np.array([0.0, 1.0]))
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
    add(0.5 * (z[_M["upper_neck"]] + z[_M["head_top"]]), lambda: _draw_head(canvas, person, base + _P["head"]))
    for _, fn in sorted(jobs, key=lambda job: job[0]):
        fn()


def _draw_head(canvas: Canvas, person: Person, part_id: int) -> None:
    """Hair-coloured head, a face on its front (only when it faces the camera), eyes and mouth."""
    q, h, o = person.points, person.height, person.outfit
    frame = person.skeleton.head_frame
    length = person.skeleton.proportions.head * h
    neck = q[_M["upper_neck"]]

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
            if _faces_camera(person, eye):
                draw_ellipse(canvas, q[eye], (0.05 * length, 0.05 * length), 0.0, dark, None)
        mouth = neck + to_image(frame @ np.array([0, 0.25, 0.42])) * length
        if facing > 0.2:
            draw_ellipse(canvas, mouth, (0.1 * length, 0.03 * length), angle, dark, None, 0.9)


# --------------------------------------------------------------------------------------------------- scenes

def draw_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Clutter: a two-colour gradient, a horizon, random textured shapes and skin-coloured limb-like strokes."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1 = np.asarray(_colour(rng), np.float32), np.asarray(_colour(rng), np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    t = ((xs * math.cos(theta) + ys * math.sin(theta)) / (width + height) + 0.5).clip(0, 1)[..., None]
    canvas = Canvas(c0 * (1 - t) + c1 * t, np.full((height, width), BACKGROUND, np.int32))
    if rng.random() < 0.6:
        horizon = rng.uniform(0.3, 0.8) * height
        floor = np.array([[0, horizon + rng.uniform(-30, 30)], [width, horizon + rng.uniform(-30, 30)],
                          [width, height], [0, height]], np.float32)
        draw_polygon(canvas, floor, random_fabric(rng, width), None)
    for _ in range(int(rng.integers(8, 30))):
        size = float(rng.uniform(0.04, 0.35)) * min(width, height)
        centre = rng.uniform([0, 0], [width, height])
        fabric = random_fabric(rng, size)
        kind = rng.random()
        if kind < 0.35:
            half = rng.uniform(0.3, 1.0, 2) * size
            draw_polygon(canvas, centre + np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half, fabric, None)
        elif kind < 0.6:
            draw_ellipse(canvas, centre, (size * rng.uniform(0.3, 1), size * rng.uniform(0.3, 1)),
                         float(rng.uniform(0, 180)), fabric, None)
        elif kind < 0.8:
            n = int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            poly = centre + np.stack([np.cos(ang), np.sin(ang)], 1) * rng.uniform(0.4, 1, (n, 1)) * size
            draw_polygon(canvas, poly, fabric, None)
        else:
            end = centre + rng.normal(0, size, 2)
            draw_capsule(canvas, centre, end, float(rng.uniform(1, 0.12 * size + 1.5)), fabric, None)
    for _ in range(int(rng.integers(1, 6))):  # hard negatives: limb-like skin and cloth strokes
        a = rng.uniform([0, 0], [width, height])
        b = a + rng.normal(0, 0.12 * min(width, height), 2)
        skin = _SKIN[int(rng.integers(len(_SKIN)))]
        fab = Fabric(skin, skin, "solid", 1.0, 0.0, (0, 0, 0, 0)) if rng.random() < 0.5 else random_fabric(rng, 40)
        draw_capsule(canvas, a, b, float(rng.uniform(3, 12)), fab, None)
    return cv2.GaussianBlur(canvas.image, (0, 0), float(rng.uniform(0.6, 1.8)))


def draw_occluder(rng: np.random.Generator, canvas: Canvas, target: Person) -> None:
    """An object in front: a box rising from the bottom edge or a shape over part of the target."""
    h = target.height
    fabric = random_fabric(rng, h)
    height = canvas.shape[0]
    if rng.random() < 0.3:
        top = float(np.clip(target.points[:, 1].max() - rng.uniform(0.1, 0.45) * h, 0, height - 1))
        x0 = target.points[:, 0].mean() + rng.uniform(-0.8, 0.2) * h
        poly = np.array([[x0, top], [x0 + rng.uniform(0.4, 1.2) * h, top], [x0 + rng.uniform(0.4, 1.2) * h, height],
                         [x0, height]])
        draw_polygon(canvas, poly, fabric, OCCLUDER)
        return
    anchor = target.points[int(rng.integers(16))] + rng.normal(0, 0.1 * h, 2)
    size = float(rng.uniform(0.08, 0.25)) * h
    if rng.random() < 0.5:
        draw_ellipse(canvas, anchor, (size, size * rng.uniform(0.4, 1)), float(rng.uniform(0, 180)), fabric,
                     OCCLUDER)
    else:
        end = anchor + rng.normal(0, 1.5 * size, 2)
        draw_capsule(canvas, anchor, end, size * rng.uniform(0.3, 0.7), fabric, OCCLUDER)


def _visible(canvas: Canvas, person: Person, person_index: int) -> np.ndarray:
    """(NUM_POINTS,) bool: the joint's own part is in front at its pixel (head top probed just inside the head)."""
    height, width = canvas.shape
    out = np.zeros(NUM_POINTS, bool)
    for joint, owners in JOINT_OWNERS.items():
        pt = person.points[joint]
        if joint == _M["head_top"]:
            pt = pt + 0.1 * (person.points[_M["upper_neck"]] - pt)
        x, y = int(round(pt[0])), int(round(pt[1]))
        if 0 <= x < width and 0 <= y < height:
            out[joint] = canvas.ids[y, x] in {person_index * PARTS_PER_PERSON + o for o in owners}
    for eye in (L_EYE, R_EYE, NOSE):  # face points are hidden on the back of the head
        out[eye] &= _faces_camera(person, eye)
    return out


def _faces_camera(person: Person, point: int) -> bool:
    """A face point is on the camera's side of the head: nearer than the head's centre."""
    centre = 0.5 * (person.depth[_M["upper_neck"]] + person.depth[_M["head_top"]])
    return bool(person.depth[point] > centre + 0.01 * person.height)


@dataclass(frozen=True)
class PersonLabel:
    """One annotation row in memory (0-based px), before it is gathered into an :class:`Annotations` table."""

    joints: np.ndarray  # (J, 2)
    annotated: np.ndarray  # (J,)
    visible: np.ndarray  # (J,)
    center: np.ndarray  # (2,)
    scale: float
    normalize: float
    torsoangle: float
    person: int


def head_box(person: Person) -> np.ndarray:
    """An MPII-style head box: axis-aligned square around the head segment's midpoint, ``(x0, y0, x1, y1)``.

    Its side is ``1.25 / sqrt(2)`` of the head segment's 3-D length, so ``0.6 x diagonal = 0.75 x head segment``:
    the ratio measured on every row of the real validation file (1.333 +- 0.01).
    """
    mid = 0.5 * (person.points[_M["upper_neck"]] + person.points[_M["head_top"]])
    half = 0.5 * person.skeleton.proportions.head * person.height * 1.25 / math.sqrt(2)
    return np.array([mid[0] - half, mid[1] - half, mid[0] + half, mid[1] + half])


def flic_labels(person: Person) -> tuple[list[int], float]:
    """FLIC rows: internal point per FLIC joint, OBSERVER-centric (``l_*`` = larger x, as pose-hg-train's files),
    and the torso size ``||rsho - lhip||`` on the person-centric labels."""
    idx = list(FLIC_POINTS)
    q = person.points
    pairs = ((("l_shoulder", "l_elbow", "l_wrist"), ("r_shoulder", "r_elbow", "r_wrist")),
             (("l_hip",), ("r_hip",)), (("l_eye",), ("r_eye",)))
    for left, right in pairs:
        li, ri = FLIC.index(left[0]), FLIC.index(right[0])
        if q[idx[li], 0] < q[idx[ri], 0]:
            for a, b in zip(left, right):
                ia, ib = FLIC.index(a), FLIC.index(b)
                idx[ia], idx[ib] = idx[ib], idx[ia]
    torso = float(np.linalg.norm(q[_M["r_shoulder"]] - q[_M["l_hip"]]))
    return idx, torso


def label_person(canvas: Canvas, person: Person, person_index: int, joint_set: JointSet,
                 rng: np.random.Generator) -> PersonLabel:
    """The annotation row of a drawn person (joints outside the image are not annotated)."""
    height, width = canvas.shape
    vis_all = _visible(canvas, person, person_index)
    box = head_box(person)
    head_size = 0.6 * float(np.hypot(box[2] - box[0], box[3] - box[1]))
    s_raw = head_size / (0.1 * 200 * 1.25)  # MPII: normalize = 0.1 * 200 * scale with scale = 1.25 * s_raw
    body = person.points[:16]
    objpos = 0.5 * (body.min(0) + body.max(0)) + rng.normal(0, 0.03 * person.height, 2)
    center = objpos + np.array([0.0, 15.0 * s_raw])
    if joint_set.name == "flic":
        idx, normalize = flic_labels(person)
    else:
        idx, normalize = list(range(16)), head_size
    joints = person.points[idx].astype(np.float64)
    inside = (joints[:, 0] >= 0) & (joints[:, 0] <= width - 1) & (joints[:, 1] >= 0) & (joints[:, 1] <= height - 1)
    torso = person.points[_M["thorax"]] - person.points[_M["pelvis"]]
    return PersonLabel(
        joints=np.where(inside[:, None], joints, np.nan), annotated=inside, visible=vis_all[idx] & inside,
        center=center, scale=1.25 * s_raw, normalize=normalize,
        torsoangle=math.degrees(math.atan2(torso[0], -torso[1])), person=person_index,
    )


@dataclass(frozen=True)
class Scene:
    """A rendered image and the labels of the people annotated in it (the main person first)."""

    image: np.ndarray  # uint8 BGR
    labels: list[PersonLabel]


def _uniform_int(rng: np.random.Generator, pair: tuple[int, int]) -> int:
    return int(rng.integers(pair[0], pair[1] + 1))


def render_scene(rng: np.random.Generator, cfg: SyntheticConfig) -> Scene:
    """Background, the main person plus distractors in random depth order, occluders, camera noise."""
    width, height = _uniform_int(rng, cfg.width), _uniform_int(rng, cfg.height)
    joint_set = FLIC if cfg.joint_set == "flic" else MPII
    image = draw_background(rng, width, height)
    canvas = Canvas(image, np.full((height, width), BACKGROUND, np.int32))
    main_height = float(rng.uniform(cfg.person_height[0], max(cfg.person_height[0],
                                                              min(cfg.person_height[1], 1.05 * height))))
    people: list[Person] = []
    for k in range(1 + _uniform_int(rng, cfg.distractors)):
        skeleton = sample_skeleton(rng, frontal=joint_set.name == "flic")
        size = main_height if k == 0 else main_height * float(rng.uniform(0.55, 1.25))
        outfit = Outfit.sample(rng, size)
        projected = place(skeleton, size, np.zeros(2), outfit)
        lo, hi = projected.points.min(0), projected.points.max(0)
        slack = 0.3 if (k > 0 or rng.random() < 0.1) else 0.0  # sometimes cut off by the image border
        span = hi - lo
        low = -lo - slack * span
        high = np.array([width - 1, height - 1]) - hi + slack * span
        shift = rng.uniform(np.minimum(low, high), np.maximum(low, high))
        people.append(place(skeleton, size, shift, outfit))
    order = rng.permutation(len(people))
    for k in order:
        draw_person(canvas, people[int(k)], int(k))
    for _ in range(_uniform_int(rng, cfg.occluders)):
        draw_occluder(rng, canvas, people[0])
    labels = []
    for k, person in enumerate(people):
        label = label_person(canvas, person, k, joint_set, rng)
        if k == 0 or (cfg.annotate_distractors and label.annotated.sum() >= 0.75 * joint_set.count):
            labels.append(label)
    img = canvas.image * float(rng.uniform(0.75, 1.2)) + float(rng.uniform(-20, 20))
    sigma = float(rng.uniform(0, 1.0))
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(1, 6))
    return Scene(image=np.clip(img, 0, 255).astype(np.uint8), labels=labels)


# --------------------------------------------------------------------------------------------------- dataset

def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The independent random stream of image ``index`` of ``split`` (so any worker split gives the same data)."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index]))


def image_name(split: str, index: int) -> str:
    return f"{split}_{index:06d}.jpg"


@dataclass(frozen=True)
class _Task:
    cfg: SyntheticConfig
    split: str
    index: int
    image_dir: Path


def _write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"{path}: JPEG encoding failed")
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data.tobytes())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _render_task(task: _Task) -> tuple[str, list[PersonLabel]]:
    scene = render_scene(image_rng(task.cfg.seed, task.split, task.index), task.cfg)
    name = image_name(task.split, task.index)
    _write_jpeg(task.image_dir / name, scene.image, task.cfg.jpeg_quality)
    return name, scene.labels


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already; cv2's own threads would only contend


def _run(tasks: list[_Task], workers: int, desc: str, progress: bool) -> Iterator[tuple[str, list[PersonLabel]]]:
    """Render in order; ``workers > 1`` uses a spawn pool (safe even after torch/OpenMP were imported)."""
    if workers <= 1 or len(tasks) < 2:
        yield from tqdm(map(_render_task, tasks), total=len(tasks), desc=desc, unit="img", disable=not progress)
        return
    results = ordered_map(_render_task, tasks, min(workers, len(tasks)), chunksize=8, initializer=_worker_init)
    yield from tqdm(results, total=len(tasks), desc=desc, unit="img", disable=not progress)


def to_table(rows: list[tuple[str, list[PersonLabel]]], first_index: int) -> Annotations:
    """Gather per-image labels into an annotation table; ``index`` numbers images across both splits."""
    flat = [(name, img, lab) for img, (name, labels) in enumerate(rows) for lab in labels]
    if not flat:
        raise ValueError("no people were annotated; check the synthetic section of params.yaml")
    return Annotations(
        imgname=np.array([n for n, _, _ in flat]),
        center=np.stack([lab.center for _, _, lab in flat]),
        scale=np.array([lab.scale for _, _, lab in flat]),
        joints=np.stack([lab.joints for _, _, lab in flat]),
        annotated=np.stack([lab.annotated for _, _, lab in flat]),
        visible=np.stack([lab.visible for _, _, lab in flat]),
        normalize=np.array([lab.normalize for _, _, lab in flat]),
        extra={"index": np.array([first_index + i for _, i, _ in flat], np.float64),
               "person": np.array([lab.person for _, _, lab in flat], np.float64),
               "torsoangle": np.array([lab.torsoangle for _, _, lab in flat])},
    )


def generate_dataset(cfg: SyntheticConfig, out: str | Path, progress: bool = True) -> dict[str, Annotations]:
    """Write ``out/images/*.jpg`` and ``out/annot/{train,valid}.h5``; returns the tables written.

    Old annotation files are removed first and the new ones written last, so an interrupted run never leaves an
    h5 that lists images which were not written. Stale images of our own naming pattern are deleted.
    """
    out = Path(out)
    image_dir, annot_dir = out / "images", out / "annot"
    image_dir.mkdir(parents=True, exist_ok=True)
    annot_dir.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        (annot_dir / f"{split}.h5").unlink(missing_ok=True)
    counts = {"train": cfg.train_images, "valid": cfg.valid_images}
    wanted = {image_name(s, i) for s in SPLITS for i in range(counts[s])}
    for path in image_dir.glob("*.jpg"):
        if path.name.split("_")[0] in SPLITS and path.name not in wanted:
            path.unlink()
    workers = cfg.workers or os.cpu_count() or 1
    tables: dict[str, Annotations] = {}
    for split in SPLITS:
        tasks = [_Task(cfg, split, i, image_dir) for i in range(counts[split])]
        rows = list(_run(tasks, workers, f"synthesize {split}", progress))
        tables[split] = to_table(rows, first_index=0 if split == "train" else counts["train"])
    for split, table in tables.items():
        write_annotations(annot_dir / f"{split}.h5", table, name=cfg.joint_set)
    return tables


def draw_skeleton(image: np.ndarray, joints: np.ndarray, visible: np.ndarray, joint_set: JointSet) -> np.ndarray:
    """A copy of ``image`` with the labelled skeleton: person-left limbs blue, right red, hidden joints hollow."""
    out = image.copy()
    for a, b in joint_set.limbs:
        if np.isfinite(joints[[a, b]]).all():
            left = joint_set.names[a].startswith("l_") or joint_set.names[b].startswith("l_")
            right = joint_set.names[a].startswith("r_") or joint_set.names[b].startswith("r_")
            colour = (255, 80, 0) if left else (0, 0, 255) if right else (0, 220, 0)
            cv2.line(out, tuple(int(round(v)) for v in joints[a]), tuple(int(round(v)) for v in joints[b]), colour,
                     1, cv2.LINE_AA)
    for j, pt in enumerate(joints):
        if np.isfinite(pt).all():
            cv2.circle(out, tuple(int(round(v)) for v in pt), 2, (0, 255, 255), -1 if visible[j] else 1, cv2.LINE_AA)
    return out
