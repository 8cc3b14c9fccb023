"""The relations task of the synthetic dataset: classes that only a relation between two distant
objects tells apart. Every video shows two objects, A and B, in opposite bands of the frame (left
and right, or top and bottom) whose nearest pixels are at least MIN_GAP pixels apart along that
axis: farther than the spatial receptive field of the probe backbone (`i3d_probe`, 27 px at every
stage from res3 on), so that no position of any of its convolutions sees both objects.

Two relations, each a pair of classes:

  colour   two disks: the same colour / different colours (four hues, jittered)
  shade    two squares: the same shade of grey / different shades (dark or light, jittered)

Which relation a video is about shows in each object alone (a coloured disk or a grey square);
whether it holds does not: A's relational attribute is uniform, B's equals it or is another one,
so each object's attribute is uniform in both classes of a pair, and everything else (position,
drift, size) is drawn independently. A network whose output is a linear function of a sum of
per-position features, each from a field smaller than MIN_GAP (a CNN with global average pooling
and a linear classifier), scores a video by f(A) + g(B): no such sum tells "the same" from
"different" everywhere (an equality is an XOR of the two objects' attributes), and the best one
gets 3 of the 4 dark/light combinations of a pair right (for example "same" only when both are
dark): within a pair it is bounded by 0.75, and chance is 0.5. The same random draws give both
classes of a pair, which differ only in B's relational attribute (tested).

Nuisances: the frame rate and length, which band A is in and the pair's axis, each object's
position in its band, a slow drift along it, its size and angle, the jitter of its colour or shade,
a grey background (any level from 90 to 165) with a faint gradient and texture, 0-2 small grey
distractors that wobble anywhere, and pixel noise. Backgrounds and distractors are grey: the only
colours in a video are the objects' (colour is what the first relation compares).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from videoattn.synth.actions import Sprite
from videoattn.synth.canvas import add_noise, background, draw_shape
from videoattn.synth.render import FRAME_RATES, VideoSpec

__all__ = [
    "RELATIONS", "RELATION_CLASSES", "TONES", "FRAME_SIZE", "MIN_GAP", "BAND",
    "PairObject", "RelationScene", "sample_relation_spec", "sample_relation_scene", "relation_video", "render_relation_video",
]

FRAME_SIZE = 64  # square frames, trained at this size (no rescaling: distances stay in pixels)
MIN_GAP = 28  # columns (or rows) between the nearest pixels of A and B: > the probe's 27 px field
BAND = (FRAME_SIZE - MIN_GAP) // 2 - 1  # each object stays inside a band this wide at its edge of the frame

RELATIONS: dict[str, tuple[str, str]] = {
    # relation: (class where it holds, class where it does not)
    "colour": ("same_colour", "different_colour"),
    "shade": ("same_shade", "different_shade"),
}
RELATION_CLASSES: list[str] = [c for pair in RELATIONS.values() for c in pair]  # label = position
SHAPES = {"colour": "disk", "shade": "square"}  # the cue: which relation a video is about
TONES = {  # the compared attribute: a colour (RGB, 0..255) per value
    "colour": np.array([[230, 40, 40], [40, 200, 60], [50, 90, 245], [245, 215, 30]], dtype=np.float64),  # red green blue yellow
    "shade": np.array([[35, 35, 35], [225, 225, 225]], dtype=np.float64),  # dark, light
}
JITTER = 20.0  # per channel (colour) or for all three (shade), uniform: "the same" is never pixel-identical
RADIUS = (4.5, 6.4)  # object size (draw_shape's size, pixels)
EXTENT = 1.21  # every shape's pixels lie within EXTENT * size + 0.5 of its centre (rotated square: 0.85 * sqrt 2)


@dataclass(frozen=True)
class PairObject:
    """One of the two objects: what the relations look at, plus its nuisances."""

    shape: str
    tone: int  # index into TONES[relation]
    size: float
    angle: float


@dataclass(frozen=True)
class RelationScene:
    """A sampled video of the relations task, before drawing."""

    relation: str
    holds: bool
    axis: str  # "x": A and B left/right (bands are columns), "y": top/bottom (bands are rows)
    objects: tuple[PairObject, PairObject]  # (A, B)
    sprites: tuple[Sprite, Sprite]  # trajectories of A and B
    distractors: tuple[Sprite, ...]


def sample_relation_spec(rng: np.random.Generator, *, frames: tuple[int, int] = (32, 48)) -> VideoSpec:
    """Nuisances of one video: length in ``frames`` (inclusive), frame rate, distractors and noise;
    the frame is FRAME_SIZE square."""
    return VideoSpec(
        num_frames=int(rng.integers(frames[0], frames[1] + 1)),
        fps=float(rng.choice(FRAME_RATES)),
        height=FRAME_SIZE,
        width=FRAME_SIZE,
        num_distractors=int(rng.integers(0, 3)),
        noise=float(rng.uniform(0.0, 2.0)),
    )


def _relational_pair(relation: str, holds: bool, rng: np.random.Generator) -> tuple[int, int]:
    """The tones of A and B: A's uniform, B's the same or another one (uniform among the others).
    The same draws for both classes: only B's tone changes with ``holds``."""
    if relation not in RELATIONS:
        raise ValueError(f"unknown relation {relation!r}; valid: {', '.join(RELATIONS)}")
    n = len(TONES[relation])
    a, step = int(rng.integers(n)), int(rng.integers(1, n))
    return a, (a if holds else (a + step) % n)


