"""Tests for the train batches' transport from DataLoader workers (videoattn.data.transport, used
by VideoCollate): held batches stay intact while the workers go on (more batches held than
slots: the fallback), slots are reused when batches are let go, SlowFast pathways and repeated
clips in one slot, the slot freed with its last view, and nothing pooled in the main process
or for evaluation."""
from __future__ import annotations

import gc
import pickle
from multiprocessing.reduction import ForkingPickler

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from videoattn.data import transport
from videoattn.data.collate import VideoCollate
from videoattn.data.transforms import pack_pathways


class Clips(Dataset):
    """Samples as the video datasets give them: uint8 [K, 3, T, H, W] clips made from the index."""

    def __init__(self, n: int = 24, k: int = 1, slowfast: bool = False) -> None:
        self.n, self.k, self.slowfast = n, k, slowfast

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        video = torch.randint(0, 256, (self.k, 3, 4, 16, 16), generator=g, dtype=torch.uint8)
        return {"video": pack_pathways(video, 2) if self.slowfast else video, "label": i % 3, "video_index": i, "path": f"v{i}.mp4", "skipped": []}


def batches(dataset: Dataset, workers: int, slots: int = 2, batch_size: int = 2) -> list[dict]:
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=VideoCollate("train", pool_slots=slots))
    return list(loader)  # every batch held: more than the slots


def assert_same(ours: list[dict], reference: list[dict]) -> None:
    assert len(ours) == len(reference)
    for a, b in zip(ours, reference):
        va, vb = (a["video"], b["video"]) if isinstance(a["video"], list) else ([a["video"]], [b["video"]])
        assert all(torch.equal(x, y) for x, y in zip(va, vb))
        assert torch.equal(a["label"], b["label"]) and torch.equal(a["video_index"], b["video_index"]) and a["path"] == b["path"]


@pytest.mark.parametrize("dataset", [Clips(), Clips(k=2), Clips(slowfast=True)], ids=["clips", "repeated", "slowfast"])
def test_held_batches_stay_intact(dataset: Dataset) -> None:
    """All 12 batches of an epoch held at once with 2 slots per worker: every one equal to the
    batches made in process, so no slot was written while the main process held it."""
    reference = batches(dataset, 0)
    ours = batches(dataset, 2)
    assert_same(ours, reference)
    gc.collect()
    assert_same(ours, reference)  # still, after the workers are gone


def test_slots_are_reused_when_batches_are_let_go() -> None:
    """Batches dropped as they are used: each worker's 2 slots carry all its batches (their
    clips at no more than 2 addresses per worker), and the values are the in-process ones."""
    loader = DataLoader(Clips(40), batch_size=2, num_workers=2, collate_fn=VideoCollate("train", pool_slots=2), prefetch_factor=1)
    reference = {int(b["video_index"][0]): b["video"].clone() for b in batches(Clips(40), 0)}
    addresses = set()
    for batch in loader:
        assert torch.equal(batch["video"], reference[int(batch["video_index"][0])])
        addresses.add(batch["video"].data_ptr())
        del batch
    assert len(addresses) <= 4, addresses


def test_a_slot_is_freed_with_its_last_view() -> None:
    """In one process, through the pickling a worker does: the slot stays in use while any view
    of the batch lives, and is free once the last one is gone."""
    pool = transport.SlotPool(transport.new_pool_key("loader", 0), slots=2, slot_bytes=transport.slot_bytes([(torch.uint8, (2, 64))]))
    layout = pool.layout([(torch.uint8, (2, 64))])
    assert layout is not None and pool.layout([(torch.uint8, (3, 64))]) is None  # too big for the slot
    slot = pool.acquire()
    assert slot == 0
    pool.views(slot, layout)[0].copy_(torch.arange(128, dtype=torch.uint8).view(2, 64))
    video = pickle.loads(ForkingPickler.dumps(pool.ref(slot, layout, single=True)))
    assert torch.equal(video, torch.arange(128, dtype=torch.uint8).view(2, 64))
    row = video[1]
    del video
    gc.collect()
    assert int(pool.state[slot]) == 1  # a view is alive
    assert pool.acquire() == 1 and pool.acquire() is None  # both slots in use: the caller falls back
    del row
    gc.collect()
    assert int(pool.state[0]) == 0 and pool.acquire() == 0


def test_only_train_batches_of_workers_are_pooled() -> None:
    """In the main process, and for evaluation, batches are plain tensors (no pool)."""
    sample = Clips()[0]
    assert isinstance(VideoCollate("train")([sample])["video"], torch.Tensor)
    assert VideoCollate("test").pool_slots == 0 and VideoCollate("train", pool_slots=0).pool_slots == 0
    with pytest.raises(ValueError, match="pool_slots must be >= 0"):
        VideoCollate("train", pool_slots=-1)
