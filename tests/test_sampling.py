"""Tests for videoattn.data.sampling: clip spans, random / centre / uniform clips, and videos
shorter than a clip (clamped as in PySlowFast, or looped).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from videoattn.data.sampling import centre_clip, clip_span, random_clip, uniform_clips


def test_clip_span() -> None:
    assert clip_span(8, 8) == 57 and clip_span(1, 5) == 1 and clip_span(32, 2) == 63
    assert clip_span(8, 8 * 25 / 30) == 48  # 7 * 6.67 = 46.7 -> 47 frames between first and last
    with pytest.raises(ValueError, match="sampling_rate"):
        clip_span(8, 0)


def test_random_clip_covers_every_start_with_stride() -> None:
    g = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(400):
        idx = random_clip(30, 4, 3, generator=g)  # span 10 -> starts 0..20
        assert np.array_equal(np.diff(idx), [3, 3, 3])
        starts.add(int(idx[0]))
    assert starts == set(range(21))


def test_random_clip_is_reproducible_with_a_generator() -> None:
    a = [random_clip(100, 8, 2, generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    assert np.array_equal(a[0], a[1])


def test_centre_clip() -> None:
    assert centre_clip(30, 4, 3).tolist() == [10, 13, 16, 19]  # slack 20 -> start 10
    assert centre_clip(10, 4, 3).tolist() == [0, 3, 6, 9]


def test_uniform_clips_span_the_video() -> None:
    clips = uniform_clips(100, 4, 2, 5)  # span 7, slack 93 -> starts 0, 23, 46, 70, 93
    assert clips.shape == (5, 4)
    assert clips[:, 0].tolist() == [0, 23, 46, 70, 93] and clips[-1, -1] == 99
    assert np.array_equal(uniform_clips(100, 4, 2, 1), centre_clip(100, 4, 2)[None])


def test_short_videos_clamp_or_loop() -> None:
    assert centre_clip(5, 4, 2).tolist() == [0, 2, 4, 4]  # span 7 > 5 frames: last frame repeated
    assert centre_clip(5, 4, 2, short_video="loop").tolist() == [0, 2, 4, 1]
    assert random_clip(1, 3, 8).tolist() == [0, 0, 0]
    assert uniform_clips(5, 4, 2, 3).tolist() == [[0, 2, 4, 4]] * 3
    with pytest.raises(ValueError, match="short_video"):
        centre_clip(5, 4, 2, short_video="pad")
    with pytest.raises(ValueError, match="video_frames"):
        centre_clip(0, 4, 2)


def test_fractional_stride_rounds_each_frame() -> None:
    """Stride 8 * 25 / 30 (8 frames at 30 fps, in a 25 fps video): PySlowFast's TARGET_FPS rule."""
    assert centre_clip(1000, 4, 8 * 25 / 30).tolist() == [489, 496, 502, 509]  # span 21, offsets 0, 6.67, 13.3, 20
    clip = uniform_clips(300, 8, 2.5, 3)[0]
    assert (clip - clip[0]).tolist() == [0, 2, 5, 8, 10, 12, 15, 18]  # round half to even
