"""Clip sampling: which frame indices make a clip of `num_frames` frames taken every
`sampling_rate` frames (a float stride is rounded per frame, for sampling at a target fps). Train takes a random clip, val the centre clip, test `num_clips`
clips evenly spread over the video. Videos shorter than the clip span have their indices
clamped to the last frame (PySlowFast's behaviour) or looped.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["SHORT_VIDEO_MODES", "centre_clip", "clip_span", "random_clip", "uniform_clips"]

SHORT_VIDEO_MODES = ("clamp", "loop")


def clip_span(num_frames: int, sampling_rate: float) -> int:
    """Number of source frames one clip covers: (T - 1) * tau + 1 (rounded)."""
    if num_frames < 1 or not sampling_rate > 0:
        raise ValueError(f"num_frames must be >= 1 and sampling_rate > 0, got {num_frames} and {sampling_rate}")
    return int(round((num_frames - 1) * sampling_rate)) + 1


def _clip(start: int, video_frames: int, num_frames: int, sampling_rate: float, short_video: str) -> np.ndarray:
    idx = start + np.round(np.arange(num_frames) * sampling_rate).astype(np.int64)
    if short_video == "clamp":
        return np.clip(idx, 0, video_frames - 1)
    if short_video == "loop":
        return idx % video_frames
    raise ValueError(f"short_video must be one of {SHORT_VIDEO_MODES}, got {short_video!r}")


def random_clip(
    video_frames: int,
    num_frames: int,
    sampling_rate: float,
    *,
    short_video: str = "clamp",
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """A clip starting at a uniformly random frame among those that leave room for the span."""
    _check_video(video_frames)
    slack = max(video_frames - clip_span(num_frames, sampling_rate), 0)
    start = int(torch.randint(slack + 1, (1,), generator=generator))
    return _clip(start, video_frames, num_frames, sampling_rate, short_video)


def centre_clip(video_frames: int, num_frames: int, sampling_rate: float, *, short_video: str = "clamp") -> np.ndarray:
    """The clip in the middle of the video."""
    _check_video(video_frames)
    slack = max(video_frames - clip_span(num_frames, sampling_rate), 0)
    return _clip(slack // 2, video_frames, num_frames, sampling_rate, short_video)


def uniform_clips(
    video_frames: int, num_frames: int, sampling_rate: float, num_clips: int, *, short_video: str = "clamp"
) -> np.ndarray:
    """``num_clips`` clips with starts evenly spaced from the first to the last possible start
    (one clip: the centre clip). Returns [num_clips, num_frames] indices."""
    _check_video(video_frames)
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    if num_clips == 1:
        return centre_clip(video_frames, num_frames, sampling_rate, short_video=short_video)[None]
    slack = max(video_frames - clip_span(num_frames, sampling_rate), 0)
    starts = np.round(np.linspace(0, slack, num_clips)).astype(np.int64)
    return np.stack([_clip(int(s), video_frames, num_frames, sampling_rate, short_video) for s in starts])


def _check_video(video_frames: int) -> None:
    if video_frames < 1:
        raise ValueError(f"video_frames must be >= 1, got {video_frames}")
