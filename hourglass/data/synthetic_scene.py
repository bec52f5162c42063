"""Synthetic scenes and their labels: cluttered backgrounds, several people in random depth order, occluders and
camera noise, and each annotated person's MPII- or FLIC-style row (visibility from the part-id buffer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from hourglass.config import SyntheticConfig
from hourglass.data.synthetic_drawing import (
    BACKGROUND,
    JOINT_OWNERS,
    OCCLUDER,
    PARTS_PER_PERSON,
    Canvas,
    Person,
    draw_capsule,
    draw_ellipse,
    draw_person,
    draw_polygon,
    faces_camera,
    place,
)
from hourglass.data.synthetic_figure import FLIC_POINTS, L_EYE, NOSE, NUM_POINTS, POINT, R_EYE, sample_skeleton
from hourglass.data.synthetic_look import SKIN_TONES, Fabric, Outfit, random_colour, random_fabric
from hourglass.joints import FLIC, MPII, JointSet


def draw_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Clutter: a two-colour gradient, a horizon, random textured shapes and skin-coloured limb-like strokes."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1 = np.asarray(random_colour(rng), np.float32), np.asarray(random_colour(rng), np.float32)
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
        skin = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]
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
        if joint == POINT["head_top"]:
            pt = pt + 0.1 * (person.points[POINT["upper_neck"]] - pt)
        x, y = int(round(pt[0])), int(round(pt[1]))
        if 0 <= x < width and 0 <= y < height:
            out[joint] = canvas.ids[y, x] in {person_index * PARTS_PER_PERSON + o for o in owners}
    for eye in (L_EYE, R_EYE, NOSE):  # face points are hidden on the back of the head
        out[eye] &= faces_camera(person, eye)
    return out


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
    mid = 0.5 * (person.points[POINT["upper_neck"]] + person.points[POINT["head_top"]])
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
            for a, b in zip(left, right, strict=True):
                ia, ib = FLIC.index(a), FLIC.index(b)
                idx[ia], idx[ib] = idx[ib], idx[ia]
    torso = float(np.linalg.norm(q[POINT["r_shoulder"]] - q[POINT["l_hip"]]))
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
    if joint_set == FLIC:  # the generator's FLIC row layout (observer-centric, torso size)
        idx, normalize = flic_labels(person)
    else:
        idx, normalize = list(range(16)), head_size
    joints = person.points[idx].astype(np.float64)
    inside = (joints[:, 0] >= 0) & (joints[:, 0] <= width - 1) & (joints[:, 1] >= 0) & (joints[:, 1] <= height - 1)
    torso = person.points[POINT["thorax"]] - person.points[POINT["pelvis"]]
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


def render_scene(rng: np.random.Generator, cfg: SyntheticConfig, joint_set: JointSet = MPII) -> Scene:
    """Background, the main person plus distractors in random depth order, occluders, camera noise; people are
    labelled with ``joint_set``'s rows (MPII or FLIC)."""
    width, height = _uniform_int(rng, cfg.width), _uniform_int(rng, cfg.height)
    image = draw_background(rng, width, height)
    canvas = Canvas(image, np.full((height, width), BACKGROUND, np.int32))
    main_height = float(rng.uniform(cfg.person_height[0], max(cfg.person_height[0],
                                                              min(cfg.person_height[1], 1.05 * height))))
    people: list[Person] = []
    for k in range(1 + _uniform_int(rng, cfg.distractors)):
        skeleton = sample_skeleton(rng, frontal=joint_set == FLIC)
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


