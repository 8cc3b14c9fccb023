# Batching samples of VideoClipDataset into pytorchvideo-style dicts: `video`, `label`,
# `video_index`, `path`, plus `skipped` (videos that failed to decode, with the reason).
#   train: [B*K, C, T, H, W] (K clips per video, labels repeated)   val: [B, C, T, H, W]
#   test / predict: [B, V, C, T, H, W]          SlowFast: `[slow, fast]`, each shaped as above
# Failed videos are dropped; if all failed, `video` is None and label/video_index are empty.
from __future__ import annotations

from typing import Any, Sequence

import torch

__all__ = ["VideoCollate"]


class VideoCollate:
    """``collate_fn`` for a mode: "train" (clips of a video become rows), "val" (one view per
    video becomes the row) or "test"/"predict" (views stay a dimension)."""

    def __init__(self, mode: str) -> None:
        if mode not in ("train", "val", "test", "predict"):
            raise ValueError(f"mode must be train, val, test or predict, got {mode!r}")
        self.mode = mode

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        skipped = [entry for s in samples for entry in s["skipped"]]
        ok = [s for s in samples if s["video"] is not None]
        if not ok:
            empty = torch.zeros(0, dtype=torch.long)
            return {"video": None, "label": empty, "video_index": empty.clone(), "path": [], "skipped": skipped}
        first = ok[0]["video"]
        if isinstance(first, (list, tuple)):  # SlowFast pathways
            video: Any = [self._join([s["video"][p] for s in ok]) for p in range(len(first))]
            repeats = first[0].shape[0]
        else:
            video = self._join([s["video"] for s in ok])
            repeats = first.shape[0]
        label = torch.tensor([s["label"] for s in ok], dtype=torch.long)
        video_index = torch.tensor([s["video_index"] for s in ok], dtype=torch.long)
        paths = [s["path"] for s in ok]
        if self.mode == "train" and repeats > 1:  # repeated augmentation: one row per clip
            label, video_index = label.repeat_interleave(repeats), video_index.repeat_interleave(repeats)
            paths = [p for p in paths for _ in range(repeats)]
        return {"video": video, "label": label, "video_index": video_index, "path": paths, "skipped": skipped}

    def _join(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        if self.mode in ("train", "val"):
            return torch.cat(tensors)  # [sum K, C, T, H, W]
        return torch.stack(tensors)  # [B, V, C, T, H, W]
