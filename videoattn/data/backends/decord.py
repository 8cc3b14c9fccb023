"""The decord backend (`import decord`, installed by the maintained fork decord2): random access
by frame index, the fallback when PyAV fails on a video.

decord's own console output (C++ error lines on file descriptor 2) goes into the error's reason
(see `native_stderr`). Create readers inside worker processes, not before a fork.

decord2 3.4.0's import loads (dlopen, RTLD_GLOBAL) every shared library of the `nvidia` pip
packages that torch's CUDA wheels install, for the sake of its own CUDA builds: measured after
`import torch`, +419 MB resident (245 MB of it private) and 0.39 s per process, against +5 MB
and 0.03 s without. The reader here decodes on the CPU, so the import hides the `nvidia`
package from that preload (see `_import_decord`).
"""
from __future__ import annotations

import importlib
import io
import sys
from types import ModuleType

import numpy as np
import torch

from videoattn.data.backends.base import DecodeError, VideoInfo, describe
from videoattn.data.backends.native_stderr import captured_native_stderr

__all__ = ["DecordReader", "check", "decode_all"]


def _import_decord() -> ModuleType:
    """``import decord`` with the `nvidia` package hidden from decord2's CUDA preload (it looks
    the package up with ``importlib.util.find_spec``, which answers None while ``sys.modules``
    holds None for it). A decord build that needs the CUDA runtime to load is imported again
    the plain way."""
    if "decord" in sys.modules or "nvidia" in sys.modules:
        return importlib.import_module("decord")
    sys.modules["nvidia"] = None  # type: ignore[assignment]
    try:
        return importlib.import_module("decord")
    except OSError:  # its native library needs the CUDA libraries preloaded: a CUDA build
        for name in [m for m in sys.modules if m == "decord" or m.startswith("decord.")]:
            del sys.modules[name]
        del sys.modules["nvidia"]
        return importlib.import_module("decord")
    finally:
        if sys.modules.get("nvidia", 0) is None:
            del sys.modules["nvidia"]


decord = _import_decord()


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
