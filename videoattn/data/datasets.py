"""The video dataset: one decode per video, then clips and views in memory.
  train   -> `clips_per_video` random clips (random short-side scale, random crop, flip)
  val     -> the centre clip (short side, centre crop)
  test / predict -> temporal x spatial views, all from ONE decode of the video
A video that fails to decode never raises: train draws another video and reports the failed
one in the sample's `skipped` list; evaluation returns a sample without `video`, listed too.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from videoattn.data.annotations import VideoRecord
from videoattn.data.clip import ClipSettings
from videoattn.data.collate import empty_for_transfer
from videoattn.data.decode import decode_frames
from videoattn.data.sampling import random_clip, uniform_clips
from videoattn.data.transforms import (
    horizontal_flip,
    normalize,
    pack_pathways,
    random_crop,
    short_side_resize,
    spatial_crops,
    to_tchw,
)

__all__ = ["MODES", "VideoClipDataset"]

MODES = ("train", "val", "test", "predict")
log = logging.getLogger("videoattn.data")
_WARNED: set[str] = set()  # paths already logged in this process
# Failed videos travel in each sample's `skipped` list; the LightningModule warns once per path
# in the main process. Workers only log at DEBUG level: DataLoader workers are new processes
# every epoch unless persistent, so a worker-side warning would repeat each epoch.

class VideoClipDataset(Dataset):
    """Map-style dataset over ``records``; ``dataset[i]`` is a sample dict (see module header).

    Sample keys: ``video`` (train: [K, C, T, H, W] with K = clips_per_video; val: [1, C, T, H, W];
    test/predict: [V, C, T, H, W]; SlowFast: ``[slow, fast]`` of such tensors; None if the video
    failed), ``label``, ``video_index`` (the record's row), ``path`` and ``skipped``.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        mode: str,
        clip: ClipSettings = ClipSettings(),
        *,
        backend: str | None = None,
        decode_threads: int = 1,
        max_retries: int = 20,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not isinstance(clip, ClipSettings):
            raise ValueError(f"clip must be a ClipSettings, got {type(clip).__name__}")
        self.records = list(records)
        self.mode = mode
        self.clip = clip
        self.backend, self.decode_threads = backend, decode_threads
        self.max_retries = max_retries

    def __len__(self) -> int:
        return len(self.records)

    @property
    def views_per_video(self) -> int:
        return self.clip.views_per_video if self.mode in ("test", "predict") else 1

    def __getitem__(self, index: int) -> dict[str, Any]:
        skipped: list[dict[str, Any]] = []
        for _ in range(self.max_retries + 1 if self.mode == "train" else 1):
            record = self.records[index]
            try:
                video = self._load(record)
            except (ValueError, RuntimeError, OSError) as exc:
                reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
                skipped.append({"video_index": record.row, "path": record.path, "reason": reason})
                if record.path not in _WARNED:
                    _WARNED.add(record.path)
                    log.debug("skipping unreadable video %s: %s", record.path, reason)
                if self.mode != "train":
                    return {"video": None, "label": record.label, "video_index": record.row, "path": record.path, "skipped": skipped}
                index = int(torch.randint(len(self.records), (1,)))
                continue
            if self.clip.slowfast_alpha is not None:
                video = pack_pathways(video, self.clip.slowfast_alpha)
            return {"video": video, "label": record.label, "video_index": record.row, "path": record.path, "skipped": skipped}
        raise RuntimeError(f"{len(skipped)} videos in a row failed to decode (last: {skipped[-1]['path']}: {skipped[-1]['reason']}); is the dataset readable? Run `videoattn check-data`.")

    # ------------------------------------------------------------------------------ modes

    def _load(self, record: VideoRecord) -> torch.Tensor:
        if self.mode == "train":
            return self._train_clips(record.path)
        if self.mode == "val":
            return self._views(record.path, 1, 1, self.clip.crop_size)
        return self._views(record.path, *self.clip.test_views, self.clip.test_crop_size)

    def _scratch_buffer(self, numel: int) -> torch.Tensor:
        """A float buffer kept between videos (per process), grown when needed. First-touch
        page faults on fresh memory cost more than the normalisation itself here."""
        buffer = getattr(self, "_scratch", None)
        if buffer is None or buffer.numel() < numel:
            buffer = self._scratch = torch.empty(numel)
        return buffer

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_scratch", None)  # never ship the buffer to worker processes
        return state

    def _stride(self, fps: float) -> float:
        """Frames between clip frames: ``sampling_rate``, or measured at ``target_fps`` (as
        PySlowFast's DATA.TARGET_FPS: the same clip duration in seconds whatever the file's rate)."""
        clip = self.clip
        return clip.sampling_rate if clip.target_fps is None else clip.sampling_rate * fps / clip.target_fps

    def _decode(self, path: str, select: Callable[[int, float], np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        frames, inverse = decode_frames(path, select, backend=self.backend, threads=self.decode_threads)
        return to_tchw(frames), inverse  # [U, 3, H, W], [N]

    def _train_clips(self, path: str) -> torch.Tensor:
        """K random clips from one decode -> float [K, C, T, crop, crop]."""
        c = self.clip
        t, k = c.num_frames, c.clips_per_video

        def select(n: int, fps: float) -> np.ndarray:
            tau = self._stride(fps)
            return np.concatenate([random_clip(n, t, tau, short_video=c.short_video) for _ in range(k)])

        frames, inverse = self._decode(path, select)
        out = empty_for_transfer((k, 3, t, c.crop_size, c.crop_size))  # [K, C, T, crop, crop]
        for i, clip_index in enumerate(inverse.view(k, t)):  # [T] indices into the unique frames
            lo, hi = c.train_short_side
            size = int(torch.randint(lo, hi + 1, (1,)))
            clip = short_side_resize(frames[clip_index], size)  # [T, 3, h, w] uint8
            clip = random_crop(clip, c.crop_size)
            if c.flip and bool(torch.rand(()) < 0.5):
                clip = horizontal_flip(clip)
            normalize(clip, c.mean, c.std, out=out[i])  # writes [3, T, crop, crop] into out[i]
        return out

    def _views(self, path: str, num_clips: int, num_crops: int, crop: int) -> torch.Tensor:
        """num_clips x num_crops views from one decode -> float [V, C, T, crop, crop]."""
        c = self.clip
        t = c.num_frames

        def select(n: int, fps: float) -> np.ndarray:
            return uniform_clips(n, t, self._stride(fps), num_clips, short_video=c.short_video).reshape(-1)

        frames, inverse = self._decode(path, select)
        # Each distinct frame is resized and normalised once; views are then cut from those
        # float frames straight into the output (one copy of the largest tensor, no temporaries).
        frames = short_side_resize(frames, c.test_short_side)  # [U, 3, h, w] uint8
        scratch = self._scratch_buffer(frames.numel())  # reused: fresh memory costs page faults
        frames = normalize(frames, c.mean, c.std, out=scratch).transpose(0, 1)  # [U, 3, h, w] float
        windows = spatial_crops(frames, crop, num_crops)  # num_crops views [U, 3, crop, crop]
        out = empty_for_transfer((num_clips * num_crops, 3, t, crop, crop))  # [V, C, T, crop, crop]
        for k, clip in enumerate(inverse.view(num_clips, t).tolist()):  # temporal-major views
            for s, window in enumerate(windows):
                view = out[k * num_crops + s]  # [C, T, crop, crop]
                for j, u in enumerate(clip):
                    view[:, j].copy_(window[u])
        return out

