"""The "temporal" task of the synthetic dataset: classes that only a relation between two events
far apart in time tells apart. Object A is shown in the first frames of the video, object B in
the last ones, with an empty stretch between them longer than the probe backbone's temporal
receptive field (docs/temporal.md), each anywhere in the frame; the class is whether they have
the same colour (two disks, one of four hues) or the same shade (two grey squares, dark or light):
the relations task's four classes (videoattn.synth.relations), across time instead of across
space.

A's tone is uniform; B's is the same as A's or, in the other class of the pair, uniform among the
others: each event alone has the same distribution in both classes, and the same random draws
give both classes of a pair, which differ only in B's tone. The shape of either object names the
relation the video is about.

Timeline (T frames, T in FRAMES by default, at most LONGEST): A in frames [0, a_end), nothing but the background and the
distractors in [a_end, b_start), B in [b_start, T). Every clip of CLIP_FRAMES consecutive frames
(the recipe's clip: sampling_rate 1) taken anywhere in the video, train or test view, holds at
least one frame of A and one of B, and from its last frame of A to its first of B there are at
least MIN_SEPARATION frames: more than the temporal field of i3d_probe (16 frames) and of
i3d_probe_lr (24), so no position of any layer of either depends on both events.

Nuisances: the frame rate and length, the events' lengths, each object's position anywhere in the
frame, a slow drift, its size and angle, the jitter of its colour or shade, a grey background (any
level from 90 to 165) with a faint gradient and texture, 0-2 small grey distractors that wobble
through the whole video, and pixel noise. The only colours in a video are the objects'.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from videoattn.synth.actions import Sprite
from videoattn.synth.canvas import add_noise, draw_shape
from videoattn.synth.relations import JITTER, RELATION_CLASSES, RELATIONS, SHAPES, TONES, PairObject, distractor_bars, grey_background
from videoattn.synth.render import FRAME_RATES, VideoSpec

__all__ = [
    "TEMPORAL_CLASSES", "FRAME_SIZE", "CLIP_FRAMES", "MIN_SEPARATION", "MIN_EVENT", "FRAMES", "LONGEST", "RADIUS",
    "TemporalScene", "event_lengths", "sample_temporal_spec", "sample_temporal_scene", "temporal_video", "render_temporal_video",
]

TEMPORAL_CLASSES: list[str] = list(RELATION_CLASSES)  # same_colour, different_colour, same_shade, different_shade
FRAME_SIZE = 28  # square frames, trained at this size (no rescaling)
CLIP_FRAMES = 48  # the clip every view of the recipe takes: 48 consecutive frames (configs/temporal.yaml)
MIN_SEPARATION = 25  # clip frames from the last frame of A to the first of B: > 24, i3d_probe_lr's temporal field
MIN_EVENT = 4  # frames each event lasts at least
RADIUS = (4.0, 5.5)  # object size (draw_shape's size, pixels)
EXTENT = 1.21  # every shape's pixels lie within EXTENT * size + 0.5 of its centre (rotated square: 0.85 * sqrt 2)
DRIFT = 0.2  # an object drifts by up to this fraction of the frame over its event, in a random direction


def _min_event(num_frames: int) -> int:
    """The shortest event a video of ``num_frames`` may hold: MIN_EVENT, and long enough that the
    clip starting at the last possible frame still holds a frame of A (and the first one, of B)."""
    return max(MIN_EVENT, num_frames - CLIP_FRAMES + 1)


def _fits(num_frames: int) -> bool:
    """Whether two events of at least _min_event frames fit with MIN_SEPARATION between them."""
    return num_frames >= CLIP_FRAMES and 2 * _min_event(num_frames) + MIN_SEPARATION - 1 <= num_frames


LONGEST = max(n for n in range(CLIP_FRAMES, 4 * CLIP_FRAMES) if _fits(n))  # 70: the longest video the layout allows
FRAMES: tuple[int, int] = (CLIP_FRAMES, CLIP_FRAMES + 8)  # default video lengths: 48-56 frames


def event_lengths(rng: np.random.Generator, num_frames: int) -> tuple[int, int]:
    """``(a_end, b_start)``: A lasts a_end frames from the start, B from b_start to the end.

    Both at least _min_event frames long, b_start - (a_end - 1) >= MIN_SEPARATION."""
    if not _fits(num_frames):
        raise ValueError(f"the temporal task's videos are {CLIP_FRAMES}-{LONGEST} frames long, got {num_frames}")
    lo = _min_event(num_frames)
    budget = num_frames + 1 - MIN_SEPARATION  # most frames A and B may take together
    a = int(rng.integers(lo, budget - lo + 1))
    b = int(rng.integers(lo, budget - a + 1))
    return a, num_frames - b


@dataclass(frozen=True)
class TemporalScene:
    """A sampled video of the temporal task, before drawing."""

    relation: str
    holds: bool
    objects: tuple[PairObject, PairObject]  # (A, B): A early, B late
    a_end: int  # A is drawn in frames [0, a_end)
    b_start: int  # B is drawn in frames [b_start, num_frames)
    sprites: tuple[Sprite, Sprite]  # trajectories of A and B, over the whole video (drawn only in their frames)
    distractors: tuple[Sprite, ...]


def sample_temporal_spec(rng: np.random.Generator, *, frames: tuple[int, int] = FRAMES) -> VideoSpec:
    """Nuisances of one video: length in ``frames`` (inclusive, within CLIP_FRAMES..LONGEST), frame
    rate, distractors and noise; the frame is FRAME_SIZE square."""
    if not CLIP_FRAMES <= frames[0] <= frames[1] <= LONGEST:
        raise ValueError(f"frames {tuple(frames)}: the temporal task's videos are {CLIP_FRAMES}-{LONGEST} frames long "
                         f"(two events {MIN_SEPARATION} frames apart, both in every {CLIP_FRAMES}-frame clip)")
    return VideoSpec(
        num_frames=int(rng.integers(frames[0], frames[1] + 1)),
        fps=float(rng.choice(FRAME_RATES)),
        height=FRAME_SIZE,
        width=FRAME_SIZE,
        num_distractors=int(rng.integers(0, 3)),
        noise=float(rng.uniform(0.0, 2.0)),
    )


def _tones(relation: str, holds: bool, rng: np.random.Generator) -> tuple[int, int]:
    """The tones of A and B: A's uniform, B's the same or another one (uniform among the others).
    The same draws for both classes: only B's tone changes with ``holds``."""
    n = len(TONES[relation])
    a, step = int(rng.integers(n)), int(rng.integers(1, n))
    return a, (a if holds else (a + step) % n)


