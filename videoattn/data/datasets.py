"""Videos -> samples, one decode per video, the same code for files and for shards.

  VideoClips(mode, clip)(source, info=...)   one video (a path, or its encoded bytes with its
                                             VideoInfo) -> its uint8 clips or views
  VideoClipDataset(records, mode, clip)[i]   the sample of the i-th video file
  ShardSamples(VideoClips(...))(entry)       the same sample from a shard entry (in memory)

  train   -> `clips_per_video` random clips (random short-side scale, random crop, flip)
  val     -> the centre clip (short side, centre crop)
  test / predict -> temporal x spatial views, all from ONE decode of the video

Clips are uint8 ``[.., 3, T, H, W]``, a quarter of float32's bytes to move between processes
and to the device; normalise them where the model runs:
``videoattn.data.transforms.normalize_video(video, clip.mean, clip.std)`` (KineticsDataModule
does it in ``on_after_batch_transfer``, on the device).

Train clips can also leave the worker unfinished (``VideoClips(..., finish="device")``): each
clip's crop window as decoded, uint8 ``[K, T, crop, crop, 3]`` (the window in the top-left
corner), with ``window`` = (side, flip) per clip in the sample; ``transforms.finish_clips``
resizes, flips and lays them out where the model runs (KineticsDataModule does, on an
accelerator), giving the same clips.

A video that fails to decode never raises: training from files draws another video and
reports the failed one in the sample's ``skipped`` list; evaluation, and training from shards
(a stream cannot draw another), returns a sample with ``video`` None, listed too (the collate
drops it).
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from videoattn.data.annotations import VideoRecord, VideoRecords
from videoattn.data.clip import ClipSettings
from videoattn.data.collate import empty_for_transfer
from videoattn.data.decode import VideoInfo, VideoSource, decode_frames
from videoattn.data.samplers import sample_seed
from videoattn.data.sampling import random_clip, uniform_clips
from videoattn.data.transforms import (
    horizontal_flip,
    pack_pathways,
    resize_square,
    scaled_crop_window,
    short_side_resize,
    spatial_crops,
    to_tchw,
)

__all__ = ["FINISH", "MODES", "ShardSamples", "VideoClipDataset", "VideoClips"]

MODES = ("train", "val", "test", "predict")
FINISH = ("worker", "device")
log = logging.getLogger("videoattn.data")
_WARNED: set[str] = set()  # paths already logged in this process
# Failed videos travel in each sample's `skipped` list; the VideoReport callback warns once per
# path in the main process. Workers only log at DEBUG level: DataLoader workers are new
# processes every epoch unless persistent, so a worker-side warning would repeat each epoch.

Video = torch.Tensor | list[torch.Tensor]  # uint8 [K or V, 3, T, H, W], or SlowFast's [slow, fast]


class VideoClips:
    """The clips of one video for a mode: ``clips(source, info=..., name=..., generator=...)``.

    ``source``: a path, or the encoded file (bytes); ``info``: its
    :class:`~videoattn.data.decode.VideoInfo` when known (shards carry it: no probe);
    ``name``: how errors name it; ``generator``: the source of the random draws of training
    (default: torch's global generator). Returns uint8 ``[K, 3, T, crop, crop]`` (train, K =
    ``clips_per_video``), ``[1, 3, T, crop, crop]`` (val) or ``[V, 3, T, size, size]``
    (test/predict, temporal-major views), or SlowFast's ``[slow, fast]`` of such tensors.
    Raises what decoding raises (:class:`~videoattn.data.decode.DecodeError`, ...).
    """

    def __init__(
        self, mode: str, clip: ClipSettings = ClipSettings(), *, backend: str | None = None, decode_threads: int = 1, finish: str = "worker"
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not isinstance(clip, ClipSettings):
            raise ValueError(f"clip must be a ClipSettings, got {type(clip).__name__}")
        if finish not in FINISH:
            raise ValueError(f"finish must be one of {FINISH}, got {finish!r}")
        self.mode, self.clip = mode, clip
        self.backend, self.decode_threads = backend, decode_threads
        self.finish = finish  # train clips: "worker" finishes them, "device" leaves resize, flip and layout to finish_clips
        self.last_length: tuple[int, int] | None = None  # the last video decoded: (its frames, the frames a clip spans)

    @property
    def views_per_video(self) -> int:
        return self.clip.views_per_video if self.mode in ("test", "predict") else 1

    def __call__(
        self, source: VideoSource, *, info: VideoInfo | None = None, name: str | None = None, generator: torch.Generator | None = None
    ) -> Video:
        c = self.clip
        if self.mode == "train":
            video = self._train_clips(source, info, name, generator)
        elif self.mode == "val":
            video = self._views(source, info, name, 1, 1, c.crop_size)
        else:
            video = self._views(source, info, name, *c.test_views, c.test_crop_size)
        return video if c.slowfast_alpha is None else pack_pathways(video, c.slowfast_alpha)

    def clips_and_windows(
        self, source: VideoSource, *, info: VideoInfo | None = None, name: str | None = None, generator: torch.Generator | None = None
    ) -> tuple[Video, list[tuple[int, bool]] | None]:
        """What the datasets put in a sample: ``(clips, None)`` as :meth:`__call__` gives them, or
        for train clips left to the device (``finish="device"``) ``(windows, sides)``: uint8
        ``[K, T, crop, crop, 3]`` and each clip's (side, flip), for
        :func:`~videoattn.data.transforms.finish_clips` (and then SlowFast's pathway packing)."""
        if self.mode == "train" and self.finish == "device":
            return self._train_windows(source, info, name, generator)
        return self(source, info=info, name=name, generator=generator), None

    def _stride(self, fps: float) -> float:
        """Frames between clip frames: ``sampling_rate``, or measured at ``target_fps`` (as
        PySlowFast's DATA.TARGET_FPS: the same clip duration in seconds whatever the file's rate)."""
        clip = self.clip
        return clip.sampling_rate if clip.target_fps is None else clip.sampling_rate * fps / clip.target_fps

    def _decode(
        self, source: VideoSource, info: VideoInfo | None, name: str | None, select: Callable[[int, float], np.ndarray]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        def measured(n: int, fps: float) -> np.ndarray:  # a video shorter than a clip is reported (VideoReport)
            self.last_length = (n, int((self.clip.num_frames - 1) * self._stride(fps)) + 1)
            return select(n, fps)

        self.last_length = None
        return decode_frames(source, measured, backend=self.backend, threads=self.decode_threads, info=info, name=name)  # [U, H, W, 3], [N]

    def short(self, row: int, path: str) -> list[dict[str, Any]]:
        """``[{video_index, path, frames, span}]`` if the video last decoded is shorter than a clip
        (its clips were completed as ``clip.short_video`` says), else ``[]``."""
        if self.last_length is None or self.last_length[0] >= self.last_length[1]:
            return []
        frames, span = self.last_length
        return [{"video_index": row, "path": path, "frames": frames, "span": span}]

    def _train_draws(
        self, source: VideoSource, info: VideoInfo | None, name: str | None, g: torch.Generator | None
    ) -> Iterator[tuple[torch.Tensor, bool]]:
        """K random clips from one decode: each clip's crop window, uint8 [T, side, side, 3] (its
        frames gathered, the window cut from the unscaled frames, see
        :func:`~videoattn.data.transforms.random_scaled_crop`), and whether it is flipped; drawn
        in this order: the K clips' starts, then per clip its scale, corner and flip."""
        c = self.clip
        t, k = c.num_frames, c.clips_per_video

        def select(n: int, fps: float) -> np.ndarray:
            tau = self._stride(fps)
            return np.concatenate([random_clip(n, t, tau, short_video=c.short_video, generator=g) for _ in range(k)])

        frames, inverse = self._decode(source, info, name, select)  # [U, H, W, 3], [K * T]
        height, width = frames.shape[1:3]
        lo, hi = c.train_short_side
        for clip_index in inverse.view(k, t):  # [T] indices into the unique frames
            size = int(torch.randint(lo, hi + 1, (1,), generator=g))
            top, left, side = scaled_crop_window(height, width, size, c.crop_size, g)
            # index_select keeps the window [T, side, side, 3] contiguous: its permuted view
            # [T, 3, side, side] is channels-last, which the uint8 resize prefers
            window = frames[:, top : top + side, left : left + side].index_select(0, clip_index)
            yield window, c.flip and bool(torch.rand((), generator=g) < 0.5)

    def _train_clips(self, source: VideoSource, info: VideoInfo | None, name: str | None, g: torch.Generator | None) -> torch.Tensor:
        """K random clips from one decode -> uint8 [K, 3, T, crop, crop]."""
        c = self.clip
        out = empty_for_transfer((c.clips_per_video, 3, c.num_frames, c.crop_size, c.crop_size), torch.uint8)
        for i, (window, flip) in enumerate(self._train_draws(source, info, name, g)):
            clip = resize_square(to_tchw(window), c.crop_size)  # [T, 3, crop, crop]
            out[i].copy_((horizontal_flip(clip) if flip else clip).transpose(0, 1))  # -> [3, T, crop, crop]
        return out

    def _train_windows(
        self, source: VideoSource, info: VideoInfo | None, name: str | None, g: torch.Generator | None
    ) -> tuple[torch.Tensor, list[tuple[int, bool]]]:
        """K random clips' crop windows from one decode, unfinished: uint8 [K, T, crop, crop, 3]
        and (side, flip) each, drawn as :meth:`_train_clips` draws them. A window larger than the
        crop (frames scaled down) is resized here: shipping it would cost more than the resize."""
        c = self.clip
        crop = c.crop_size
        out = empty_for_transfer((c.clips_per_video, c.num_frames, crop, crop, 3), torch.uint8)
        sides = []
        for i, (window, flip) in enumerate(self._train_draws(source, info, name, g)):
            side = window.shape[1]
            if side > crop:
                window, side = resize_square(to_tchw(window), crop).permute(0, 2, 3, 1), crop
            out[i, :, :side, :side].copy_(window)
            sides.append((side, flip))
        return out, sides

    def _views(self, source: VideoSource, info: VideoInfo | None, name: str | None, num_clips: int, num_crops: int, crop: int) -> torch.Tensor:
        """num_clips x num_crops views from one decode -> uint8 [V, 3, T, crop, crop]."""
        c = self.clip
        t = c.num_frames

        def select(n: int, fps: float) -> np.ndarray:
            return uniform_clips(n, t, self._stride(fps), num_clips, short_video=c.short_video).reshape(-1)

        frames, inverse = self._decode(source, info, name, select)
        # Each distinct frame is resized once; views are cut from those frames straight into the
        # output (one copy of the largest tensor, no temporaries).
        frames = short_side_resize(to_tchw(frames), c.test_short_side)  # [U, 3, h, w] uint8
        windows = spatial_crops(frames, crop, num_crops)  # num_crops views [U, 3, crop, crop]
        out = empty_for_transfer((num_clips * num_crops, 3, t, crop, crop), torch.uint8)  # [V, 3, T, crop, crop]
        for k, clip in enumerate(inverse.view(num_clips, t).tolist()):  # temporal-major views
            for s, window in enumerate(windows):
                view = out[k * num_crops + s]  # [3, T, crop, crop]
                for j, u in enumerate(clip):
                    view[:, j].copy_(window[u])
        return out


def _sample(
    video: Video | None, label: int, row: int, path: str, skipped: list[dict[str, Any]], windows: list[tuple[int, bool]] | None = None
) -> dict[str, Any]:
    sample = {"video": video, "label": label, "video_index": row, "path": path, "skipped": skipped}
    if windows is not None:  # unfinished train clips: each clip's (side, flip), for finish_clips
        sample["window"] = windows
    return sample


def _failure(exc: BaseException, row: int, path: str) -> dict[str, Any]:
    """The ``skipped`` entry of a video that failed (logged once per path and process)."""
    reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
    if path not in _WARNED:
        _WARNED.add(path)
        log.debug("skipping unreadable video %s: %s", path, reason)
    return {"video_index": row, "path": path, "reason": reason}


class VideoClipDataset(Dataset):
    """Map-style dataset over video files ``records``; ``dataset[key]`` is a sample dict.

    Sample keys: ``video`` (uint8, see :class:`VideoClips`; None if the video failed),
    ``label``, ``video_index`` (the record's row), ``path``, ``skipped`` and ``short`` (the video,
    if it is shorter than a clip: :meth:`VideoClips.short`). Normalise ``video``
    with :func:`~videoattn.data.transforms.normalize_video` before a model sees it.

    ``key``: an index, or ``(index, seed)`` (what the data module's train sampler gives): the
    sample's random draws then come from a generator seeded with ``seed``, whatever the process,
    worker or resume; with a plain index they come from torch's global generator.
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
        self.clips = VideoClips(mode, clip, backend=backend, decode_threads=decode_threads)
        self.records = records if isinstance(records, VideoRecords) else list(records)  # VideoRecords: kept as arrays
        self.mode, self.clip = mode, clip
        self.max_retries = max_retries

    def __len__(self) -> int:
        return len(self.records)

    @property
    def views_per_video(self) -> int:
        return self.clips.views_per_video

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        skipped: list[dict[str, Any]] = []
        for _ in range(self.max_retries + 1 if self.mode == "train" else 1):
            record = self.records[index]
            try:
                video, windows = self.clips.clips_and_windows(record.path, generator=generator)
            except (ValueError, RuntimeError, OSError) as exc:
                skipped.append(_failure(exc, record.row, record.path))
                if self.mode != "train":
                    return _sample(None, record.label, record.row, record.path, skipped)
                index = int(torch.randint(len(self.records), (1,), generator=generator))
                continue
            sample = _sample(video, record.label, record.row, record.path, skipped, windows)
            sample["short"] = self.clips.short(record.row, record.path)
            return sample
        raise RuntimeError(f"{len(skipped)} videos in a row failed to decode (last: {skipped[-1]['path']}: {skipped[-1]['reason']}); is the dataset readable? Run `videoattn check-data`.")


class ShardSamples:
    """A shard entry (:class:`~videoattn.data.shards.ShardEntry`) -> the sample dict
    :class:`VideoClipDataset` gives for the same video, decoded from the entry's bytes with its
    VideoInfo (no probe, no temporary file). Give it to ``VideoShardDataset(transform=...)``.

    ``labels``: the class index of each shard label (shards written with other classes than
    the data's; -1: unknown), None to keep them. ``seed``: if set, the sample's random draws
    come from ``sample_seed(seed, epoch, entry.row)``, the epoch told by ``set_epoch``
    (VideoShardDataset does, in the worker): reproducible whatever the process, worker or resume.
    A video that fails gives ``video`` None and its reason in ``skipped``, in every mode.
    """

    def __init__(self, clips: VideoClips, *, labels: Sequence[int] | None = None, seed: int | None = None) -> None:
        self.clips, self.seed = clips, seed
        self.labels = None if labels is None else list(labels)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __call__(self, entry: Any) -> dict[str, Any]:
        label = entry.label if self.labels is None or entry.label < 0 else self.labels[entry.label]
        generator = None if self.seed is None else torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, entry.row))
        try:
            video, windows = self.clips.clips_and_windows(entry.video, info=entry.info, name=entry.path, generator=generator)
        except (ValueError, RuntimeError, OSError) as exc:
            return _sample(None, label, entry.row, entry.path, [_failure(exc, entry.row, entry.path)])
        sample = _sample(video, label, entry.row, entry.path, [], windows)
        sample["short"] = self.clips.short(entry.row, entry.path)
        return sample
