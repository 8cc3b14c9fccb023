"""ClipSettings: what a clip is, declared once. The frames and stride of a clip, its spatial
sizes for training and evaluation, the test views, the SlowFast packing and the normalisation
travel together from the data module's config to the dataset and to the checkpoint (tools such
as ``videoattn export`` and ``visualize`` read them back from there).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch

from videoattn.data.sampling import SHORT_VIDEO_MODES
from videoattn.data.transforms import KINETICS_MEAN, KINETICS_STD

__all__ = ["ClipSettings"]


@dataclass(frozen=True)
class ClipSettings:
    """How videos become clips (defaults: PySlowFast's Kinetics I3D 8x8 recipe).

    Args:
        num_frames: clip length T in frames (the fast pathway's for SlowFast).
        sampling_rate: stride tau between a clip's frames (the fast pathway's for SlowFast).
        target_fps: if set, ``sampling_rate`` counts frames at this rate (PySlowFast's
            DATA.TARGET_FPS): clips last the same time whatever the file's frame rate.
        short_video: "clamp" (repeat the last frame, as PySlowFast) or "loop" for videos
            shorter than a clip.
        train_short_side: (min, max) of the random short-side scale in training.
        crop_size: train and validation crop.
        flip: random horizontal flip in training (turn off when left/right matters).
        clips_per_video: train clips taken from one decode of each video (repeated augmentation).
        test_short_side: short side for validation and test.
        test_crop_size: size of the test views.
        test_views: (temporal clips, spatial crops); crops 3 (along the long side) or 1 (centre).
        slowfast_alpha: if set, videos are ``[slow, fast]`` with the slow pathway T / alpha.
        mean: per-channel mean subtracted from [0, 1] pixel values.
        std: per-channel standard deviation the centred values are divided by.
    """

    num_frames: int = 8
    sampling_rate: int = 8
    target_fps: float | None = None
    short_video: str = "clamp"
    train_short_side: tuple[int, int] = (256, 320)
    crop_size: int = 224
    flip: bool = True
    clips_per_video: int = 1
    test_short_side: int = 256
    test_crop_size: int = 256
    test_views: tuple[int, int] = (10, 3)
    slowfast_alpha: int | None = None
    mean: tuple[float, float, float] = KINETICS_MEAN
    std: tuple[float, float, float] = KINETICS_STD

    def __post_init__(self) -> None:
        # YAML and JSON give lists: keep the dataclass hashable and its fields tuples
        for name in ("train_short_side", "test_views", "mean", "std"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("num_frames", "sampling_rate", "crop_size", "clips_per_video", "test_short_side", "test_crop_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"clip.{name} must be >= 1, got {getattr(self, name)}")
        if self.short_video not in SHORT_VIDEO_MODES:
            raise ValueError(f"clip.short_video must be one of {SHORT_VIDEO_MODES}, got {self.short_video!r}")
        if self.target_fps is not None and not self.target_fps > 0:
            raise ValueError(f"clip.target_fps must be > 0 or None, got {self.target_fps}")
        if len(self.train_short_side) != 2 or not 0 < self.train_short_side[0] <= self.train_short_side[1]:
            raise ValueError(f"clip.train_short_side must be (min, max) with 0 < min <= max, got {self.train_short_side}")
        if self.train_short_side[0] < self.crop_size:
            raise ValueError(f"clip.crop_size {self.crop_size} exceeds the smallest clip.train_short_side {self.train_short_side[0]}")
        if self.test_short_side < self.crop_size:
            raise ValueError(f"clip.crop_size {self.crop_size} exceeds clip.test_short_side {self.test_short_side} (validation crops)")
        if self.test_short_side < self.test_crop_size:
            raise ValueError(f"clip.test_crop_size {self.test_crop_size} exceeds clip.test_short_side {self.test_short_side}")
        if len(self.test_views) != 2 or self.test_views[0] < 1 or self.test_views[1] not in (1, 3):
            raise ValueError(f"clip.test_views must be (temporal clips >= 1, spatial crops 1 or 3), got {self.test_views}")
        if self.slowfast_alpha is not None and not 1 <= self.slowfast_alpha <= self.num_frames:
            raise ValueError(f"clip.slowfast_alpha must be in [1, num_frames={self.num_frames}], got {self.slowfast_alpha}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"clip.mean and clip.std must have 3 values, std > 0; got {self.mean}, {self.std}")

    @property
    def views_per_video(self) -> int:
        """Test views of one video: temporal clips x spatial crops."""
        return self.test_views[0] * self.test_views[1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ClipSettings:
        """Settings from a dict that may hold other keys too (a checkpoint's data
        hyperparameters, old flat ones included): unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


# a data module made in Python saves its ClipSettings in checkpoints: a plain value, to be read
# back with torch.load(weights_only=True) by videoattn's tools and by Lightning
torch.serialization.add_safe_globals([ClipSettings])