def _object(relation: str, rng: np.random.Generator, tone: int) -> PairObject:
    """One object: the relation's shape (the cue), its tone, and independent nuisances."""
    return PairObject(shape=SHAPES[relation], tone=tone, size=float(rng.uniform(*RADIUS)), angle=float(rng.uniform(-0.3, 0.3)))


def _colour(rng: np.random.Generator, relation: str, tone: int) -> np.ndarray:
    jitter = rng.uniform(-JITTER, JITTER, size=3) if relation == "colour" else np.full(3, rng.uniform(-JITTER, JITTER))
    return np.clip(TONES[relation][tone] + jitter, 0, 255)


def _placement(rng: np.random.Generator, obj: PairObject, num_frames: int, far_side: bool) -> tuple[float, np.ndarray]:
    """Centre across the pair axis (the whole object inside its band) and along it per frame (a slow
    drift of up to a fifth of the frame over the video, either way, inside the frame)."""
    reach = EXTENT * obj.size + 0.5
    lo, hi = reach, BAND - reach
    across = rng.uniform(lo, hi) if hi > lo else (lo + hi) / 2
    across = FRAME_SIZE - 1 - across if far_side else across
    lo, hi = reach, FRAME_SIZE - 1 - reach
    travel = rng.uniform(-0.2, 0.2) * FRAME_SIZE
    start = rng.uniform(lo + max(0.0, -travel), hi - max(0.0, travel))
    return across, start + travel * np.arange(num_frames) / max(1, num_frames - 1)


def distractor_bars(
    rng: np.random.Generator, count: int, num_frames: int, bg: np.ndarray, frame_size: int = FRAME_SIZE,
    radius: tuple[float, float] = (1.5, 2.5), wobble: float = 0.15,
) -> list[Sprite]:
    """``count`` small grey bars that wobble in place (a random walk of step ``wobble`` px) anywhere in
    a ``frame_size`` frame, in every frame, each as far in grey from ``bg`` as it can be (drawn under
    the objects). The relations and temporal tasks' distractors."""
    sprites = []
    for _ in range(count):
        r = rng.uniform(*radius)
        walk = np.cumsum(rng.normal(0, wobble, size=(2, num_frames)), axis=1)  # [xy, T]
        x, y = rng.uniform(r, frame_size - r, size=2)
        grey = rng.uniform(0, 255)
        colour = np.full(3, grey) if abs(grey - bg.mean()) > 50 else np.full(3, 255.0 - grey)
        sprites.append(Sprite("bar", colour, x + walk[0], y + walk[1], r, angle=rng.uniform(0, np.pi)))
    return sprites


