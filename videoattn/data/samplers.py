"""Samplers built by the DataModule itself (the CLI sets use_distributed_sampler=False):
train shuffles with a per-epoch seed and splits across processes (torch's DistributedSampler,
also on one process); evaluation gives each process a disjoint, unpadded share, so every
video is evaluated exactly once whatever the number of processes.
"""
from __future__ import annotations

from typing import Iterator

import torch.distributed as dist
from torch.utils.data import DistributedSampler, Sampler

__all__ = ["ShardedEvalSampler", "dist_rank_and_world", "train_sampler"]


def dist_rank_and_world() -> tuple[int, int]:
    """(rank, world size) of torch.distributed when initialised, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def train_sampler(dataset_len: int, *, seed: int = 0, rank: int | None = None, world_size: int | None = None, drop_last: bool = False) -> DistributedSampler:
    """Shuffling sampler with ``set_epoch`` (Lightning calls it each epoch): each process gets
    ``ceil(N / world)`` indices of one permutation seeded by ``seed + epoch``."""
    r, w = dist_rank_and_world()
    rank, world_size = r if rank is None else rank, w if world_size is None else world_size
    return DistributedSampler(range(dataset_len), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=drop_last)  # type: ignore[arg-type]


class ShardedEvalSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...``: disjoint shares covering every index once, no padding
    (shares differ by at most one video)."""

    def __init__(self, dataset_len: int, *, rank: int | None = None, world_size: int | None = None) -> None:
        r, w = dist_rank_and_world()
        self.rank = r if rank is None else rank
        self.world_size = w if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, {self.world_size}), got {self.rank}")
        self.dataset_len = dataset_len

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.dataset_len, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.dataset_len, self.world_size))

    def set_epoch(self, epoch: int) -> None:  # same order every epoch; kept for a uniform interface
        del epoch
