"""Frame-accurate video decoding: `read_frames(source, indices)` returns the requested frames
(frame i = the i-th frame in presentation order) as uint8 [T, H, W, 3], with PyAV (default,
chosen by measurement, see scripts/bench_data.py) or decord, the other backend as fallback, or
torchcodec when asked for (`backend="torchcodec"`, `device="cuda"` decodes on the GPU's NVDEC).

A source is a path, or the encoded file itself: bytes (a shard entry) or a binary file object,
decoded in memory (no temporary file). A `VideoInfo` (frame count, frame rate, frame
timestamps), as a shard carries it, spares the probe.

The PyAV path demuxes the video stream once without decoding (cheap) to map each presentation
timestamp to its frame index, seeks to the keyframe before the first frame needed, decodes
forward, converts to RGB only the frames asked for and stops after the last. One call serves
any number of clips of one video: all their frames come from one pass.
"""
from __future__ import annotations

import ctypes.util
import functools
import inspect
import io
import os
import re
import sys
import tempfile
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator, Sequence, Union

import numpy as np
import torch

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

BACKENDS = ("pyav", "decord", "torchcodec")
FALLBACK_BACKENDS = ("pyav", "decord")  # tried after a failing backend when fallback=True
FFMPEG_LIBRARIES = ("avutil", "avcodec", "avformat", "avdevice", "avfilter", "swscale", "swresample")

VideoSource = Union[str, os.PathLike, bytes, bytearray, memoryview, IO[bytes]]
"""A path, or an encoded video file's content (bytes or a binary file object)."""


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


def available_backends() -> list[str]:
    """Backends usable here, in the default order (PyAV first; torchcodec needs FFmpeg's libraries)."""
    return [name for name in BACKENDS if _usable(name)]


