"""Batching samples (VideoClipDataset's, or ShardSamples') into pytorchvideo-style dicts:
`video`, `label`, `video_index`, `path`, plus `skipped` (videos that failed to decode, with the
reason) and, out of training, `short` (videos shorter than a clip, with their length). Clips keep their dtype (uint8 from the datasets: normalised on the device).
  train: [B*K, C, T, H, W] (K clips per video, labels repeated)   val: [B, C, T, H, W]
  test / predict: [B, V, C, T, H, W]          SlowFast: `[slow, fast]`, each shaped as above
Unfinished train clips (``VideoClips(finish="device")``) are ``[B*K, T, crop, crop, 3]`` with
`window`, a list of (side, flip) per row, for ``transforms.finish_clips``.
Failed videos are dropped; if all failed, `video` is None and label/video_index are empty
(evaluation); a training batch with no readable video raises, naming them.
In a DataLoader worker, train batches travel to the main process in reused shared-memory slots
(:mod:`videoattn.data.transport`); other batches in shared memory made for them, as torch's
default_collate does.
"""
from __future__ import annotations

import logging
import uuid
import weakref
from typing import Any, Sequence

import torch

from videoattn.data import transport

__all__ = ["VideoCollate", "empty_for_transfer"]

log = logging.getLogger("videoattn.data")


