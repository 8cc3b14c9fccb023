"""Writing real video files with PyAV: used by the synthetic dataset generator, the
data-preparation script and the tests (which make their own tiny mp4s).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["write_video"]


def write_video(
    path: str | Path,
    frames: np.ndarray,
    *,
    fps: float | Fraction = 30,
    codec: str = "libx264",
    gop: int | None = None,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    crf: int | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode ``frames`` (uint8 ``[T, H, W, 3]`` RGB) to ``path`` with PyAV.

    ``fps`` may be a float such as 29.97 (stored as the exact NTSC fraction 30000/1001)
    or a ``Fraction``. ``gop`` sets the keyframe interval; ``pts`` (in ``time_base``
    units, default ``1/fps``) gives explicit presentation times, for variable frame
    rate files. Width and height must be even for yuv420p (H.264, MPEG-4, VP9).
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
    rate = _as_fraction(fps)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opts = dict(options or {})
    if codec == "libx264":
        opts.setdefault("preset", "veryfast")
    if gop is not None:
        opts["g"] = str(gop)
    if crf is not None and codec in ("libx264", "libx265"):
        opts["crf"] = str(crf)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate, options=opts)
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
    return path


def _as_fraction(fps: float | Fraction) -> Fraction:
    if isinstance(fps, Fraction):
        return fps
    if abs(fps - 29.97) < 1e-3:
        return Fraction(30000, 1001)
    if abs(fps - 23.976) < 1e-3:
        return Fraction(24000, 1001)
    return Fraction(fps).limit_denominator(1001)
