"""Synthetic video datasets written as real H.264 mp4s, three tasks: "actions" (classes that only
the order of frames in time tells apart: direction of motion, approaching vs separating, fading
in vs out, ...), "relations" (classes that only a relation between two objects far apart in space
tells apart: same or different colour or shade) and "temporal" (the same relations between two
events far apart in time)."""
from videoattn.synth.actions import ACTIONS, CLASSES, MOTIONS
from videoattn.synth.generator import generate_dataset, video_rng
from videoattn.synth.relations import RELATION_CLASSES, RELATIONS, render_relation_video, sample_relation_scene, sample_relation_spec
from videoattn.synth.render import VideoSpec, render_video, sample_spec
from videoattn.synth.tasks import TASKS, SynthTask, get_task
from videoattn.synth.temporal import TEMPORAL_CLASSES, render_temporal_video, sample_temporal_scene, sample_temporal_spec

__all__ = [
    "ACTIONS", "CLASSES", "MOTIONS", "RELATIONS", "RELATION_CLASSES", "SynthTask", "TASKS", "TEMPORAL_CLASSES", "VideoSpec", "generate_dataset",
    "get_task", "render_relation_video", "render_temporal_video", "render_video", "sample_relation_scene", "sample_relation_spec",
    "sample_spec", "sample_temporal_scene", "sample_temporal_spec", "video_rng",
]