def sample_relation_scene(label: int | str, rng: np.random.Generator, spec: VideoSpec) -> RelationScene:
    """The scene of one video of class ``label`` (index into RELATION_CLASSES or name)."""
    name = RELATION_CLASSES[label] if isinstance(label, (int, np.integer)) else label
    matches = [(r, pair.index(name) == 0) for r, pair in RELATIONS.items() if name in pair]
    if not matches:
        raise ValueError(f"unknown class {label!r}; valid: {', '.join(RELATION_CLASSES)}")
    relation, holds = matches[0]
    axis = "x" if rng.uniform() < 0.5 else "y"
    a_first = rng.uniform() < 0.5  # A in the left/top band, or in the right/bottom one
    tone_a, tone_b = _relational_pair(relation, holds, rng)
    objects = (_object(relation, rng, tone_a), _object(relation, rng, tone_b))
    sprites = []
    for obj, far in zip(objects, (not a_first, a_first)):
        across, along = _placement(rng, obj, spec.num_frames, far)
        across = np.full(spec.num_frames, across)
        x, y = (across, along) if axis == "x" else (along, across)
        sprites.append(Sprite(obj.shape, _colour(rng, relation, obj.tone), x, y, obj.size, angle=obj.angle))
    return RelationScene(relation, holds, axis, objects, tuple(sprites), ())


def grey_background(rng: np.random.Generator, frame_size: int = FRAME_SIZE) -> np.ndarray:
    """A mid grey (every colour and both shades stand out from it) with a faint grey version of the
    actions task's gradient and texture: float32 [frame_size, frame_size, 3]."""
    grey = background(rng, frame_size, frame_size).mean(axis=2, keepdims=True)  # [H, W, 1]
    level = rng.uniform(90, 165)
    return np.repeat(level + 0.3 * (grey - grey.mean()), 3, axis=2).astype(np.float32)


def relation_video(label: int | str, rng: np.random.Generator, spec: VideoSpec | None = None) -> tuple[np.ndarray, RelationScene]:
    """Frames uint8 [T, FRAME_SIZE, FRAME_SIZE, 3] of one video of class ``label`` (index into
    RELATION_CLASSES or name), and the scene drawn in them."""
    spec = spec or sample_relation_spec(rng)
    if (spec.height, spec.width) != (FRAME_SIZE, FRAME_SIZE):
        raise ValueError(f"the relations task draws {FRAME_SIZE}x{FRAME_SIZE} frames, got a spec of {spec.width}x{spec.height}")
    bg = grey_background(rng)
    scene = sample_relation_scene(label, rng, spec)
    scene = replace(scene, distractors=tuple(distractor_bars(rng, spec.num_distractors, spec.num_frames, bg)))
    frames = np.empty((spec.num_frames, FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)
    for i in range(spec.num_frames):
        img = bg.copy()
        for s in (*scene.distractors, *scene.sprites):
            draw_shape(img, s.shape, s.colour, float(s.x[i]), float(s.y[i]), float(s.size), angle=float(s.angle))
        frames[i] = add_noise(rng, img, spec.noise)
    return frames, scene


def render_relation_video(label: int | str, rng: np.random.Generator, spec: VideoSpec | None = None) -> tuple[np.ndarray, VideoSpec]:
    """Frames uint8 [T, FRAME_SIZE, FRAME_SIZE, 3] of one video of class ``label``, and its spec
    (the renderer of the "relations" task in videoattn.synth.tasks)."""
    spec = spec or sample_relation_spec(rng)
    return relation_video(label, rng, spec)[0], spec
