"""The action classes of the synthetic dataset. Each class is one of seven motions, played
forwards or backwards in time: moving right / left, down / up, separating / approaching,
fading in / out, growing / shrinking, rotating clockwise / anticlockwise, a circle chasing a
square / a square chasing a circle. A class and its partner show exactly the same set of
frames in opposite orders, so no single frame (nor any unordered set of frames) can tell them
apart: only the order in time can.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["Sprite", "Scene", "Action", "ACTIONS", "CLASSES", "MOTIONS"]


@dataclass
class Sprite:
    """One object and its per-frame trajectory (arrays of length T, or scalars)."""

    shape: str
    colour: np.ndarray
    x: np.ndarray
    y: np.ndarray
    size: np.ndarray | float
    angle: np.ndarray | float = 0.0
    alpha: np.ndarray | float = 1.0


@dataclass
class Scene:
    """What a motion needs to know about the video it is drawn into."""

    num_frames: int
    height: int
    width: int
    background_colour: np.ndarray

    @property
    def short(self) -> int:
        return min(self.height, self.width)


Motion = Callable[[np.random.Generator, Scene, Callable[[], np.ndarray]], list[Sprite]]


def _ramp(rng: np.random.Generator, t: int) -> np.ndarray:
    """Progress 0 -> 1 over T frames at a constant or a smoothly varying speed."""
    s = np.linspace(0.0, 1.0, t)
    ease = rng.uniform(0.0, 0.6)  # mix in a smoothstep: slow start and end
    return (1 - ease) * s + ease * s * s * (3 - 2 * s)


def _span(rng: np.random.Generator, lo: float, hi: float, min_length: float) -> tuple[float, float]:
    """Two coordinates a < b inside [lo, hi] at least ``min_length`` apart."""
    length = rng.uniform(min(min_length, hi - lo), hi - lo)
    a = rng.uniform(lo, hi - length)
    return a, a + length


def _size(rng: np.random.Generator, scene: Scene) -> float:
    return scene.short * rng.uniform(0.13, 0.18)


def _object_shape(rng: np.random.Generator) -> str:
    return str(rng.choice(["disk", "square", "triangle", "ring"]))


def _offset(rng: np.random.Generator, coords: np.ndarray, margin: float, extent: int) -> float:
    """A random shift that keeps every coordinate in ``coords`` within [margin, extent - margin]."""
    lo, hi = margin - coords.min(), extent - margin - coords.max()
    return rng.uniform(lo, hi) if hi > lo else (lo + hi) / 2


def horizontal(rng: np.random.Generator, scene: Scene, colour: Callable[[], np.ndarray]) -> list[Sprite]:
    """Forwards: one object moving right (backwards: left)."""
    r = _size(rng, scene)
    a, b = _span(rng, r, scene.width - r, 0.5 * scene.width)
    y = rng.uniform(r, scene.height - r) + rng.uniform(-0.1, 0.1) * scene.height * _ramp(rng, scene.num_frames)
    return [Sprite(_object_shape(rng), colour(), a + (b - a) * _ramp(rng, scene.num_frames), y, r)]


def vertical(rng: np.random.Generator, scene: Scene, colour: Callable[[], np.ndarray]) -> list[Sprite]:
    """Forwards: one object moving down (backwards: up)."""
    r = _size(rng, scene)
    a, b = _span(rng, r, scene.height - r, 0.5 * scene.height)
    x = rng.uniform(r, scene.width - r) + rng.uniform(-0.1, 0.1) * scene.width * _ramp(rng, scene.num_frames)
    return [Sprite(_object_shape(rng), colour(), x, a + (b - a) * _ramp(rng, scene.num_frames), r)]


def distance(rng: np.random.Generator, scene: Scene, colour: Callable[[], np.ndarray]) -> list[Sprite]:
    """Forwards: two objects separating along a random axis (backwards: approaching)."""
    r = _size(rng, scene)
    theta = rng.uniform(0, np.pi)
    near = 2.3 * r
    far = max(near + 0.3 * scene.short, rng.uniform(0.6, 0.8) * scene.short)
    d = near + (far - near) * _ramp(rng, scene.num_frames)  # centre-to-centre distance
    xs = np.stack([-np.cos(theta) * d / 2, np.cos(theta) * d / 2])  # [2 objects, T]
    ys = np.stack([-np.sin(theta) * d / 2, np.sin(theta) * d / 2])
    xs += _offset(rng, xs, r, scene.width)
    ys += _offset(rng, ys, r, scene.height)
    return [Sprite(_object_shape(rng), colour(), xs[0], ys[0], r), Sprite(_object_shape(rng), colour(), xs[1], ys[1], r)]


def opacity(rng: np.random.Generator, scene: Scene, colour: Callable[[], np.ndarray]) -> list[Sprite]:
    """Forwards: one still object fading in (backwards: fading out)."""
    r = _size(rng, scene) * 1.2
    alpha = rng.uniform(0.0, 0.1) + rng.uniform(0.85, 0.9) * _ramp(rng, scene.num_frames)
    x, y = rng.uniform(r, scene.width - r), rng.uniform(r, scene.height - r)
    return [Sprite(_object_shape(rng), colour(), np.full(scene.num_frames, x), np.full(scene.num_frames, y), r, alpha=alpha)]


def scale(rng: np.random.Generator, scene: Scene, colour: Callable[[], np.ndarray]) -> list[Sprite]:
    """Forwards: one still object growing (backwards: shrinking)."""
    big = scene.short * rng.uniform(0.16, 0.24)
    size = big * (rng.uniform(0.15, 0.3) + 0.75 * _ramp(rng, scene.num_frames))
    x, y = rng.uniform(big, scene.width - big), rng.uniform(big, scene.height - big)
    return [Sprite(_object_shape(rng), colour(), np.full(scene.num_frames, x), np.full(scene.num_frames, y), size)]


def rotation(rng: np.random.Generator, scene: Scene, colour: Callable[[], np.ndarray]) -> list[Sprite]:
    """Forwards: a bar rotating clockwise on screen (backwards: anticlockwise).

    With y pointing down, a growing angle turns clockwise as seen on screen."""
    r = scene.short * rng.uniform(0.14, 0.22)
    speed = np.deg2rad(rng.uniform(4.0, 8.0))  # per frame: <= 32 degrees between frames 4 apart
    angle = rng.uniform(0, 2 * np.pi) + speed * np.arange(scene.num_frames)
    x, y = rng.uniform(r, scene.width - r), rng.uniform(r, scene.height - r)
    return [Sprite("bar", colour(), np.full(scene.num_frames, x), np.full(scene.num_frames, y), r, angle=angle)]


def chase(rng: np.random.Generator, scene: Scene, colour: Callable[[], np.ndarray]) -> list[Sprite]:
    """Forwards: a circle chasing a square, both moving the same way in a random direction
    (backwards: the square chases the circle)."""
    r = _size(rng, scene)
    gap = rng.uniform(2.3, 2.8) * r
    theta = rng.uniform(0, 2 * np.pi)
    ux, uy = np.cos(theta), np.sin(theta)
    p = rng.uniform(0.3, 0.45) * scene.short * _ramp(rng, scene.num_frames)  # follower's progress
    xs = np.stack([ux * p, ux * (p + gap)])  # [2 objects, T]
    ys = np.stack([uy * p, uy * (p + gap)])
    xs += _offset(rng, xs, r, scene.width)
    ys += _offset(rng, ys, r, scene.height)
    c = colour()
    follower = Sprite("disk", c, xs[0], ys[0], r)
    leader = Sprite("square", colour() if rng.uniform() < 0.5 else c, xs[1], ys[1], r)
    return [follower, leader]


@dataclass(frozen=True)
class Action:
    """A class: a motion, played forwards or backwards in time."""

    motion: Motion
    reverse: bool


MOTIONS: dict[str, tuple[Motion, str, str]] = {
    # motion name: (function, class when played forwards, class when played backwards)
    "horizontal": (horizontal, "moving_right", "moving_left"),
    "vertical": (vertical, "moving_down", "moving_up"),
    "distance": (distance, "separating", "approaching"),
    "opacity": (opacity, "fading_in", "fading_out"),
    "scale": (scale, "growing", "shrinking"),
    "rotation": (rotation, "rotating_clockwise", "rotating_anticlockwise"),
    "chase": (chase, "circle_chasing_square", "square_chasing_circle"),
}

ACTIONS: dict[str, Action] = {}
for _fn, _forwards, _backwards in MOTIONS.values():
    ACTIONS[_forwards] = Action(_fn, reverse=False)
    ACTIONS[_backwards] = Action(_fn, reverse=True)

CLASSES: list[str] = list(ACTIONS)  # label index = position in this list
