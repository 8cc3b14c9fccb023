# Frame-accurate video decoding: `read_frames(path, indices)` returns the requested frames
# (frame i = the i-th frame in presentation order) as uint8 [T, H, W, 3], with PyAV (default,
# chosen by measurement, see scripts/bench_data.py) or decord, the other backend as fallback.
#
# The PyAV path demuxes the video stream once without decoding (cheap) to map each
# presentation timestamp to its frame index, seeks to the keyframe before the first frame
# needed, decodes forward, converts to RGB only the frames asked for and stops after the last.
# One call serves any number of clips of one video: all their frames come from one pass.
from __future__ import annotations

import inspect
import os
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

__all__ = ["BACKENDS", "DecodeError", "available_backends", "check_video", "decode_frames", "probe_num_frames", "read_frames"]

BACKENDS = ("pyav", "decord")


class DecodeError(ValueError):
    """A video could not be decoded; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def available_backends() -> list[str]:
    """Backends importable here, in the default order (PyAV first)."""
    found = []
    for name in BACKENDS:
        try:
            __import__("av" if name == "pyav" else "decord")
        except ImportError:
            continue
        found.append(name)
    return found


def read_frames(
    path: str | os.PathLike,
    indices: Sequence[int] | np.ndarray | torch.Tensor,
    *,
    backend: str | None = None,
    threads: int = 1,
    fallback: bool = True,
) -> torch.Tensor:
    """Frames ``indices`` (any order, repeats allowed) of the video at ``path``: uint8 [T, H, W, 3].

    ``backend`` ("pyav" or "decord", default PyAV) is tried first; if it fails on the file and
    ``fallback`` is true, the other one is tried before raising :class:`DecodeError`. An index
    outside ``[0, number of frames)`` raises ``ValueError`` (not retried).
    """
    wanted = _as_index_array(indices)

    def select(num_frames: int, fps: float) -> np.ndarray:
        if len(wanted) and (wanted.min() < 0 or wanted.max() >= num_frames):
            raise IndexError(f"indices must lie in [0, {num_frames}) for {path} ({num_frames} frames), got {wanted.min()}..{wanted.max()}")
        return wanted

    frames, inverse = decode_frames(path, select, backend=backend, threads=threads, fallback=fallback)
    return frames[inverse]


def decode_frames(
    path: str | os.PathLike,
    select: Callable[..., np.ndarray],
    *,
    backend: str | None = None,
    threads: int = 1,
    fallback: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode the frames that ``select(num_frames)`` asks for, in one pass over the video; a
    ``select`` taking two arguments also gets the stream's average frame rate (``fps``).

    Returns ``(frames, inverse)``: ``frames`` uint8 [U, H, W, 3] holds each distinct requested
    frame once, in increasing index order, and ``frames[inverse]`` is the requested sequence.
    Callers resize ``frames`` before gathering, so a repeated frame is processed once.
    ``select`` raising ``IndexError`` is a caller error, re-raised as ``ValueError``.
    """
    _check_file(path)
    order = _backend_order(backend, fallback)
    errors: list[str] = []
    for name in order:
        try:
            reader = _READERS[name](str(path), threads)
            try:
                wanted = np.asarray(_call_select(select, reader.num_frames, reader.fps), dtype=np.int64)
                unique, inverse = np.unique(wanted, return_inverse=True)
                frames = reader.get(unique) if len(unique) else np.zeros((0, 1, 1, 3), np.uint8)
            finally:
                reader.close()
        except IndexError as exc:  # the caller asked for frames the video does not have
            raise ValueError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - any decoder failure makes the file "bad"
            errors.append(f"{name}: {_describe(exc)}")
            continue
        return torch.from_numpy(frames), torch.from_numpy(inverse.reshape(-1))
    raise DecodeError(path, "; ".join(errors))


def probe_num_frames(path: str | os.PathLike, *, backend: str | None = None, fallback: bool = True) -> int:
    """Number of frames of the video (with PyAV: packets demuxed, nothing decoded)."""
    counts: list[int] = []

    def select(num_frames: int, fps: float) -> np.ndarray:
        counts.append(num_frames)
        return np.zeros(0, dtype=np.int64)

    decode_frames(path, select, backend=backend, fallback=fallback)
    return counts[-1]


def check_video(path: str | os.PathLike, *, full: bool = True) -> int:
    """Raise :class:`DecodeError` if the video is unusable, else return its number of frames.

    ``full``: decode every frame with PyAV (no RGB conversion) and require as many frames as
    the container holds, which finds errors and truncation in the middle of a file; if PyAV
    fails, the file still counts as readable when decord decodes every frame (training falls
    back to decord). Otherwise (quick) read the first, middle and last frames only.
    """
    _check_file(path)
    if full:
        try:
            return _pyav_decode_all(str(path))
        except Exception as exc:  # noqa: BLE001
            first = exc.reason if isinstance(exc, DecodeError) else _describe(exc)
            if "decord" not in available_backends():
                raise DecodeError(path, f"pyav: {first}") from None
            try:
                return _decord_decode_all(str(path))
            except Exception as exc2:  # noqa: BLE001
                raise DecodeError(path, f"pyav: {first}; decord: {_describe(exc2)}") from None
    return _spot_check(path, None, fallback=True)


