"""Synthetic video datasets written as real H.264 mp4s, two tasks: "actions" (classes that only
the order of frames in time tells apart: direction of motion, approaching vs separating, fading
in vs out, ...) and "relations" (classes that only a relation between two distant objects tells
apart: moving the same way or opposite ways, same or different colour, ...)."""
from videoattn.synth.actions import ACTIONS, CLASSES, MOTIONS
from videoattn.synth.generator import generate_dataset, video_rng
from videoattn.synth.relations import RELATION_CLASSES, RELATIONS, render_relation_video, sample_relation_scene, sample_relation_spec
from videoattn.synth.render import VideoSpec, render_video, sample_spec
from videoattn.synth.tasks import TASKS, SynthTask, get_task

__all__ = [
    "ACTIONS", "CLASSES", "MOTIONS", "RELATIONS", "RELATION_CLASSES", "SynthTask", "TASKS", "VideoSpec", "generate_dataset",
    "get_task", "render_relation_video", "render_video", "sample_relation_scene", "sample_relation_spec", "sample_spec", "video_rng",
]
