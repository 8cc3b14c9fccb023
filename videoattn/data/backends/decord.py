"""The decord backend (`import decord`, installed by the maintained fork decord2): random access
by frame index, the fallback when PyAV fails on a video.

decord's own console output (C++ error lines on file descriptor 2) goes into the error's reason
(see `native_stderr`). Create readers inside worker processes, not before a fork.
"""
from __future__ import annotations

import io

import decord
import numpy as np
import torch

from videoattn.data.backends.base import DecodeError, VideoInfo, describe
from videoattn.data.backends.native_stderr import captured_native_stderr

__all__ = ["DecordReader", "check", "decode_all"]


def check() -> None:
    """Nothing beyond the import of `decord` (done when this module loads)."""


class DecordReader:
    """decord.VideoReader with the interface of the other readers."""

    def __init__(self, source: str | bytes, *, threads: int = 1, info: VideoInfo | None = None, device: torch.device | None = None) -> None:
        decord.logging.set_level(decord.logging.QUIET)  # FFmpeg's log; decord's C++ errors go to fd 2
        uri = source if isinstance(source, str) else io.BytesIO(source)
        label = source if isinstance(source, str) else "<memory>"
        with captured_native_stderr() as printed:
            try:
                self.reader = decord.VideoReader(uri, ctx=decord.cpu(0), num_threads=max(0, threads))
            except Exception as exc:  # noqa: BLE001
                error: Exception | None = exc
            else:
                error = None
        if error is not None:
            # "video_reader.cc:83: ERROR opening: NAME, REASON" (NAME: for bytes, the bytes themselves)
            _, opening, rest = printed[-1].rpartition("ERROR opening: ")
            reason = f"cannot open: {rest.rsplit(', ', 1)[-1].strip()}" if opening and ", " in rest else describe(error)
            raise DecodeError(label, reason)
        self._frames_here = len(self.reader)
        self.num_frames = self._frames_here
        self.fps = float(self.reader.get_avg_fps() or 30.0)
        if info is not None:  # the frame count and rate the caller samples with (as from a file)
            self.num_frames, self.fps = info.num_frames, info.fps
        if self.num_frames == 0:
            raise DecodeError(label[:200], "video stream has no frames")

    def get(self, indices: np.ndarray) -> np.ndarray:
        """Frames ``indices`` (sorted, unique): uint8 [U, H, W, 3]."""
        if len(indices) and int(indices[-1]) >= self._frames_here:
            raise DecodeError("<decord>", f"frame {int(indices[-1])} asked for, decord finds {self._frames_here} frames")
        with captured_native_stderr():
            return self.reader.get_batch([int(i) for i in indices]).asnumpy()

    def close(self) -> None:
        """Drop the reader."""
        del self.reader


def decode_all(source: str | bytes, chunk: int = 32) -> int:
    """Decode every frame of ``source``, ``chunk`` at a time, and return their number."""
    reader = DecordReader(source)
    for start in range(0, reader.num_frames, chunk):
        reader.get(np.arange(start, min(start + chunk, reader.num_frames)))
    return reader.num_frames
