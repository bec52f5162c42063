"""Joint orders, left/right flip permutations and skeleton edges of the two datasets.

MPII order is the release's joint id 0..15 (pose-hg-train ``src/util/dataset/mpii.lua``); FLIC uses the 11 joints
of pose-hg-train's ``data/flic/annot`` files, observer-centric. Everything that swaps left and right (flip
augmentation, flip test) takes its permutation from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JointSet:
    """A dataset's joints: names in array order, the flip permutation and the limbs to draw."""

    name: str
    names: tuple[str, ...]
    flip: tuple[int, ...]  # flip[j] = index of the joint that j becomes when the image is mirrored
    limbs: tuple[tuple[int, int], ...]
    # Per joint 'left', 'right' or 'centre' (a dataset card's pairs say which); None: from the l_/r_ prefixes.
    sides: tuple[str, ...] | None = None
    observer: bool = False  # left/right are the image's sides, not the person's (FLIC's observer-centric labels)

    @property
    def count(self) -> int:
        return len(self.names)

    @property
    def joint_sides(self) -> tuple[str, ...]:
        """Per joint ``"left"``, ``"right"`` or ``"centre"``."""
        if self.sides is not None:
            return self.sides
        return tuple("left" if n.startswith("l_") else "right" if n.startswith("r_") else "centre"
                     for n in self.names)

    def index(self, joint: str) -> int:
        return self.names.index(joint)


MPII = JointSet(
    name="mpii",
    names=(
        "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
        "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
    ),
    flip=(5, 4, 3, 2, 1, 0, 6, 7, 8, 9, 15, 14, 13, 12, 11, 10),
    limbs=(
        (0, 1), (1, 2), (2, 6), (3, 6), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
        (10, 11), (11, 12), (12, 7), (13, 7), (13, 14), (14, 15),
    ),
)

FLIC = JointSet(
    name="flic",
    names=("l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
           "l_hip", "r_hip", "l_eye", "r_eye", "nose"),
    flip=(3, 4, 5, 0, 1, 2, 7, 6, 9, 8, 10),
    limbs=((0, 1), (1, 2), (3, 4), (4, 5), (0, 3), (0, 6), (3, 7), (6, 7), (8, 10), (9, 10)),
    observer=True,
)

JOINT_SETS = {"mpii": MPII, "flic": FLIC}


def joint_set(name: str) -> JointSet:
    """Return the joint set called ``name`` ('mpii' or 'flic'), with an error that lists the choices."""
    try:
        return JOINT_SETS[name]
    except KeyError:
        raise ValueError(f"unknown joint set {name!r}; expected one of {sorted(JOINT_SETS)}") from None