def _colour(rng: np.random.Generator, relation: str, tone: int) -> np.ndarray:
    jitter = rng.uniform(-JITTER, JITTER, size=3) if relation == "colour" else np.full(3, rng.uniform(-JITTER, JITTER))
    return np.clip(TONES[relation][tone] + jitter, 0, 255)


def _trajectory(rng: np.random.Generator, size: float, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y per frame: a uniform start anywhere the whole object fits, drifting in a straight
    line by up to DRIFT of the frame over the video, inside the frame."""
    reach = EXTENT * size + 0.5
    lo, hi = reach, FRAME_SIZE - 1 - reach
    travel = rng.uniform(-DRIFT, DRIFT, size=2) * FRAME_SIZE  # [xy]
    start = [rng.uniform(lo + max(0.0, -d), hi - max(0.0, d)) for d in travel]
    progress = np.arange(num_frames) / max(1, num_frames - 1)
    return start[0] + travel[0] * progress, start[1] + travel[1] * progress


def sample_temporal_scene(label: int | str, rng: np.random.Generator, spec: VideoSpec) -> TemporalScene:
    """The scene of one video of class ``label`` (index into TEMPORAL_CLASSES or name)."""
    name = TEMPORAL_CLASSES[label] if isinstance(label, (int, np.integer)) else label
    matches = [(r, pair.index(name) == 0) for r, pair in RELATIONS.items() if name in pair]
    if not matches:
        raise ValueError(f"unknown class {label!r}; valid: {', '.join(TEMPORAL_CLASSES)}")
    relation, holds = matches[0]
    a_end, b_start = event_lengths(rng, spec.num_frames)
    tone_a, tone_b = _tones(relation, holds, rng)
    objects, sprites = [], []
    for tone in (tone_a, tone_b):
        obj = PairObject(shape=SHAPES[relation], tone=tone, size=float(rng.uniform(*RADIUS)), angle=float(rng.uniform(-0.3, 0.3)))
        x, y = _trajectory(rng, obj.size, spec.num_frames)
        objects.append(obj)
        sprites.append(Sprite(obj.shape, _colour(rng, relation, tone), x, y, obj.size, angle=obj.angle))
    return TemporalScene(relation, holds, (objects[0], objects[1]), a_end, b_start, (sprites[0], sprites[1]), ())


def temporal_video(label: int | str, rng: np.random.Generator, spec: VideoSpec | None = None) -> tuple[np.ndarray, TemporalScene]:
    """Frames uint8 [T, FRAME_SIZE, FRAME_SIZE, 3] of one video of class ``label`` (index into
    TEMPORAL_CLASSES or name), and the scene drawn in them."""
    spec = spec or sample_temporal_spec(rng)
    if (spec.height, spec.width) != (FRAME_SIZE, FRAME_SIZE):
        raise ValueError(f"the temporal task draws {FRAME_SIZE}x{FRAME_SIZE} frames, got a spec of {spec.width}x{spec.height}")
    bg = grey_background(rng, FRAME_SIZE)
    scene = sample_temporal_scene(label, rng, spec)
    scene = replace(scene, distractors=tuple(distractor_bars(rng, spec.num_distractors, spec.num_frames, bg, FRAME_SIZE, radius=(1.0, 1.8), wobble=0.1)))
    a, b = scene.sprites
    frames = np.empty((spec.num_frames, FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)
    for i in range(spec.num_frames):
        img = bg.copy()
        shown = [*scene.distractors, *([a] if i < scene.a_end else []), *([b] if i >= scene.b_start else [])]
        for s in shown:
            draw_shape(img, s.shape, s.colour, float(s.x[i]), float(s.y[i]), float(s.size), angle=float(s.angle))
        frames[i] = add_noise(rng, img, spec.noise)
    return frames, scene


def render_temporal_video(label: int | str, rng: np.random.Generator, spec: VideoSpec | None = None) -> tuple[np.ndarray, VideoSpec]:
    """Frames uint8 [T, FRAME_SIZE, FRAME_SIZE, 3] of one video of class ``label``, and its spec
    (the renderer of the "temporal" task in videoattn.synth.tasks)."""
    spec = spec or sample_temporal_spec(rng)
    return temporal_video(label, rng, spec)[0], spec
