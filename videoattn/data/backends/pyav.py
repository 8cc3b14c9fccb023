"""The PyAV backend (FFmpeg bundled in the `av` wheel): the default, chosen by measurement
(scripts/bench_data.py).

`PyAVReader` demuxes the video stream once without decoding (cheap) to map each presentation
timestamp to its frame index, seeks to the keyframe before the first frame needed, decodes
forward, converts to RGB only the frames asked for and stops after the last. Without usable
timestamps it counts decoded frames from the start. `decode_all` decodes every frame (no RGB
conversion): `check_video`'s full check.
"""
from __future__ import annotations

import functools
import io
import os
from collections import OrderedDict

import av
import numpy as np
import torch

from videoattn.data.backends.base import DecodeError, VideoInfo

__all__ = ["PyAVReader", "check", "decode_all"]

# Per-process cache of PyAV frame indexes (path, size, mtime) -> presentation timestamps, so a
# video sampled again in a later epoch skips the demux pass. Bounded: a few MB at most.
# In-memory videos are not cached: their VideoInfo (from the shard) carries the timestamps.
PTS_CACHE: OrderedDict[tuple[str, int, int], tuple[np.ndarray | None, int]] = OrderedDict()
PTS_CACHE_SIZE = 4096


def check() -> None:
    """Nothing beyond the import of `av` (done when this module loads)."""


def av_input(source: str | bytes) -> str | io.BytesIO:
    """What ``av.open`` takes for a path string or encoded bytes."""
    return source if isinstance(source, str) else io.BytesIO(source)  # BytesIO shares the bytes until written


@functools.cache
def converts_with_threads() -> bool:
    """Whether this PyAV's frame conversion takes ``threads`` (PyAV 18 does)."""
    try:
        av.VideoFrame(16, 16, "yuv420p").to_ndarray(format="rgb24", threads=1)
    except TypeError:
        return False
    return True


