"""The torchcodec backend (PyTorch's decoder, on the system's FFmpeg libraries): exact seek mode
(frame i = the i-th frame in presentation order, as the PyAV path), on the CPU or on a CUDA
device (NVDEC). Used only when asked for (``backend="torchcodec"``).
"""
from __future__ import annotations

import ctypes.util

import numpy as np
import torch

from videoattn.data.backends.base import DecodeError, VideoInfo

__all__ = ["TorchCodecReader", "check"]

FFMPEG_LIBRARIES = ("avutil", "avcodec", "avformat", "avdevice", "avfilter", "swscale", "swresample")


def check() -> None:
    """Raise ``ImportError`` saying what to install if torchcodec or FFmpeg's shared libraries
    (which torchcodec loads) are missing here. Asked every time: the libraries can change."""
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


class TorchCodecReader:
    """torchcodec.decoders.VideoDecoder with the interface of the other readers; ``device``
    ("cuda": NVDEC) is where its frames are decoded and returned."""

    def __init__(self, source: str | bytes, *, threads: int = 1, info: VideoInfo | None = None, device: torch.device | None = None) -> None:
        check()
        from torchcodec.decoders import VideoDecoder

        self.decoder = VideoDecoder(
            source, seek_mode="exact", num_ffmpeg_threads=max(0, threads), device=str(device or "cpu"), dimension_order="NHWC"
        )
        meta = self.decoder.metadata
        self._frames_here = int(meta.num_frames or 0)
        self.num_frames = info.num_frames if info is not None else self._frames_here
        self.fps = info.fps if info is not None else float(meta.average_fps or 30.0)
        if self._frames_here == 0:
            raise DecodeError("<torchcodec>", "video stream has no frames")

    def get(self, indices: np.ndarray) -> torch.Tensor:
        """Frames ``indices`` (sorted, unique): uint8 [U, H, W, 3] on the reader's device."""
        if len(indices) and int(indices[-1]) >= self._frames_here:
            raise DecodeError("<torchcodec>", f"frame {int(indices[-1])} asked for, torchcodec finds {self._frames_here} frames")
        return self.decoder.get_frames_at([int(i) for i in indices]).data  # [U, H, W, 3] uint8

    def close(self) -> None:
        """Drop the decoder."""
        del self.decoder
