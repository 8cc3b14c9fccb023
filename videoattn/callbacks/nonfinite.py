"""Stop training on a NaN or infinite loss, naming the step and the videos of the batch.

The check never waits for the device on the step it checks: the loss's finiteness becomes a
flag on the device, is reduced over DDP processes (so that every process stops at the same
step and none hangs in a collective), and is copied to the host without blocking. On the CPU
it is read at once, before the backward pass; on an accelerator the flag of step k is read
at step k+1, when its copy has long finished, so the host never stalls on the current step.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["NonFiniteLossError", "StopOnNonFiniteLoss"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the run stops instead of training on it."""


@dataclass
class _Pending:
    flag: torch.Tensor  # int32 [1] on the host (copy may still be in flight)
    event: Any  # device event recorded after the copy, or None on the CPU
    step: int
    epoch: int
    batch_idx: int
    paths: list[str]


class StopOnNonFiniteLoss(Callback):
    """Raise :class:`NonFiniteLossError` when the training loss is not finite on any process.

    Args:
        lagged: read each step's flag one step later (default: on accelerators only, where
            reading it at once would wait for the device on every step).
    """

    def __init__(self, lagged: bool | None = None) -> None:
        self.lagged = lagged
        self._paths: list[str] = []
        self._batch_idx = 0
        self._pending: _Pending | None = None

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._paths = list(batch.get("path", []))[:8] if isinstance(batch, Mapping) else []
        self._batch_idx = batch_idx

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> None:
        bad = (~torch.isfinite(loss.detach())).to(torch.int32).reshape(1)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)  # enqueued on the device stream: no host wait on GPUs
        record = _Pending(bad, None, trainer.global_step, trainer.current_epoch, self._batch_idx, self._paths)
        if not (bad.device.type != "cpu" if self.lagged is None else self.lagged):
            self._check(record)
            return
        if bad.device.type != "cpu":
            record.flag = bad.to("cpu", non_blocking=True)
            record.event = torch.Event(device=bad.device)
            record.event.record()
        previous, self._pending = self._pending, record
        if previous is not None:
            self._check(previous)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # before the checkpoint callbacks (Lightning runs them last): never save a diverged model
        previous, self._pending = self._pending, None
        if previous is not None:
            self._check(previous)

    def _check(self, record: _Pending) -> None:
        if record.event is not None:
            record.event.synchronize()
        if int(record.flag.item()):
            raise NonFiniteLossError(
                f"training loss is NaN or infinite (on this process or another) at global step {record.step} "
                f"(epoch {record.epoch}, batch {record.batch_idx}); videos in the batch: {record.paths}. "
                "Stopping instead of training on it: lower the learning rate, lengthen the warm-up, or check these videos."
            )