def check_backend(name: str) -> None:
    """Raise ``ImportError`` saying what to install if backend ``name`` cannot run here
    (``ValueError`` for an unknown name)."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "pyav":
        __import__("av")
    elif name == "decord":
        __import__("decord")
    else:
        _check_torchcodec()


def _check_torchcodec() -> None:
    try:
        import torchcodec
    except (ImportError, OSError, RuntimeError) as exc:  # absent, or its own libraries fail to load
        raise ImportError(f"backend 'torchcodec' needs the torchcodec package: pip install 'videoattn[torchcodec]' ({exc})") from None
    if getattr(torchcodec, "ffmpeg_major_version", None) is None:
        missing = [f"lib{lib}" for lib in FFMPEG_LIBRARIES if ctypes.util.find_library(lib) is None]
        found = (
            f"missing here: {', '.join(missing)}"
            if missing
            else f"found, but torchcodec {getattr(torchcodec, '__version__', '?')} cannot load them: it needs FFmpeg 4 to 8 "
            f"and the torchcodec release made for torch {torch.__version__}"
        )
        raise ImportError(
            f"backend 'torchcodec' needs FFmpeg's shared libraries ({found}). Install them: "
            "`apt-get install ffmpeg` (Debian/Ubuntu), `conda install -c conda-forge 'ffmpeg<8'`, "
            "or `brew install ffmpeg` (macOS); or use backend='pyav', which bundles its own FFmpeg."
        )


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
    opened: Callable[[object], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """decode_frames on a resolved source; ``opened(reader)`` sees the reader that succeeds."""
    errors: list[str] = []
    for backend_name in _backend_order(backend, fallback):
        try:
            factory = _READERS[backend_name]
            reader = factory(data, threads, info, device) if backend_name == "torchcodec" else factory(data, threads, info)
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
            errors.append(f"{backend_name}: {exc.reason if isinstance(exc, DecodeError) else _describe(exc)}")
            continue
        frames = torch.from_numpy(frames) if isinstance(frames, np.ndarray) else frames
        return frames.to(device), torch.from_numpy(inverse.reshape(-1))
    raise DecodeError(label, "; ".join(errors))


def probe_video(source: VideoSource, *, backend: str | None = None, fallback: bool = True, name: str | None = None) -> VideoInfo:
    """Frame count, frame rate and (PyAV) frame timestamps of a video, nothing decoded."""
    found: list[VideoInfo] = []

    def keep(reader: object) -> None:
        pts = getattr(reader, "pts", None)
        found.append(VideoInfo(reader.num_frames, reader.fps, None if pts is None else np.asarray(pts, dtype=np.int64)))  # type: ignore[attr-defined]

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
            return _pyav_decode_all(data, label)
        except Exception as exc:  # noqa: BLE001
            first = exc.reason if isinstance(exc, DecodeError) else _describe(exc)
            if not _usable("decord"):
                raise DecodeError(label, f"pyav: {first}") from None
            try:
                return _decord_decode_all(data)
            except Exception as exc2:  # noqa: BLE001
                second = exc2.reason if isinstance(exc2, DecodeError) else _describe(exc2)
                raise DecodeError(label, f"pyav: {first}; decord: {second}") from None
    return _spot_check(data, label)


def _spot_check(data: str | bytes, label: str, info: VideoInfo | None = None) -> int:
    count: list[int] = []

    def select(n: int, fps: float) -> np.ndarray:
        count.append(n)
        return np.array(sorted({0, n // 2, n - 1}), dtype=np.int64)

    decode_frames(data, select, info=info, name=label)
    return count[-1]


def _pyav_decode_all(data: str | bytes, label: str) -> int:
    import av

    with av.open(_av_input(data), metadata_errors="ignore") as container:
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


def _decord_decode_all(data: str | bytes, chunk: int = 32) -> int:
    reader = _DecordReader(data, 1)
    for start in range(0, reader.num_frames, chunk):
        reader.get(np.arange(start, min(start + chunk, reader.num_frames)))
    return reader.num_frames


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


def _av_input(data: str | bytes) -> str | io.BytesIO:
    return data if isinstance(data, str) else io.BytesIO(data)  # BytesIO shares the bytes until written


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
    if backend is not None:
        check_backend(backend)  # unknown: ValueError; not installable here: ImportError saying what to install
    available = [b for b in FALLBACK_BACKENDS if _usable(b)]  # torchcodec is never imported unless asked for
    first = backend or (available[0] if available else "pyav")
    return [first] + ([b for b in available if b != first] if fallback else [])


def _usable(name: str) -> bool:
    if name in FALLBACK_BACKENDS:  # asked at every decode: the import attempt is cached
        return _importable("av" if name == "pyav" else name)
    try:
        check_backend(name)
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = _NATIVE_LOG_PREFIX.sub("", text).strip().removesuffix(": '<none>'")  # PyAV names in-memory input <none>
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# decord's messages carry its C++ log prefixes: "[14:30:14] /github/workspace/src/video/x.cc:83: "
_NATIVE_LOG_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ")


@contextmanager
def _native_stderr_captured() -> Iterator[list[str]]:
    """Send the process's C-level stderr (file descriptor 2) to a scratch file while a native
    library runs, and hand back what it wrote. decord prints its own error lines there (with the
    video's bytes as its name when reading from memory): they become our error's reason instead
    of console noise. Serialised by a lock, as fd 2 is shared by the process's threads."""
    captured: list[str] = []
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no fd 2 (closed): nothing to keep quiet
            yield captured
            return
        sink = _stderr_sink()
        os.ftruncate(sink, 0)
        os.lseek(sink, 0, os.SEEK_SET)
        os.dup2(sink, 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.lseek(sink, 0, os.SEEK_SET)
            captured.append(os.read(sink, 65536).decode("utf-8", "replace"))


def _stderr_sink() -> int:
    """A scratch file (already unlinked) per process, reused: cheaper than a new one per call."""
    global _SINK
    if _SINK is None or _SINK[0] != os.getpid():
        handle, path = tempfile.mkstemp(prefix="videoattn-stderr-")
        os.unlink(path)
        _SINK = (os.getpid(), handle)
    return _SINK[1]


_SINK: tuple[int, int] | None = None
_STDERR_LOCK = threading.Lock()


def _new_lock_in_child() -> None:  # a fork while another thread held the lock must not deadlock the child
    global _STDERR_LOCK
    _STDERR_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_in_child)


# ---------------------------------------------------------------------------- PyAV reader

# Per-process cache of PyAV frame indexes (path, size, mtime) -> presentation timestamps, so a
# video sampled again in a later epoch skips the demux pass. Bounded: a few MB at most.
# In-memory videos are not cached: their VideoInfo (from the shard) carries the timestamps.
_PTS_CACHE: OrderedDict[tuple[str, int, int], tuple[np.ndarray | None, int]] = OrderedDict()
_PTS_CACHE_SIZE = 4096


@functools.cache
def _pyav_converts_with_threads() -> bool:
    """Whether this PyAV's frame conversion takes ``threads`` (PyAV 18 does)."""
    import av

    try:
        av.VideoFrame(16, 16, "yuv420p").to_ndarray(format="rgb24", threads=1)
    except TypeError:
        return False
    return True


class _PyAVReader:
    """One open PyAV container; ``num_frames``, ``fps`` and ``get(sorted unique indices)``."""

    def __init__(self, source: str | bytes, threads: int, info: VideoInfo | None = None) -> None:
        import av

        self.source = source
        self.path = source if isinstance(source, str) else "<memory>"
        self.container = av.open(_av_input(source), metadata_errors="ignore")
        try:
            if not self.container.streams.video:
                raise DecodeError(self.path, "no video stream")
            self.stream = self.container.streams.video[0]
            self.stream.thread_type = "AUTO" if threads != 1 else "SLICE"
            self.stream.codec_context.thread_count = max(0, threads)
            # the RGB conversion (swscale) with as many threads as the decoder: PyAV's default, one
            # per CPU, starts a thread pool for every frame converted (measured on 2 cores: 2 threads
            # created per frame, 9.2-9.7 ms against 12.6-13.7 ms per train clip's decode)
            self._convert = {"threads": max(0, threads)} if _pyav_converts_with_threads() else {}
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
        if key is not None:
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
        self.container.close()


# -------------------------------------------------------------------------- decord reader


class _DecordReader:
    """decord.VideoReader with the same interface (random access by index). decord's own
    console output goes into the error's reason (see ``_native_stderr_captured``)."""

    def __init__(self, source: str | bytes, threads: int, info: VideoInfo | None = None) -> None:
        import decord

        decord.logging.set_level(decord.logging.QUIET)  # FFmpeg's log; decord's C++ errors go to fd 2
        uri = source if isinstance(source, str) else io.BytesIO(source)
        with _native_stderr_captured() as printed:
            try:
                self.reader = decord.VideoReader(uri, ctx=decord.cpu(0), num_threads=max(0, threads))
            except Exception as exc:  # noqa: BLE001
                error = exc
            else:
                error = None
        if error is not None:
            # "video_reader.cc:83: ERROR opening: NAME, REASON" (NAME: for bytes, the bytes themselves)
            _, opening, rest = printed[-1].rpartition("ERROR opening: ")
            reason = f"cannot open: {rest.rsplit(', ', 1)[-1].strip()}" if opening and ", " in rest else _describe(error)
            raise DecodeError(source if isinstance(source, str) else "<memory>", reason)
        self.num_frames = len(self.reader)
        self.fps = float(self.reader.get_avg_fps() or 30.0)
        if info is not None:  # the frame count and rate the caller samples with (as from a file)
            self._frames_here, self.num_frames, self.fps = self.num_frames, info.num_frames, info.fps
        else:
            self._frames_here = self.num_frames
        if self.num_frames == 0:
            raise DecodeError(str(source)[:200] if isinstance(source, str) else "<memory>", "video stream has no frames")

    def get(self, indices: np.ndarray) -> np.ndarray:
        if len(indices) and int(indices[-1]) >= self._frames_here:
            raise DecodeError("<decord>", f"frame {int(indices[-1])} asked for, decord finds {self._frames_here} frames")
        with _native_stderr_captured():
            return self.reader.get_batch([int(i) for i in indices]).asnumpy()

    def close(self) -> None:
        del self.reader


# ---------------------------------------------------------------------- torchcodec reader


class _TorchCodecReader:
    """torchcodec.decoders.VideoDecoder in exact seek mode (frame i = the i-th frame in
    presentation order, as PyAV's path), on the CPU or on a CUDA device (NVDEC)."""

    def __init__(self, source: str | bytes, threads: int, info: VideoInfo | None = None, device: torch.device = torch.device("cpu")) -> None:
        _check_torchcodec()
        from torchcodec.decoders import VideoDecoder

        self.decoder = VideoDecoder(
            source, seek_mode="exact", num_ffmpeg_threads=max(0, threads), device=str(device), dimension_order="NHWC"
        )
        meta = self.decoder.metadata
        self._frames_here = int(meta.num_frames or 0)
        self.num_frames = info.num_frames if info is not None else self._frames_here
        self.fps = info.fps if info is not None else float(meta.average_fps or 30.0)
        if self._frames_here == 0:
            raise DecodeError("<torchcodec>", "video stream has no frames")

    def get(self, indices: np.ndarray) -> torch.Tensor:
        if len(indices) and int(indices[-1]) >= self._frames_here:
            raise DecodeError("<torchcodec>", f"frame {int(indices[-1])} asked for, torchcodec finds {self._frames_here} frames")
        return self.decoder.get_frames_at([int(i) for i in indices]).data  # [U, H, W, 3] uint8

    def close(self) -> None:
        del self.decoder


_READERS: dict[str, Callable[..., _PyAVReader | _DecordReader | _TorchCodecReader]] = {
    "pyav": _PyAVReader,
    "decord": _DecordReader,
    "torchcodec": _TorchCodecReader,
}
