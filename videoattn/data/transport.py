"""How a DataLoader worker hands its train batches to the main process: clips written into
shared-memory slots that are reused batch after batch, small tensors sent in the message.

torch's DataLoader gives every batch tensor a new shared-memory segment in the worker (created,
zero-filled by the kernel page by page as it is written, unmapped after sending) and passes its
file descriptor to the main process through a handshake per tensor (multiprocessing's
resource sharer), which maps it again. Measured per 8x224x224 uint8 train clip on the 2-core CPU
machine: 0.45 ms to create the segment and 0.37 ms of page faults writing it (reused heap memory:
0.03 ms), and per batch 0.9-1.0 ms in the queue's feeder thread and 0.6 ms in the resource
sharer's (three tensors, three handshakes), against a 12-14 ms decode (docs/data.md).

:class:`SlotPool` (one per worker, made at its first batch) holds ``slots`` fixed slots in ONE
segment; a batch's clips are written into a free slot and travel as a :class:`SlotRef` (pool,
slot, shapes): a few hundred bytes, no descriptor, pages already mapped on both sides. The main
process learns the segment from the first batches (sent with them until it says it has it) and
turns a SlotRef into tensors that view the slot; the slot is marked free when the last of them
is freed (their storage holds the array the finalizer watches), so a batch the main process
keeps stays intact whatever comes after. With no free slot (batches held longer than the pool
covers) the worker falls back to a new segment per batch, as torch does. The main process forgets
a loader's pools when its collate function dies with the loader (:func:`forget_pools`): a segment
stays mapped only while the loader lives or a batch still views it (a loader made and thrown away
before every validation, as PreciseBN does, used to keep its pools mapped until the process ended).

The slot states need no lock: each byte has one writer per transition. Only the worker that owns
the pool marks a slot in use (free -> used, in :meth:`SlotPool.acquire`, before it writes the
batch), and only the main process marks it free (used -> free, when the last view of the batch it
received dies); the worker never writes a slot it has not just marked used, the main process never
frees a slot it has not received. The worker's writes of the batch reach the main process before
the reference does (it travels through a pipe, a system call on both sides), and the main process
frees the slot only after its last read of it. tests/test_transport.py hammers it from two processes.
"""
from __future__ import annotations

import os
import uuid
import weakref
from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["InBand", "SlotPool", "SlotRef", "count_fallback", "fallbacks", "forget_pools", "new_pool_key", "pooled_worker", "slot_bytes"]

_ALIGN = 64  # bytes: each tensor of a slot starts on a cache line
_FREE, _USED = 0, 1
_POOLS: dict[str, torch.Tensor] = {}  # main process: pool key -> its segment (uint8), latest per (loader, worker)
_STATE = {"pooled": 0, "fallbacks": 0}  # the pid of the worker that owns a pool (not its forks); batches sent without a slot

Layout = list[tuple[int, torch.dtype, tuple[int, ...]]]  # (byte offset in the slot, dtype, shape) per tensor


def pooled_worker() -> bool:
    """True in a DataLoader worker whose batches travel in a pool's slots: its samples need not
    be in shared memory (the batch is copied into a slot anyway)."""
    return _STATE["pooled"] == os.getpid()


def fallbacks() -> int:
    """Batches this worker process sent in new segments because no slot was free."""
    return _STATE["fallbacks"]


def count_fallback() -> None:
    _STATE["fallbacks"] += 1


def slot_bytes(shapes: Sequence[tuple[torch.dtype, Sequence[int]]]) -> int:
    """The bytes a slot needs for tensors of these dtypes and shapes."""
    return sum(_aligned(_nbytes(dtype, shape)) for dtype, shape in shapes)


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _nbytes(dtype: torch.dtype, shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) * torch.empty(0, dtype=dtype).element_size()


