"""Frame-accurate video decoding: `read_frames(source, indices)` returns the requested frames
(frame i = the i-th frame in presentation order) as uint8 [T, H, W, 3], with PyAV (default,
chosen by measurement, see scripts/bench_data.py) or decord, the other backend as fallback, or
torchcodec when asked for (`backend="torchcodec"`, `device="cuda"` decodes on the GPU's NVDEC).
Each backend is a module of `videoattn.data.backends`, imported only when used.

A source is a path, or the encoded file itself: bytes (a shard entry) or a binary file object,
decoded in memory (no temporary file). A `VideoInfo` (frame count, frame rate, frame
timestamps), as a shard carries it, spares the probe. One call serves any number of clips of
one video: all their frames come from one pass.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import IO, Callable, Iterator, Sequence, Union

import numpy as np
import torch

from videoattn.data.backends import BACKENDS, FALLBACK_BACKENDS, available_backends, check_backend, load, open_reader, usable
from videoattn.data.backends.base import DecodeError, Reader, VideoInfo, describe

__all__ = [
    "BACKENDS",
    "DecodeError",
    "VideoInfo",
    "VideoSource",
    "available_backends",
    "check_backend",
    "check_video",
    "decode_frames",
    "probe_num_frames",
    "probe_video",
    "read_frames",
]

VideoSource = Union[str, os.PathLike, bytes, bytearray, memoryview, IO[bytes]]
"""A path, or an encoded video file's content (bytes or a binary file object)."""


