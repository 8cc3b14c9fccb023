"""Tests for the train batches' transport from DataLoader workers (videoattn.data.transport, used
by VideoCollate): held batches stay intact while the workers go on (more batches held than
slots: the fallback), slots are reused when batches are let go, SlowFast pathways and repeated
clips in one slot, the slot freed with its last view, and nothing pooled in the main process
or for evaluation."""
from __future__ import annotations

import gc
import pickle
import time
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


def _shm_mapped() -> int:
    """Bytes of shared-memory segments (torch's /dev/shm/torch_*) mapped in this process."""
    total = 0
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and fields[5].startswith("/dev/shm/"):
                start, end = (int(x, 16) for x in fields[0].split("-"))
                total += end - start
    return total


@pytest.mark.parametrize("stateful", [False, True], ids=["DataLoader", "StatefulDataLoader"])
def test_the_pools_of_a_loader_thrown_away_are_freed(stateful: bool) -> None:
    """Train loaders made, used for a few batches and thrown away, 12 times (PreciseBN makes one
    before every validation): the main process keeps the pools of none of them, and maps no more
    shared memory than one loader's pools (2 workers x 2 slots), not 12 loaders' worth."""
    from torchdata.stateful_dataloader import StatefulDataLoader

    cls = StatefulDataLoader if stateful else DataLoader
    one_loader = 2 * 2 * transport.slot_bytes([(torch.uint8, (2, 3, 4, 16, 16))]) + 2 * 4096
    gc.collect()
    start, before = _shm_mapped(), set(transport._POOLS)
    for _ in range(12):
        loader = cls(Clips(16), batch_size=2, num_workers=2, collate_fn=VideoCollate("train", pool_slots=2))
        for i, batch in enumerate(loader):
            assert batch["video"].shape == (2, 3, 4, 16, 16)
            if i == 3:
                break
        del batch, loader
        gc.collect()
    assert set(transport._POOLS) == before, list(transport._POOLS)
    assert _shm_mapped() - start <= one_loader, (_shm_mapped() - start, one_loader)


def _hammering_worker(queue, answers, cycles: int, slots: int) -> None:  # noqa: ANN001 - multiprocessing queues
    """The worker side: acquire a slot (spinning while all are held), stamp it with the cycle's
    number, send its reference; at the end, report whether every slot came back free."""
    pool = transport.SlotPool(transport.new_pool_key("hammer", 0), slots=slots, slot_bytes=transport.slot_bytes([(torch.int64, (16,))]))
    layout = pool.layout([(torch.int64, (16,))])
    full, deadline = 0, time.monotonic() + 120
    for i in range(cycles):
        while (slot := pool.acquire()) is None:
            full += 1
            if full % 10_000 == 0 and time.monotonic() > deadline:
                queue.put(None)  # a slot never came back: the main process finds `received` short
                return
        pool.views(slot, layout)[0].fill_(i)
        queue.put(pool.ref(slot, layout, single=True))
    queue.put(None)
    answers.get()  # the main process has let every batch go
    answers.put((full, [int(s) for s in pool.state[:slots]]))


def test_slot_states_hold_under_two_processes_hammering_them() -> None:
    """8,000 batches through 3 slots: the worker marks slots used, the main process frees them
    when it lets a batch go (holding 0 to 3 at a time, so the worker also finds the pool full).
    No slot is handed out while the main process holds it (every held batch keeps its stamp, and
    no two held batches share an address), none is lost (all free at the end), and each batch
    arrives once, in order."""
    import collections
    import multiprocessing as mp
    import random

    ctx = mp.get_context("fork")
    queue, answers = ctx.Queue(), ctx.Queue()
    cycles, slots = 8_000, 3
    worker = ctx.Process(target=_hammering_worker, args=(queue, answers, cycles, slots))
    worker.start()
    rng = random.Random(0)
    held: collections.deque = collections.deque()
    received = 0
    try:
        while (batch := queue.get(timeout=60)) is not None:
            assert int(batch[0]) == received and bool((batch == received).all())  # in order, written before it was sent
            assert batch.data_ptr() not in {b.data_ptr() for _, b in held}, "a slot the main process holds was handed out again"
            held.append((received, batch))
            received += 1
            keep = rng.randint(0, slots)
            if keep == slots == len(held):  # all held: the worker spins on a full pool until one is let go
                time.sleep(0.0002)
                keep -= 1
            while len(held) > keep:
                stamp, old = held.popleft()
                assert bool((old == stamp).all()), "a held batch was overwritten"
                del old
        assert all(bool((old == stamp).all()) for stamp, old in held)
        held.clear()  # the last views: every slot is free now
        gc.collect()
        answers.put("released")
        full, states = answers.get(timeout=60)
    finally:
        worker.join(timeout=60)
        if worker.is_alive():
            worker.kill()
    assert received == cycles and states == [0] * slots  # nothing lost
    assert full > 0  # the worker found every slot held, and waited for the main process to free one
