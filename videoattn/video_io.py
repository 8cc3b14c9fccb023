"""Writing real video files with PyAV: used by the synthetic dataset generator, the
data-preparation script and the tests (which make their own tiny videos): H.264 in .mp4 by
default, VP9 in .webm (as Something-Something v2 distributes its videos), or any encoder and
container of PyAV's bundled FFmpeg.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["default_codec", "write_video"]

# Encoder speed settings unless ``options`` says otherwise: x264's "veryfast" preset; libvpx's
# "good" deadline at speed 4 with row multithreading (1.5x faster than libvpx's defaults
# on 340x256 clips, files 5% larger)
_SPEED = {"libx264": {"preset": "veryfast"}, "libvpx-vp9": {"deadline": "good", "cpu-used": "4", "row-mt": "1"}}
_CRF = {"libx264", "libx265", "libvpx-vp9", "libvpx", "libaom-av1", "libsvtav1"}
_CONTAINER_CODECS = {".webm": "VP8, VP9 or AV1 video (codec='libvpx-vp9')"}


def default_codec(path: str | Path) -> str:
    """The encoder ``write_video`` uses for ``path``: VP9 (``libvpx-vp9``) for .webm, else H.264 (``libx264``)."""
    return "libvpx-vp9" if Path(path).suffix.lower() == ".webm" else "libx264"


def write_video(
    path: str | Path,
    frames: np.ndarray,
    *,
    fps: float | Fraction = 30,
    codec: str | None = None,
    gop: int | None = None,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    crf: int | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode ``frames`` (uint8 ``[T, H, W, 3]`` RGB) to ``path`` with PyAV.

    The container follows the file's suffix (.mp4, .webm, .mkv, .avi, ...). ``codec``: an
    encoder of PyAV's FFmpeg; default :func:`default_codec` (VP9 for .webm, H.264 otherwise).
    ``fps`` may be a float such as 29.97 (stored as the exact NTSC fraction 30000/1001)
    or a ``Fraction``. ``gop`` sets the keyframe interval; ``pts`` (in ``time_base``
    units, default ``1/fps``) gives explicit presentation times, for variable frame
    rate files. ``crf``: constant quality (x264, x265, VP8, VP9, AV1; lower is better, 0 is
    lossless for x264 and VP9). ``options``: the encoder's own options, e.g.
    ``{"cpu-used": "8"}``. Width and height must be even for yuv420p.

    Raises ``ValueError`` naming the file for frames of the wrong type or shape, an encoder
    this FFmpeg lacks, or one the container cannot hold (no partial file is left behind).
    """
    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"frame size must be even for yuv420p, got {w}x{h}")
    if pts is not None and len(pts) != t:
        raise ValueError(f"pts has {len(pts)} entries for {t} frames")
    path = Path(path)
    codec = codec or default_codec(path)
    try:
        encoder = av.Codec(codec, "w").name  # "vp9" names the libvpx-vp9 encoder
    except av.codec.codec.UnknownCodecError:
        raise ValueError(f"{path}: PyAV's FFmpeg (av {av.__version__}) has no encoder {codec!r}") from None
    rate = _as_fraction(fps)
    opts = {**_SPEED.get(encoder, {}), **(options or {})}
    if gop is not None:
        opts["g"] = str(gop)
    if crf is not None and encoder in _CRF:
        opts["crf"] = str(crf)
        if encoder.startswith("libvpx"):
            opts.setdefault("b", "0")  # libvpx: constant quality needs bitrate 0
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with av.open(str(path), mode="w") as container:
            try:
                stream = container.add_stream(codec, rate=rate, options=opts)
            except ValueError as exc:  # "'webm' format does not support 'libx264' codec"
                holds = _CONTAINER_CODECS.get(path.suffix.lower())
                raise ValueError(f"{path}: {exc}" + (f"; a {path.suffix} file holds {holds}" if holds else "")) from None
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.codec_context.time_base = time_base or (1 / rate)
            for i in range(t):
                frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
                frame.pts = int(pts[i]) if pts is not None else i
                frame.time_base = stream.codec_context.time_base
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    except BaseException:
        path.unlink(missing_ok=True)  # no half-written video that a reader would take for a bad one
        raise
    return path


def _as_fraction(fps: float | Fraction) -> Fraction:
    if isinstance(fps, Fraction):
        return fps
    if abs(fps - 29.97) < 1e-3:
        return Fraction(30000, 1001)
    if abs(fps - 23.976) < 1e-3:
        return Fraction(24000, 1001)
    return Fraction(fps).limit_denominator(1001)