class SlotPool:
    """``slots`` slots of ``slot_bytes`` in one shared segment, made in a worker. The segment's
    first bytes hold each slot's state (free / in use; the main process frees) and whether the
    main process has registered the segment."""

    def __init__(self, key: str, slots: int, slot_bytes: int) -> None:
        self.key, self.slots, self.slot_bytes = key, slots, _aligned(slot_bytes)
        self.header = _aligned(slots + 1)
        self.memory = torch.zeros(self.header + slots * self.slot_bytes, dtype=torch.uint8).share_memory_()
        self.state = self.memory[: slots + 1]  # [slots] states, then the registered flag
        _STATE["pooled"] = os.getpid()

    def layout(self, shapes: Sequence[tuple[torch.dtype, Sequence[int]]]) -> Layout | None:
        """Where tensors of these dtypes and shapes go in a slot; None if they do not fit."""
        out, offset = [], 0
        for dtype, shape in shapes:
            out.append((offset, dtype, tuple(int(s) for s in shape)))
            offset += _aligned(_nbytes(dtype, shape))
        return out if offset <= self.slot_bytes else None

    def acquire(self) -> int | None:
        """A free slot, marked in use; None when every slot is held by the main process."""
        free = (self.state[: self.slots] == _FREE).nonzero()
        if len(free) == 0:
            return None
        slot = int(free[0])
        self.state[slot] = _USED
        return slot

    def views(self, slot: int, layout: Layout) -> list[torch.Tensor]:
        """The slot's tensors, to write the batch into (worker side)."""
        base = self.header + slot * self.slot_bytes
        return [self.memory[base + o : base + o + _nbytes(d, s)].view(d).view(s) for o, d, s in layout]

    def ref(self, slot: int, layout: Layout, single: bool) -> SlotRef:
        registered = bool(self.state[self.slots])
        return SlotRef(self.key, None if registered else self.memory, self.slots, self.header, self.slot_bytes, slot, layout, single)


class SlotRef:
    """What travels instead of a batch's clips: unpickled in the main process as the tensors
    that view the slot (one tensor, or a list when ``single`` is False)."""

    def __init__(self, key: str, memory: torch.Tensor | None, slots: int, header: int, slot_bytes: int, slot: int, layout: Layout, single: bool) -> None:
        self.args = (key, memory, slots, header, slot_bytes, slot, layout, single)

    def __reduce__(self) -> tuple[Any, tuple]:
        return _open_slot, self.args


def _release(state: np.ndarray, slot: int) -> None:
    state[slot] = _FREE


def _open_slot(key: str, memory: torch.Tensor | None, slots: int, header: int, slot_bytes: int, slot: int, layout: Layout, single: bool) -> Any:
    """Main process: the tensors of ``slot`` of pool ``key``, freeing the slot when they die."""
    segment = _POOLS.get(key)
    if segment is None:
        if memory is None:
            raise RuntimeError(f"a batch refers to the shared-memory pool {key} that this process never received; "
                               "set KineticsDataModule(pool_slots=0) and report this")
        loader_worker = key.rsplit("/", 1)[0]
        for old in [k for k in _POOLS if k.rsplit("/", 1)[0] == loader_worker]:  # a restarted worker's new pool
            del _POOLS[old]  # the old segment lives on in the tensors that still view it
        _POOLS[key] = segment = memory
        segment[slots] = 1  # registered: later batches travel without the segment
    array = segment.numpy()
    base = header + slot * slot_bytes
    flat = array[base : base + slot_bytes]
    weakref.finalize(flat, _release, array[:slots], slot)  # flat dies with the last tensor viewing it
    whole = torch.from_numpy(flat)
    tensors = [whole[o : o + _nbytes(d, s)].view(d).view(s) for o, d, s in layout]
    return tensors[0] if single else tensors


class InBand:
    """A small tensor pickled with the message (no shared memory, no descriptor handshake);
    unpickled as a plain tensor."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.array = tensor.numpy()

    def __reduce__(self) -> tuple[Any, tuple]:
        return torch.from_numpy, (self.array,)


def forget_pools(loader_key: str) -> None:
    """Main process: drop the pools of loader ``loader_key`` (its collate function is gone). Their
    segments are unmapped once no batch views them any more."""
    for key in [k for k in _POOLS if k.split("/", 1)[0] == loader_key]:
        del _POOLS[key]


def new_pool_key(loader_key: str, worker_id: int) -> str:
    """A pool's key: the loader, the worker, and the process (a restarted worker makes another)."""
    return f"{loader_key}/{worker_id}/{os.getpid()}-{uuid.uuid4().hex[:8]}"
