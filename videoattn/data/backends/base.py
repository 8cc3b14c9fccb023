"""What every decoding backend shares: the error a bad video raises (`DecodeError`), what a probe
finds (`VideoInfo`), the interface of a backend's reader (`Reader`) and how a decoder's exception
becomes a one-line reason (`describe`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

__all__ = ["DecodeError", "Reader", "VideoInfo", "describe"]


class DecodeError(ValueError):
    """A video could not be decoded; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    """What a probe of a video finds: ``num_frames`` (frames in presentation order), ``fps``
    (the stream's average rate) and ``pts``, the sorted presentation timestamps of the frames in
    the stream's time base (None: unknown, or the packets lack them). Given to the decoders, it
    replaces their probe: PyAV seeks with ``pts`` without demuxing the file first."""

    num_frames: int
    fps: float
    pts: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.num_frames < 1 or not self.fps > 0:
            raise ValueError(f"VideoInfo needs num_frames >= 1 and fps > 0, got {self.num_frames} and {self.fps}")
        if self.pts is not None and len(self.pts) != self.num_frames:
            raise ValueError(f"VideoInfo: {len(self.pts)} timestamps for {self.num_frames} frames")


class Reader(Protocol):
    """One open video of one backend. A backend's reader is built as
    ``Reader(source, threads=..., info=..., device=...)`` (``source``: a path string or the
    encoded bytes; ``info``: a known :class:`VideoInfo`, whose count and rate it reports) and
    raises :class:`DecodeError` or its decoder's own exception on a bad video."""

    num_frames: int
    """Frames in presentation order (``info.num_frames`` when given)."""
    fps: float
    """The stream's average frame rate (``info.fps`` when given)."""

    def get(self, indices: np.ndarray) -> np.ndarray | torch.Tensor:
        """Frames ``indices`` (sorted, unique) as uint8 [U, H, W, 3]."""
        ...

    def close(self) -> None:
        """Release the decoder."""
        ...


def describe(exc: BaseException) -> str:
    """``"ExceptionType: first line of its message"``, without a native library's log prefix."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = _NATIVE_LOG_PREFIX.sub("", text).strip().removesuffix(": '<none>'")  # PyAV names in-memory input <none>
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# decord's messages carry its C++ log prefixes: "[14:30:14] /github/workspace/src/video/x.cc:83: "
_NATIVE_LOG_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ")
