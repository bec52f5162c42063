"""The synthetic people's bodies: a 3-D kinematic tree with MPII proportions and joint-angle limits, posed and seen
from a random direction (orthographic projection happens when a figure is placed in an image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hourglass.joints import FLIC, MPII

# Internal skeleton points: the 16 MPII joints in MPII order, then the FLIC face points and the toes.
L_EYE, R_EYE, NOSE, L_TOE, R_TOE = 16, 17, 18, 19, 20
NUM_POINTS = 21
POINT = {name: i for i, name in enumerate(MPII.names)}
# FLIC joint -> internal point, person-centric (the observer-centric swap happens in flic_labels).
FLIC_POINTS = tuple({"l_eye": L_EYE, "r_eye": R_EYE, "nose": NOSE}.get(n, POINT.get(n, -1)) for n in FLIC.names)


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


def unit_vector(vec: np.ndarray, fallback: np.ndarray) -> np.ndarray:
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
    def sample(rng: np.random.Generator) -> Proportions:
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
    ref = unit_vector(forward - upper * float(forward @ upper), frame @ np.array([0.0, 1.0, 0.0]))
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
    lateral = unit_vector(np.array([1.0, 0, 0]) - thigh * thigh[0], np.array([1.0, 0, 0]))
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
    pts[POINT["pelvis"]] = 0
    pts[POINT["thorax"]] = spine @ np.array([0, p.spine, 0])
    for name, side in (("l", 1), ("r", -1)):
        pts[POINT[f"{name}_hip"]] = np.array([side * p.hip, 0, 0])
        pts[POINT[f"{name}_shoulder"]] = pts[POINT["thorax"]] + spine @ np.array([side * p.shoulder, -0.02, 0])
    neck_dir = spine @ _rot("x", _clipped_normal(rng, 5, 10, -20, 35)) @ np.array([0, 1.0, 0])
    pts[POINT["upper_neck"]] = pts[POINT["thorax"]] + p.neck * neck_dir
    head = (spine @ _rot("y", _clipped_normal(rng, 0, 35, -80, 80)) @ _rot("x", _clipped_normal(rng, 10, 15, -40, 60))
            @ _rot("z", _clipped_normal(rng, 0, 10, -35, 35)))
    neck = pts[POINT["upper_neck"]]
    pts[POINT["head_top"]] = neck + head @ np.array([0, p.head, 0])
    pts[L_EYE] = neck + head @ (p.head * np.array([0.14, 0.5, 0.3]))
    pts[R_EYE] = neck + head @ (p.head * np.array([-0.14, 0.5, 0.3]))
    pts[NOSE] = neck + head @ (p.head * np.array([0.0, 0.38, 0.42]))
    for name, side in (("l", 1), ("r", -1)):
        elbow, wrist = _arm(rng, pts[POINT[f"{name}_shoulder"]], spine, side, p)
        pts[POINT[f"{name}_elbow"]], pts[POINT[f"{name}_wrist"]] = elbow, wrist
        knee, ankle, toe = _leg(rng, pts[POINT[f"{name}_hip"]], side, p, str(pose))
        pts[POINT[f"{name}_knee"]], pts[POINT[f"{name}_ankle"]] = knee, ankle
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


