"""Tests for videoattn.video_io.write_video: the codec follows the file's suffix (VP9 in .webm, as
Something-Something v2 ships its videos; H.264 otherwise); the frames, rate and timestamps come
back from PyAV; crf controls VP9's quality; bad arguments raise a ValueError naming the file
and leave no file behind.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import moving_square_frames

from videoattn.video_io import default_codec, write_video


def decoded(path: Path) -> tuple[np.ndarray, list[Fraction], str, str, Fraction]:
    """Frames, presentation times (s, sorted), container and codec names, and the average rate of ``path``."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = sorted(p.pts * stream.time_base for p in container.demux(stream) if p.size)
        container.seek(0)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        return frames, times, container.format.name, stream.codec_context.name, stream.average_rate


def test_default_codec_follows_the_suffix() -> None:
    assert default_codec("clips/x.webm") == default_codec("X.WEBM") == "libvpx-vp9"
    assert default_codec("x.mp4") == default_codec("x.avi") == default_codec("x") == "libx264"


@pytest.mark.parametrize("name, container_name, codec_name", [("a.webm", "webm", "vp9"), ("a.mp4", "mp4", "h264"), ("a.mkv", "matroska", "h264")])
def test_writes_the_frames_in_the_container_of_the_suffix(tmp_path: Path, name: str, container_name: str, codec_name: str) -> None:
    source = moving_square_frames(20, 64, 160)
    path = write_video(tmp_path / "sub" / name, source, fps=12, gop=6)
    frames, times, found_container, found_codec, rate = decoded(path)
    assert container_name in found_container and found_codec == codec_name
    assert rate == 12 and len(frames) == 20
    assert np.allclose(np.array(times, dtype=float), np.arange(20) / 12, atol=0.001)  # Matroska: 1 ms units
    assert np.abs(frames.astype(int) - source.astype(int)).mean() < 2.5  # lossy (measured: 1.2)
    difference = np.abs(frames[:, None].astype(np.int16) - source[None].astype(np.int16)).mean(axis=(2, 3, 4))  # [20, 20]
    assert difference.argmin(axis=1).tolist() == list(range(20))  # decoded frame i is closest to source frame i


def test_vp9_variable_frame_rate_and_one_frame(tmp_path: Path) -> None:
    times = [0, 1, 2, 5, 6, 9, 10, 20]  # in 1/60 s
    path = write_video(tmp_path / "vfr.webm", moving_square_frames(8, 64, 160), fps=30, pts=times, time_base=Fraction(1, 60))
    frames, found, _, _, _ = decoded(path)
    assert len(frames) == 8 and found == [Fraction(round(t * 1000 / 60), 1000) for t in times]  # Matroska's 1 ms units
    frames, found, _, codec_name, _ = decoded(write_video(tmp_path / "one.webm", moving_square_frames(1, 64, 160)))
    assert codec_name == "vp9" and len(frames) == 1 and found == [0]


def test_vp9_crf_sets_the_quality(tmp_path: Path) -> None:
    source = np.random.default_rng(0).integers(0, 256, (6, 64, 80, 3), dtype=np.uint8)
    sizes, errors = [], []
    for crf in (4, 50):
        path = write_video(tmp_path / f"crf{crf}.webm", source, crf=crf)
        frames = decoded(path)[0]
        sizes.append(path.stat().st_size)
        errors.append(np.abs(frames.astype(int) - source.astype(int)).mean())
    assert sizes[0] > 2 * sizes[1] and errors[0] < errors[1], (sizes, errors)


def test_bad_codec_or_container_names_the_file_and_leaves_nothing(tmp_path: Path) -> None:
    frames = moving_square_frames(3)
    with pytest.raises(ValueError, match=r"x\.webm: .*libx264.*a \.webm file holds VP8, VP9 or AV1"):
        write_video(tmp_path / "x.webm", frames, codec="libx264")
    assert not (tmp_path / "x.webm").exists()
    with pytest.raises(ValueError, match=r"y\.mp4: PyAV's FFmpeg .* has no encoder 'no-such-codec'"):
        write_video(tmp_path / "y.mp4", frames, codec="no-such-codec")
    assert not (tmp_path / "y.mp4").exists()
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "z.mp4", frames.astype(np.float32))
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "z.mp4", frames[:, :63])
    with pytest.raises(ValueError, match="pts has 2 entries for 3 frames"):
        write_video(tmp_path / "z.mp4", frames, pts=[0, 1])
