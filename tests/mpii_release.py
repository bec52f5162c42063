"""A small MPII annotation release in the real struct layout, for tests (the real one is 12 MB and not in the repo).

``RELEASE.annolist(i).image.name``, ``RELEASE.annolist(i).annorect(p).objpos.x/.y`` and ``.scale``, and
``RELEASE.img_train`` (1 = training image, 0 = test image), nested as ``mpii_human_pose_v1_u12_1.mat`` nests them
(``shared/anchor-data/pytorch-pose/evaluation/data/detections.mat`` shows the ``annorect`` nesting).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

RELEASE_MEMBER = "mpii_human_pose_v1_u12_2/mpii_human_pose_v1_u12_1.mat"


def release_struct(images: Sequence[str], img_train: Sequence[int],
                   people: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
    """``RELEASE`` for savemat; ``people[i]`` lists image i's people as {"objpos": (x, y), "scale": s}."""
    annolist = np.zeros(len(images), dtype=[("image", object), ("annorect", object)])
    for i, (name, persons) in enumerate(zip(images, people, strict=True)):
        rects = np.zeros(len(persons), dtype=[("scale", object), ("objpos", object)])
        for p, person in enumerate(persons):
            x, y = person["objpos"]
            rects[p] = (float(person["scale"]), {"x": float(x), "y": float(y)})
        annolist[i] = ({"name": name}, rects)
    return {"annolist": annolist, "img_train": np.asarray(img_train, dtype=np.uint8)}


def write_release(path: Path, images: Sequence[str], img_train: Sequence[int],
                  people: Sequence[Sequence[dict[str, Any]]]) -> Path:
    scipy.io.savemat(path, {"RELEASE": release_struct(images, img_train, people)}, oned_as="row")
    return path


def write_release_zip(path: Path, images: Sequence[str], img_train: Sequence[int],
                      people: Sequence[Sequence[dict[str, Any]]]) -> Path:
    """``mpii_human_pose_v1_u12_2.zip`` as published: the .mat in a folder of that name, beside a README."""
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"RELEASE": release_struct(images, img_train, people)}, oned_as="row")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mpii_human_pose_v1_u12_2/README.md", "MPII Human Pose annotation release (test stand-in)\n")
        zf.writestr(RELEASE_MEMBER, buffer.getvalue())
    return path
