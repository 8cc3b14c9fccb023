"""The tasks of the synthetic dataset, by name: each a class list, a sampler of per-video
nuisances, a renderer and its video lengths. `videoattn synth OUT --task actions|relations|temporal`
picks one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from videoattn.synth.actions import CLASSES
from videoattn.synth.relations import RELATION_CLASSES, render_relation_video, sample_relation_spec
from videoattn.synth.render import VideoSpec, render_video, sample_spec
from videoattn.synth.temporal import FRAMES as TEMPORAL_FRAMES
from videoattn.synth.temporal import MIN_SEPARATION, TEMPORAL_CLASSES, render_temporal_video, sample_temporal_spec

__all__ = ["SynthTask", "TASKS", "get_task"]


@dataclass(frozen=True)
class SynthTask:
    """classes: names in label order; sample_spec(rng, frames=(min, max)) -> VideoSpec;
    render(label, rng, spec) -> (uint8 frames [T, H, W, 3], spec); frames: the default (min, max)
    video length in frames."""

    classes: list[str]
    sample_spec: Callable[..., VideoSpec]
    render: Callable[[int, np.random.Generator, VideoSpec], tuple[np.ndarray, VideoSpec]]
    description: str
    frames: tuple[int, int] = (32, 48)


TASKS: dict[str, SynthTask] = {
    "actions": SynthTask(CLASSES, sample_spec, render_video, f"{len(CLASSES)} classes that only the order of frames tells apart"),
    "relations": SynthTask(RELATION_CLASSES, sample_relation_spec, render_relation_video,
                           f"{len(RELATION_CLASSES)} classes that only a relation between two distant objects tells apart"),
    "temporal": SynthTask(TEMPORAL_CLASSES, sample_temporal_spec, render_temporal_video,
                          f"{len(TEMPORAL_CLASSES)} classes that only a relation between two events {MIN_SEPARATION} frames apart tells apart",
                          frames=TEMPORAL_FRAMES),
}


def get_task(name: str) -> SynthTask:
    """The task called ``name``; an unknown name raises ValueError listing the valid ones."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid: {', '.join(TASKS)}")
    return TASKS[name]