def read_frames(
    source: VideoSource,
    indices: Sequence[int] | np.ndarray | torch.Tensor,
    *,
    backend: str | None = None,
    threads: int = 1,
    fallback: bool = True,
    info: VideoInfo | None = None,
    name: str | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Frames ``indices`` (any order, repeats allowed) of the video ``source``: uint8 [T, H, W, 3].

    ``backend`` ("pyav", "decord" or "torchcodec"; default PyAV) is tried first; if it fails on
    the video and ``fallback`` is true, PyAV and decord are tried before raising
    :class:`DecodeError`. An index outside ``[0, number of frames)`` raises ``ValueError`` (not
    retried). ``info``, ``name`` and ``device``: see :func:`decode_frames`.
    """
    wanted = _as_index_array(indices)

    def select(num_frames: int, fps: float) -> np.ndarray:
        if len(wanted) and (wanted.min() < 0 or wanted.max() >= num_frames):
            raise IndexError(f"indices must lie in [0, {num_frames}) for {label} ({num_frames} frames), got {wanted.min()}..{wanted.max()}")
        return wanted

    data, label = _resolve(source, name)
    frames, inverse = decode_frames(data, select, backend=backend, threads=threads, fallback=fallback, info=info, name=label, device=device)
    return frames[inverse.to(frames.device)]


def decode_frames(
    source: VideoSource,
    select: Callable[..., np.ndarray],
    *,
    backend: str | None = None,
    threads: int = 1,
    fallback: bool = True,
    info: VideoInfo | None = None,
    name: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode the frames that ``select(num_frames)`` asks for, in one pass over the video; a
    ``select`` taking two arguments also gets the stream's average frame rate (``fps``).

    Returns ``(frames, inverse)``: ``frames`` uint8 [U, H, W, 3] holds each distinct requested
    frame once, in increasing index order, and ``frames[inverse]`` is the requested sequence.
    Callers resize ``frames`` before gathering, so a repeated frame is processed once.
    ``select`` raising ``IndexError`` is a caller error, re-raised as ``ValueError``.

    ``source``: a path, or the encoded file as bytes or a binary file object (decoded in
    memory). ``info``: the video's :class:`VideoInfo` when known (a shard carries it): ``select``
    gets its frame count and rate and no probe runs. ``name``: how errors name an in-memory
    video (default ``<N bytes>``). ``device``: where ``frames`` end up; torchcodec decodes there
    (``"cuda"``: NVDEC), the other backends decode on the CPU and copy.
    """
    data, label = _resolve(source, name)
    return _decode(data, label, select, backend=backend, threads=threads, fallback=fallback, info=info, device=torch.device(device))


def _decode(
    data: str | bytes,
    label: str,
    select: Callable[..., np.ndarray],
    *,
    backend: str | None,
    threads: int,
    fallback: bool,
    info: VideoInfo | None,
    device: torch.device,
    opened: Callable[[Reader], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """decode_frames on a resolved source; ``opened(reader)`` sees the reader that succeeds."""
    errors: list[str] = []
    for backend_name in _backend_order(backend, fallback):
        try:
            reader = open_reader(backend_name, data, threads=threads, info=info, device=device)
            try:
                wanted = np.asarray(_call_select(select, reader.num_frames, reader.fps), dtype=np.int64)
                unique, inverse = np.unique(wanted, return_inverse=True)
                frames = reader.get(unique) if len(unique) else np.zeros((0, 1, 1, 3), np.uint8)
                if opened is not None:
                    opened(reader)
            finally:
                reader.close()
        except IndexError as exc:  # the caller asked for frames the video does not have
            raise ValueError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - any decoder failure makes the video "bad"
            errors.append(f"{backend_name}: {exc.reason if isinstance(exc, DecodeError) else describe(exc)}")
            continue
        frames = torch.from_numpy(frames) if isinstance(frames, np.ndarray) else frames
        return frames.to(device), torch.from_numpy(inverse.reshape(-1))
    raise DecodeError(label, "; ".join(errors))


def probe_video(source: VideoSource, *, backend: str | None = None, fallback: bool = True, name: str | None = None) -> VideoInfo:
    """Frame count, frame rate and (PyAV) frame timestamps of a video, nothing decoded."""
    found: list[VideoInfo] = []

    def keep(reader: Reader) -> None:
        pts = getattr(reader, "pts", None)
        found.append(VideoInfo(reader.num_frames, reader.fps, None if pts is None else np.asarray(pts, dtype=np.int64)))

    data, label = _resolve(source, name)
    _decode(data, label, lambda n: np.zeros(0, np.int64), backend=backend, threads=1, fallback=fallback, info=None, device=torch.device("cpu"), opened=keep)
    return found[-1]


def probe_num_frames(source: VideoSource, *, backend: str | None = None, fallback: bool = True) -> int:
    """Number of frames of the video (with PyAV: packets demuxed, nothing decoded)."""
    return probe_video(source, backend=backend, fallback=fallback).num_frames


def check_video(source: VideoSource, *, full: bool = True, name: str | None = None) -> int:
    """Raise :class:`DecodeError` if the video is unusable, else return its number of frames.

    ``full``: decode every frame with PyAV (no RGB conversion) and require as many frames as
    the container holds, which finds errors and truncation in the middle of a file; if PyAV
    fails, the video still counts as readable when decord decodes every frame (training falls
    back to decord). Otherwise (quick) read the first, middle and last frames only.
    """
    data, label = _resolve(source, name)
    if full:
        try:
            return load("pyav").decode_all(data, label)
        except Exception as exc:  # noqa: BLE001
            first = exc.reason if isinstance(exc, DecodeError) else describe(exc)
            if not usable("decord"):
                raise DecodeError(label, f"pyav: {first}") from None
            try:
                return load("decord").decode_all(data)
            except Exception as exc2:  # noqa: BLE001
                second = exc2.reason if isinstance(exc2, DecodeError) else describe(exc2)
                raise DecodeError(label, f"pyav: {first}; decord: {second}") from None
    return _spot_check(data, label)


def _spot_check(data: str | bytes, label: str, info: VideoInfo | None = None) -> int:
    count: list[int] = []

    def select(n: int, fps: float) -> np.ndarray:
        count.append(n)
        return np.array(sorted({0, n // 2, n - 1}), dtype=np.int64)

    decode_frames(data, select, info=info, name=label)
    return count[-1]


# --------------------------------------------------------------------------------- helpers


def _resolve(source: VideoSource, name: str | None) -> tuple[str | bytes, str]:
    """(a path string or the encoded bytes, the name errors give the video). Paths are checked
    (exists, a file, not empty); a file object is read into memory."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        _check_file(path)
        return path, name or path
    if hasattr(source, "read"):
        data = source.read()  # type: ignore[union-attr]
        name = name or getattr(source, "name", None)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = source
    else:
        raise TypeError(f"source must be a path, bytes or a binary file object, got {type(source).__name__}")
    if not isinstance(data, bytes):
        data = bytes(data)
    label = str(name) if name else f"<{len(data)} bytes>"
    if not data:
        raise DecodeError(label, "empty (0 bytes)")
    return data, label


def _call_select(select: Callable[..., np.ndarray], num_frames: int, fps: float) -> np.ndarray:
    """``select(num_frames, fps)`` if it takes two positional arguments, else ``select(num_frames)``."""
    try:
        params = inspect.signature(select).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return select(num_frames, fps)
    kinds = [p.kind for p in params]
    two = kinds.count(inspect.Parameter.POSITIONAL_ONLY) + kinds.count(inspect.Parameter.POSITIONAL_OR_KEYWORD) >= 2
    return select(num_frames, fps) if two or inspect.Parameter.VAR_POSITIONAL in kinds else select(num_frames)


def _as_index_array(indices: Sequence[int] | np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    arr = np.asarray(indices)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"indices must be a 1-D sequence of integers, got dtype {arr.dtype} shape {arr.shape}")
    return arr.astype(np.int64)


def _check_file(path: str | os.PathLike) -> None:
    p = Path(path)
    if not p.exists():
        raise DecodeError(path, "no such file")
    if p.is_dir():
        raise DecodeError(path, "is a directory, not a video file")
    if p.stat().st_size == 0:
        raise DecodeError(path, "empty file")


def _backend_order(backend: str | None, fallback: bool) -> Iterator[str]:
    """The backends to try, in order; a fallback backend is imported only when it is reached."""
    if backend is not None:
        check_backend(backend)  # unknown: ValueError; not installable here: ImportError saying what to install
    first = backend or next((b for b in FALLBACK_BACKENDS if usable(b)), FALLBACK_BACKENDS[0])
    yield first
    if fallback:  # torchcodec is never imported unless asked for
        yield from (b for b in FALLBACK_BACKENDS if b != first and usable(b))