def empty_for_transfer(shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``torch.empty(shape)``, placed in shared memory when called in a DataLoader worker, so
    sending it to the main process does not copy it again (as torch's default_collate does);
    not in a worker whose batches travel in a slot pool (the collate copies them there)."""
    if torch.utils.data.get_worker_info() is None or transport.pooled_worker():
        return torch.empty(shape, dtype=dtype)
    return _shared_empty(shape, dtype)


def _shared_empty(shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    numel = 1
    for n in shape:
        numel *= int(n)
    storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(numel)  # as default_collate does
    return torch.empty(0, dtype=dtype).new(storage).view(*shape)


class VideoCollate:
    """``collate_fn`` for a mode: "train" (clips of a video become rows), "val" (one view per
    video becomes the row) or "test"/"predict" (views stay a dimension).

    ``pool_slots``: train batches made in a DataLoader worker are written into one of this many
    reused shared-memory slots of the worker (:mod:`videoattn.data.transport`); 0: a new segment
    per batch, as torch does. Enough slots cover the batches a worker has in flight (the loader's
    ``prefetch_factor``, 2 by default) and those the main process holds (the step's and the one
    Lightning fetches ahead); with none free a batch falls back to a new segment."""

    def __init__(self, mode: str, *, pool_slots: int = 4) -> None:
        if mode not in ("train", "val", "test", "predict"):
            raise ValueError(f"mode must be train, val, test or predict, got {mode!r}")
        if pool_slots < 0:
            raise ValueError(f"pool_slots must be >= 0, got {pool_slots}")
        self.mode = mode
        self.pool_slots = pool_slots if mode == "train" else 0
        self.key = uuid.uuid4().hex  # this loader's, shared by its workers
        self._pool: transport.SlotPool | None = None  # a worker's own, made at its first batch
        if self.pool_slots:  # the main process forgets this loader's pools with it (PreciseBN makes one per validation)
            weakref.finalize(self, transport.forget_pools, self.key)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pool": None}  # a spawned worker makes its own

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        skipped = [entry for s in samples for entry in s["skipped"]]
        ok = [s for s in samples if s["video"] is not None]
        if not ok and self.mode == "train" and skipped:
            # files replace a failed video, a shard stream cannot: a whole batch lost is a broken dataset
            shown = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:3])
            raise RuntimeError(f"no video of a training batch could be decoded ({len(skipped)} failed: {shown}); is the dataset readable? "
                               "Check it with `videoattn check-data`, or rewrite the shards with `videoattn shard --check full`.")
        short = [entry for s in ok for entry in s.get("short") or []] if self.mode != "train" else []
        if not ok:
            empty = torch.zeros(0, dtype=torch.long)
            return {"video": None, "label": empty, "video_index": empty.clone(), "path": [], "skipped": skipped, "short": short}
        first = ok[0]["video"]
        single = not isinstance(first, (list, tuple))
        pathways = [[s["video"]] if single else list(s["video"]) for s in ok]  # [video][pathway]
        parts = [[p[i] for p in pathways] for i in range(len(pathways[0]))]  # [pathway][video]
        slot = self._slot([self._shape(tensors) for tensors in parts])
        outs = slot[1] if slot is not None else [None] * len(parts)
        joined = [self._join(tensors, out) for tensors, out in zip(parts, outs)]
        repeats = parts[0][0].shape[0]
        label = torch.tensor([s["label"] for s in ok], dtype=torch.long)
        video_index = torch.tensor([s["video_index"] for s in ok], dtype=torch.long)
        paths = [s["path"] for s in ok]
        if self.mode == "train" and repeats > 1:  # repeated augmentation: one row per clip
            label, video_index = label.repeat_interleave(repeats), video_index.repeat_interleave(repeats)
            paths = [p for p in paths for _ in range(repeats)]
        video: Any = joined[0] if single else joined
        if slot is not None:  # the clips travel as the slot's reference, the small tensors in the message
            assert self._pool is not None
            video = self._pool.ref(slot[0], slot[2], single)
            label, video_index = transport.InBand(label), transport.InBand(video_index)
        batch = {"video": video, "label": label, "video_index": video_index, "path": paths, "skipped": skipped}
        if self.mode != "train":
            batch["short"] = short
        if "window" in ok[0]:  # unfinished train clips (finish_clips on the device): (side, flip) per row
            batch["window"] = [w for s in ok for w in s["window"]]
        return batch

    def _shape(self, tensors: list[torch.Tensor]) -> tuple[torch.dtype, tuple[int, ...]]:
        first = tensors[0]
        if self.mode in ("train", "val"):  # [sum K, C, T, H, W]
            return first.dtype, (sum(t.shape[0] for t in tensors), *first.shape[1:])
        return first.dtype, (len(tensors), *first.shape)  # test: [B, V, C, T, H, W]

    def _slot(self, shapes: list[tuple[torch.dtype, tuple[int, ...]]]) -> tuple[int, list[torch.Tensor], transport.Layout] | None:
        """A free slot of this worker's pool and its tensors for a batch of these shapes; None
        outside a worker, without a pool, or with no free slot (then counted)."""
        info = torch.utils.data.get_worker_info()
        if info is None or self.pool_slots == 0:
            return None
        layout = self._pool.layout(shapes) if self._pool is not None else None
        if layout is None:  # first batch, or a bigger one than the slots hold: a new pool
            self._pool = transport.SlotPool(transport.new_pool_key(self.key, info.id), self.pool_slots, transport.slot_bytes(shapes))
            layout = self._pool.layout(shapes)
            assert layout is not None
        slot = self._pool.acquire()
        if slot is None:
            if transport.fallbacks() == 0:
                log.warning("DataLoader worker %d: no free shared-memory slot of %d; the main process holds more train batches than they "
                            "cover, and this worker sends the next ones in new segments (slower). Raise pool_slots.", info.id, self.pool_slots)
            transport.count_fallback()
            return None
        return slot, self._pool.views(slot, layout), layout

    def _join(self, tensors: list[torch.Tensor], out: torch.Tensor | None) -> torch.Tensor:
        stack = self.mode not in ("train", "val")  # test: [B, V, C, T, H, W]; else [sum K, C, T, H, W]
        if out is None and len(tensors) == 1 and tensors[0].is_shared():  # already in shared memory: no copy
            return tensors[0].unsqueeze(0) if stack else tensors[0]
        if out is None:  # (a pooled worker's fallback gets heap memory: torch's pickling moves it to shared memory)
            out = empty_for_transfer(self._shape(tensors)[1], tensors[0].dtype)
        return torch.stack(tensors, out=out) if stack else torch.cat(tensors, out=out)
