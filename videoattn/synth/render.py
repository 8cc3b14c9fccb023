"""Rendering one synthetic video: random nuisances (length, frame rate, resolution, background,
distractor objects, noise) around the objects of an action class, as uint8 RGB frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from videoattn.synth.actions import ACTIONS, CLASSES, Scene, Sprite
from videoattn.synth.canvas import SHAPES, add_noise, background, draw_shape, pick_colour

__all__ = ["VideoSpec", "sample_spec", "render_video", "FRAME_RATES", "SHORT_SIDES", "ASPECTS"]

FRAME_RATES = (24.0, 25.0, 29.97, 30.0)
SHORT_SIDES = (64, 72, 80)
ASPECTS = (1.0, 4 / 3, 3 / 2)


@dataclass(frozen=True)
class VideoSpec:
    """The nuisance parameters of one video."""

    num_frames: int
    fps: float
    height: int
    width: int
    num_distractors: int
    noise: float


def sample_spec(rng: np.random.Generator, *, frames: tuple[int, int] = (32, 48)) -> VideoSpec:
    """Length in ``frames`` (inclusive), one of FRAME_RATES, short side in SHORT_SIDES, landscape
    or portrait in one of ASPECTS, sizes even (yuv420p)."""
    short = int(rng.choice(SHORT_SIDES))
    long = int(round(short * float(rng.choice(ASPECTS)) / 2)) * 2
    height, width = (short, long) if rng.uniform() < 0.85 else (long, short)
    return VideoSpec(
        num_frames=int(rng.integers(frames[0], frames[1] + 1)),
        fps=float(rng.choice(FRAME_RATES)),
        height=height,
        width=width,
        num_distractors=int(rng.integers(0, 2)),
        noise=float(rng.uniform(0.0, 2.0)),
    )


def _distractors(rng: np.random.Generator, scene: Scene, count: int, bg: np.ndarray) -> list[Sprite]:
    """Small objects that wobble in place (a random walk of a pixel or so), drawn under the actors."""
    sprites = []
    for _ in range(count):
        r = scene.short * rng.uniform(0.03, 0.06)
        walk = np.cumsum(rng.normal(0, 0.15, size=(2, scene.num_frames)), axis=1)  # [xy, T]
        x, y = rng.uniform(r, scene.width - r), rng.uniform(r, scene.height - r)
        shape = str(rng.choice(SHAPES))
        sprites.append(Sprite(shape, pick_colour(rng, bg, 60.0), x + walk[0], y + walk[1], r, angle=rng.uniform(0, np.pi)))
    return sprites


def _at(value: np.ndarray | float, i: int) -> float:
    return float(value[i]) if isinstance(value, np.ndarray) else float(value)


def render_video(label: int | str, rng: np.random.Generator, spec: VideoSpec | None = None) -> tuple[np.ndarray, VideoSpec]:
    """Frames uint8 [T, H, W, 3] of one video of class ``label`` (index into CLASSES or name)."""
    name = CLASSES[label] if isinstance(label, int) else label
    if name not in ACTIONS:
        raise ValueError(f"unknown class {label!r}; valid: {', '.join(CLASSES)}")
    spec = spec or sample_spec(rng)
    bg = background(rng, spec.height, spec.width)
    scene = Scene(spec.num_frames, spec.height, spec.width, bg.mean(axis=(0, 1)))
    action = ACTIONS[name]
    sprites = _distractors(rng, scene, spec.num_distractors, scene.background_colour)
    # The action takes place in the central square (the part every crop of the short side sees,
    # as Kinetics clips are roughly centred on their action); distractors use the whole frame.
    short = scene.short
    square = Scene(spec.num_frames, short, short, scene.background_colour)
    for sprite in action.motion(rng, square, lambda: pick_colour(rng, scene.background_colour, 150.0)):
        sprite.x, sprite.y = sprite.x + (spec.width - short) / 2, sprite.y + (spec.height - short) / 2
        sprites.append(sprite)
    frames = np.empty((spec.num_frames, spec.height, spec.width, 3), dtype=np.uint8)
    for i in range(spec.num_frames):
        img = bg.copy()
        for s in sprites:
            draw_shape(img, s.shape, s.colour, _at(s.x, i), _at(s.y, i), _at(s.size, i), angle=_at(s.angle, i), alpha=_at(s.alpha, i))
        frames[i] = add_noise(rng, img, spec.noise)
    if action.reverse:
        frames = frames[::-1].copy()  # the partner class: the same frames in the opposite order
    return frames, spec
