"""Synthetic action dataset: classes that only the order of frames in time tells apart
(direction of motion, approaching vs separating, fading in vs out, growing vs shrinking,
clockwise vs anticlockwise rotation, which object chases which), written as real H.264 mp4s."""
from videoattn.synth.actions import ACTIONS, CLASSES, MOTIONS
from videoattn.synth.generator import generate_dataset, video_rng
from videoattn.synth.render import VideoSpec, render_video, sample_spec

__all__ = ["ACTIONS", "CLASSES", "MOTIONS", "VideoSpec", "generate_dataset", "render_video", "sample_spec", "video_rng"]
