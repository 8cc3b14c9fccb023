"""Precise BatchNorm statistics (PySlowFast's BN.USE_PRECISE_STATS, after Wu & Johnson,
"Rethinking Batch in BatchNorm", arXiv 2105.07576): before evaluation, recompute every
BatchNorm's running mean/variance as population statistics over a number of training
batches with the weights fixed, instead of the exponential average left by training.
The estimation is fvcore's (the one PySlowFast calls); under DDP the result is averaged
over processes, as PySlowFast does.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sized
from typing import Any

import torch
import torch.distributed as dist
from fvcore.nn.precise_bn import get_bn_modules, update_bn_stats
from torch import nn

__all__ = ["update_precise_bn"]


@torch.no_grad()
def update_precise_bn(
    model: nn.Module,
    loader: Iterable[Any],
    num_batches: int = 200,
    *,
    to_input: Callable[[Any], Any] | None = None,
) -> int:
    """Recompute the statistics of ``model``'s BatchNorm layers from at most ``num_batches``
    items of ``loader`` (fewer if ``len(loader)`` is smaller). ``to_input`` maps an item to
    the model's input (e.g. picks the video out of a batch dict and moves it to the device).

    Layers still in eval mode after ``model.train()`` (e.g. frozen ones) are left alone. The
    model's train/eval mode is restored. Returns the number of batches used on this process.
    """
    if num_batches <= 0:
        raise ValueError(f"num_batches must be positive, got {num_batches}")
    if isinstance(loader, Sized):
        num_batches = min(num_batches, len(loader))
    if num_batches == 0:
        raise ValueError("precise BN needs at least one batch, the loader is empty")
    inputs = loader if to_input is None else (to_input(item) for item in loader)
    was_training = model.training
    model.train()
    try:
        if get_bn_modules(model):
            update_bn_stats(model, inputs, num_iters=num_batches)
    except AssertionError as err:  # fvcore asserts that the loader lasted num_iters batches
        raise ValueError(f"precise BN: {err}") from None
    finally:
        model.train(was_training)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        _average_over_processes(model)
    return num_batches


def _average_over_processes(model: nn.Module) -> None:
    world = dist.get_world_size()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            for buf in (module.running_mean, module.running_var):
                dist.all_reduce(buf, op=dist.ReduceOp.SUM)
                buf.div_(world)
