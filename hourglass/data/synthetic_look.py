"""What the synthetic people wear: procedural fabrics and per-person outfits, whose dataset-wide asymmetric cues
(emblem on the left chest, watch on the left wrist, strap from the right shoulder) are what tells left from right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


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


def random_colour(rng: np.random.Generator, dark: bool = False) -> tuple[float, float, float]:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(40, 256), rng.integers(30, 120 if dark else 256)]]])
    return tuple(float(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def random_fabric(rng: np.random.Generator, size: float, plain: float = 0.45) -> Fabric:
    """A garment or clutter texture whose pattern period scales with ``size`` (px)."""
    colour = random_colour(rng)
    second = random_colour(rng) if rng.random() < 0.6 else tuple(0.6 * c for c in colour)
    style = "solid" if rng.random() < plain else str(rng.choice(["stripes", "checks", "noise"]))
    return Fabric(colour, second, style, period=float(max(2.0, size * rng.uniform(0.04, 0.2))),
                  angle=float(rng.uniform(0, np.pi)), phase=tuple(float(v) for v in rng.uniform(0, 6.3, 4)))


SKIN_TONES = ((60, 80, 120), (80, 110, 160), (100, 140, 190), (130, 170, 220), (160, 190, 235), (45, 60, 90))


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
    def sample(rng: np.random.Generator, size: float) -> Outfit:
        skin = np.asarray(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], float) * rng.uniform(0.85, 1.1)
        skin_t = tuple(float(v) for v in np.clip(skin, 0, 255))
        return Outfit(
            skin=Fabric(skin_t, skin_t, "solid", 1.0, 0.0, (0, 0, 0, 0)),
            hair=Fabric(random_colour(rng, dark=True), random_colour(rng, dark=True), "noise", size * 0.05, 0.0,
                        tuple(float(v) for v in rng.uniform(0, 6.3, 4))),
            shirt=random_fabric(rng, size), pants=random_fabric(rng, size, plain=0.7),
            shoes=Fabric(random_colour(rng, dark=True), random_colour(rng), "solid", 1.0, 0.0, (0, 0, 0, 0)),
            left_tint=tuple(float(v) for v in rng.uniform(0.7, 1.3, 3)),
            long_sleeves=bool(rng.random() < 0.6), long_pants=bool(rng.random() < 0.75),
            watch=bool(rng.random() < 0.5), strap=bool(rng.random() < 0.35),
            emblem=random_fabric(rng, size, plain=0.8),
        )


