"""Samplers built by the DataModule itself (the CLI sets use_distributed_sampler=False):
train shuffles with a per-epoch seed and splits across processes (torch's DistributedSampler,
also on one process), resumable mid-epoch; evaluation gives each process a disjoint, unpadded
share, so every video is evaluated exactly once whatever the number of processes.

Training randomness does not depend on processes, workers or resumes: each sample's random
draws (clip start, scale, crop, flip) come from its own generator seeded with
``sample_seed(seed, epoch, video)``; the train sampler hands these seeds to the dataset with the
indices, and the shard path computes them in the worker.
"""
from __future__ import annotations

import itertools
from typing import Any, Iterator

import numpy as np
import torch.distributed as dist
from torch.utils.data import DistributedSampler, Sampler

__all__ = ["ShardedEvalSampler", "TrainSampler", "dist_rank_and_world", "sample_seed", "train_sampler"]


def dist_rank_and_world() -> tuple[int, int]:
    """(rank, world size) of torch.distributed when initialised, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's random draws: a hash of (seed, epoch, video index) (NumPy's
    SeedSequence), in [0, 2**63)."""
    state = np.random.SeedSequence([seed % 2**64, epoch % 2**64, index % 2**64]).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


class TrainSampler(DistributedSampler):
    """torch's DistributedSampler (one permutation per ``seed + epoch``, ``ceil(N / world)``
    indices per process) that

    - with ``batch_size``, gives whole batches only (the last, incomplete one is left out);
    - resumes mid-epoch: ``state_dict()`` is ``{"epoch", "yielded"}``; after
      ``load_state_dict`` the next iteration continues that epoch after the indices already
      given, or starts the next epoch if that one was over (torchdata's ``StatefulDataLoader``
      saves and restores the sampler with its own position);
    - with ``sample_seeds``, yields ``(index, sample_seed(seed, epoch, index))`` pairs, which
      :class:`~videoattn.data.datasets.VideoClipDataset` takes as keys (reproducible draws).
    """

    def __init__(
        self,
        dataset_len: int,
        *,
        num_replicas: int,
        rank: int,
        seed: int = 0,
        drop_last: bool = False,
        batch_size: int | None = None,
        sample_seeds: bool = False,
    ) -> None:
        super().__init__(range(dataset_len), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=drop_last)  # type: ignore[arg-type]
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
        self.batch_size, self.sample_seeds = batch_size, sample_seeds
        self.yielded = 0  # indices given in the current epoch
        self._resume_at = 0  # where the next iteration starts (set by load_state_dict)

    def __len__(self) -> int:
        return self.num_samples - self.num_samples % self.batch_size if self.batch_size else self.num_samples

    def __iter__(self) -> Iterator[Any]:
        start, self._resume_at = self._resume_at, 0
        if start >= len(self):  # restored at the end of an epoch: the next one begins
            start = 0
            super().set_epoch(self.epoch + 1)
        self.yielded = start
        for index in itertools.islice(super().__iter__(), start, len(self)):  # the permutation of self.epoch
            self.yielded += 1
            yield (index, sample_seed(self.seed, self.epoch, index)) if self.sample_seeds else index

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:  # another epoch starts from its beginning
            self._resume_at = 0
        super().set_epoch(epoch)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "yielded": self.yielded}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.epoch = int(state_dict["epoch"])
        self.yielded = self._resume_at = int(state_dict["yielded"])


def train_sampler(
    dataset_len: int,
    *,
    seed: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
    drop_last: bool = False,
    batch_size: int | None = None,
    sample_seeds: bool = False,
) -> TrainSampler:
    """Shuffling sampler with ``set_epoch`` (Lightning calls it each epoch): each process gets
    ``ceil(N / world)`` indices of one permutation seeded by ``seed + epoch`` (see
    :class:`TrainSampler` for ``batch_size``, resuming and ``sample_seeds``)."""
    r, w = dist_rank_and_world()
    rank, world_size = r if rank is None else rank, w if world_size is None else world_size
    return TrainSampler(dataset_len, num_replicas=world_size, rank=rank, seed=seed, drop_last=drop_last, batch_size=batch_size, sample_seeds=sample_seeds)


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