def _spot_check(path: str | os.PathLike, backend: str | None, fallback: bool) -> int:
    count: list[int] = []

    def select(n: int, fps: float) -> np.ndarray:
        count.append(n)
        return np.array(sorted({0, n // 2, n - 1}), dtype=np.int64)

    decode_frames(path, select, backend=backend, fallback=fallback)
    return count[-1]


def _pyav_decode_all(path: str) -> int:
    import av

    with av.open(path, metadata_errors="ignore") as container:
        if not container.streams.video:
            raise DecodeError(path, "no video stream")
        stream = container.streams.video[0]  # single-threaded: frame threads hide some errors
        declared = stream.frames  # from the container header (0 if unknown)
        expected = sum(1 for p in container.demux(stream) if p.size > 0 and not p.is_discard)
        if expected == 0:
            raise DecodeError(path, "video stream has no frames")
        if declared and expected < declared:
            raise DecodeError(path, f"truncated: the header lists {declared} frames, the file holds {expected}")
        container.seek(0, backward=True, any_frame=False)
        decoded = sum(1 for _ in container.decode(stream))
    if decoded < expected:
        raise DecodeError(path, f"decoded only {decoded} of {expected} frames (corrupt or truncated)")
    return decoded


def _decord_decode_all(path: str, chunk: int = 32) -> int:
    reader = _DecordReader(path, 1)
    for start in range(0, reader.num_frames, chunk):
        reader.get(np.arange(start, min(start + chunk, reader.num_frames)))
    return reader.num_frames


# --------------------------------------------------------------------------------- helpers


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


def _backend_order(backend: str | None, fallback: bool) -> list[str]:
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    available = available_backends()
    first = backend or (available[0] if available else "pyav")
    order = [first] + ([b for b in available if b != first] if fallback else [])
    return order


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---------------------------------------------------------------------------- PyAV reader

# Per-process cache of PyAV frame indexes (path, size, mtime) -> presentation timestamps, so a
# video sampled again in a later epoch skips the demux pass. Bounded: a few MB at most.
_PTS_CACHE: OrderedDict[tuple[str, int, int], tuple[np.ndarray | None, int]] = OrderedDict()
_PTS_CACHE_SIZE = 4096


class _PyAVReader:
    """One open PyAV container; ``num_frames`` and ``get(sorted unique indices)``."""

    def __init__(self, path: str, threads: int) -> None:
        import av

        self.path = path
        self.container = av.open(path, metadata_errors="ignore")
        try:
            if not self.container.streams.video:
                raise DecodeError(path, "no video stream")
            self.stream = self.container.streams.video[0]
            self.stream.thread_type = "AUTO" if threads != 1 else "SLICE"
            self.stream.codec_context.thread_count = max(0, threads)
            self.pts = self._frame_pts()
        except BaseException:
            self.container.close()
            raise
        self.num_frames = self._count if self.pts is None else len(self.pts)
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = float(rate) if rate else 30.0
        if self.num_frames == 0:
            self.close()
            raise DecodeError(path, "video stream has no frames")

    def _frame_pts(self) -> np.ndarray | None:
        """Sorted presentation timestamps of all frames, or None if some packet has none
        (then frames are counted from the start instead). Sets ``self._count``."""
        st = os.stat(self.path)
        key = (self.path, st.st_size, st.st_mtime_ns)
        if key in _PTS_CACHE:
            _PTS_CACHE.move_to_end(key)
            pts_or_none, self._count = _PTS_CACHE[key]
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
        _PTS_CACHE[key] = (result, self._count)
        if len(_PTS_CACHE) > _PTS_CACHE_SIZE:
            _PTS_CACHE.popitem(last=False)
        return result

    def get(self, indices: np.ndarray) -> np.ndarray:
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
                    out[k] = frame.to_ndarray(format="rgb24")
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
                out[k] = frame.to_ndarray(format="rgb24")
            if position >= last:
                break
        if any(f is None for f in out):
            raise DecodeError(self.path, f"decoding stopped before frame {last} of {self.num_frames}")
        return np.stack(out)  # type: ignore[arg-type]

    def close(self) -> None:
        self.container.close()


# -------------------------------------------------------------------------- decord reader


class _DecordReader:
    """decord.VideoReader with the same two-method interface (random access by index)."""

    def __init__(self, path: str, threads: int) -> None:
        import decord

        decord.logging.set_level(decord.logging.QUIET)  # errors come back as exceptions
        self.reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=max(0, threads))
        self.num_frames = len(self.reader)
        self.fps = float(self.reader.get_avg_fps() or 30.0)
        if self.num_frames == 0:
            raise DecodeError(path, "video stream has no frames")

    def get(self, indices: np.ndarray) -> np.ndarray:
        return self.reader.get_batch([int(i) for i in indices]).asnumpy()

    def close(self) -> None:
        del self.reader


_READERS: dict[str, Callable[[str, int], _PyAVReader | _DecordReader]] = {"pyav": _PyAVReader, "decord": _DecordReader}