class PyAVReader:
    """One open PyAV container: ``num_frames``, ``fps`` and ``get(sorted unique indices)``."""

    def __init__(self, source: str | bytes, *, threads: int = 1, info: VideoInfo | None = None, device: torch.device | None = None) -> None:
        self.source = source
        self.path = source if isinstance(source, str) else "<memory>"
        self.container = av.open(av_input(source), metadata_errors="ignore")
        try:
            if not self.container.streams.video:
                raise DecodeError(self.path, "no video stream")
            self.stream = self.container.streams.video[0]
            self.stream.thread_type = "AUTO" if threads != 1 else "SLICE"
            self.stream.codec_context.thread_count = max(0, threads)
            # the RGB conversion (swscale) with as many threads as the decoder: PyAV's default, one
            # per CPU, starts a thread pool for every frame converted (measured on 2 cores: 2 threads
            # created per frame, 9.2-9.7 ms against 12.6-13.7 ms per train clip's decode)
            self._convert = {"threads": max(0, threads)} if converts_with_threads() else {}
            if info is not None and info.pts is not None:  # known: no demux pass
                self.pts, self._count = np.asarray(info.pts, dtype=np.int64), info.num_frames
            else:
                self.pts = self._frame_pts()
        except BaseException:
            self.container.close()
            raise
        self.num_frames = self._count if self.pts is None else len(self.pts)
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = float(rate) if rate else 30.0
        if info is not None:
            if info.num_frames != self.num_frames:
                self.close()
                raise DecodeError(self.path, f"the video's info lists {info.num_frames} frames, the stream holds {self.num_frames}")
            self.fps = info.fps
        if self.num_frames == 0:
            self.close()
            raise DecodeError(self.path, "video stream has no frames")

    def _frame_pts(self) -> np.ndarray | None:
        """Sorted presentation timestamps of all frames, or None if some packet has none
        (then frames are counted from the start instead). Sets ``self._count``."""
        key = None
        if isinstance(self.source, str):
            st = os.stat(self.source)
            key = (self.source, st.st_size, st.st_mtime_ns)
            if key in PTS_CACHE:
                PTS_CACHE.move_to_end(key)
                pts_or_none, self._count = PTS_CACHE[key]
                return pts_or_none
        pts: list[int] = []
        missing = 0
        for packet in self.container.demux(self.stream):
            if packet.size == 0 or packet.is_discard:
                continue
            if packet.pts is None:
                missing += 1
            else:
                pts.append(packet.pts)
        self._count = len(pts) + missing
        result = None if missing else np.unique(np.asarray(pts, dtype=np.int64))
        if result is not None and len(result) != len(pts):  # duplicate timestamps: count instead
            result = None
        if key is not None:
            PTS_CACHE[key] = (result, self._count)
            if len(PTS_CACHE) > PTS_CACHE_SIZE:
                PTS_CACHE.popitem(last=False)
        return result

    def get(self, indices: np.ndarray) -> np.ndarray:
        """Frames ``indices`` (sorted, unique): uint8 [U, H, W, 3]."""
        if self.pts is not None:
            frames = self._get_seek(indices, int(self.pts[indices[0]]))
            if frames is None and indices[0] > 0:  # e.g. the seek landed late: from the start
                frames = self._get_seek(indices, int(self.pts[0]))
            if frames is not None:
                return frames
        return self._get_sequential(indices)

    def _get_seek(self, indices: np.ndarray, seek_pts: int) -> np.ndarray | None:
        """Seek to the keyframe at or before ``seek_pts``, decode forward, stop after the last
        index. Returns None if the decoder's timestamps do not match the demuxed ones."""
        assert self.pts is not None
        self.container.seek(seek_pts, stream=self.stream, backward=True, any_frame=False)
        first_pts, last_pts = int(self.pts[indices[0]]), int(self.pts[indices[-1]])
        wanted = {int(self.pts[i]): k for k, i in enumerate(indices)}
        out: list[np.ndarray | None] = [None] * len(indices)
        got, started, done = 0, False, False
        context = self.stream.codec_context
        for packet in self.container.demux(self.stream):
            # A frame nobody asked for is skipped if no other frame references it (a non-reference
            # B-frame): between the keyframe and the clip, and between the clip's strided frames.
            context.skip_frame = "DEFAULT" if packet.pts is None or packet.pts in wanted else "NONREF"
            for frame in packet.decode():
                if frame.pts is None:
                    return None
                if not started:
                    started = True
                    if frame.pts > first_pts:
                        return None
                k = wanted.get(frame.pts)
                if k is not None and out[k] is None:
                    out[k] = frame.to_ndarray(format="rgb24", **self._convert)
                    got += 1
                if frame.pts >= last_pts or got == len(indices):
                    done = True
                    break
            if done:
                break
        context.skip_frame = "DEFAULT"
        if got < len(indices):  # timestamps that do not match, or a truncated stream: count instead
            return None
        return np.stack(out)  # type: ignore[arg-type]

    def _get_sequential(self, indices: np.ndarray) -> np.ndarray:
        """Fallback without usable timestamps: count decoded frames from the start."""
        self.container.seek(0, backward=True, any_frame=False)  # container-level, AV_TIME_BASE units
        wanted = {int(i): k for k, i in enumerate(indices)}
        out: list[np.ndarray | None] = [None] * len(indices)
        last = int(indices[-1])
        for position, frame in enumerate(self.container.decode(self.stream)):
            k = wanted.get(position)
            if k is not None:
                out[k] = frame.to_ndarray(format="rgb24", **self._convert)
            if position >= last:
                break
        if any(f is None for f in out):
            raise DecodeError(self.path, f"decoding stopped before frame {last} of {self.num_frames}")
        return np.stack(out)  # type: ignore[arg-type]

    def close(self) -> None:
        """Close the container."""
        self.container.close()


def decode_all(source: str | bytes, label: str) -> int:
    """Decode every frame of ``source`` (single-threaded, no RGB conversion) and return their
    number; :class:`DecodeError` (naming ``label``) if the stream holds fewer frames than its
    header lists or fewer decode than it holds (corrupt or truncated)."""
    with av.open(av_input(source), metadata_errors="ignore") as container:
        if not container.streams.video:
            raise DecodeError(label, "no video stream")
        stream = container.streams.video[0]  # single-threaded: frame threads hide some errors
        declared = stream.frames  # from the container header (0 if unknown)
        expected = sum(1 for p in container.demux(stream) if p.size > 0 and not p.is_discard)
        if expected == 0:
            raise DecodeError(label, "video stream has no frames")
        if declared and expected < declared:
            raise DecodeError(label, f"truncated: the header lists {declared} frames, the file holds {expected}")
        container.seek(0, backward=True, any_frame=False)
        decoded = sum(1 for _ in container.decode(stream))
    if decoded < expected:
        raise DecodeError(label, f"decoded only {decoded} of {expected} frames (corrupt or truncated)")
    return decoded
