"""The tasks of the synthetic dataset, by name: each a class list, a sampler of per-video
nuisances and a renderer. `videoattn synth OUT --task actions|relations` picks one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from videoattn.synth.actions import CLASSES
from videoattn.synth.relations import RELATION_CLASSES, render_relation_video, sample_relation_spec
from videoattn.synth.render import VideoSpec, render_video, sample_spec

__all__ = ["SynthTask", "TASKS", "get_task"]


@dataclass(frozen=True)
class SynthTask:
    """classes: names in label order; sample_spec(rng, frames=(min, max)) -> VideoSpec;
    render(label, rng, spec) -> (uint8 frames [T, H, W, 3], spec)."""

    classes: list[str]
    sample_spec: Callable[..., VideoSpec]
    render: Callable[[int, np.random.Generator, VideoSpec], tuple[np.ndarray, VideoSpec]]
    description: str


TASKS: dict[str, SynthTask] = {
    "actions": SynthTask(CLASSES, sample_spec, render_video, f"{len(CLASSES)} classes that only the order of frames tells apart"),
    "relations": SynthTask(RELATION_CLASSES, sample_relation_spec, render_relation_video,
                           f"{len(RELATION_CLASSES)} classes that only a relation between two distant objects tells apart"),
}


def get_task(name: str) -> SynthTask:
    """The task called ``name``; an unknown name raises ValueError listing the valid ones."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid: {', '.join(TASKS)}")
    return TASKS[name]
