"""Batching samples (VideoClipDataset's, or ShardSamples') into pytorchvideo-style dicts:
`video`, `label`, `video_index`, `path`, plus `skipped` (videos that failed to decode, with the
reason). Clips keep their dtype (uint8 from the datasets: normalised on the device).
  train: [B*K, C, T, H, W] (K clips per video, labels repeated)   val: [B, C, T, H, W]
  test / predict: [B, V, C, T, H, W]          SlowFast: `[slow, fast]`, each shaped as above
Failed videos are dropped; if all failed, `video` is None and label/video_index are empty
(evaluation); a training batch with no readable video raises, naming them.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

__all__ = ["VideoCollate", "empty_for_transfer"]


def empty_for_transfer(shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``torch.empty(shape)``, placed in shared memory when called in a DataLoader worker, so
    sending it to the main process does not copy it again (as torch's default_collate does)."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    numel = 1
    for n in shape:
        numel *= int(n)
    storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(numel)  # as default_collate does
    return torch.empty(0, dtype=dtype).new(storage).view(*shape)


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
        if not ok and self.mode == "train" and skipped:
            # files replace a failed video, a shard stream cannot: a whole batch lost is a broken dataset
            shown = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:3])
            raise RuntimeError(f"no video of a training batch could be decoded ({len(skipped)} failed: {shown}); is the dataset readable? "
                               "Check it with `videoattn check-data`, or rewrite the shards with `videoattn shard --check full`.")
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
        stack = self.mode not in ("train", "val")  # test: [B, V, C, T, H, W]; else [sum K, C, T, H, W]
        if len(tensors) == 1 and tensors[0].is_shared():  # already in shared memory: no copy
            return tensors[0].unsqueeze(0) if stack else tensors[0]
        first = tensors[0]
        if stack:
            out = empty_for_transfer((len(tensors), *first.shape), first.dtype)
            return torch.stack(tensors, out=out)
        out = empty_for_transfer((sum(t.shape[0] for t in tensors), *first.shape[1:]), first.dtype)
        return torch.cat(tensors, out=out)
