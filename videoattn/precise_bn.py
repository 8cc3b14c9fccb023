"""Precise BatchNorm statistics (PySlowFast's BN.USE_PRECISE_STATS, after Wu & Johnson,
"Rethinking Batch in BatchNorm", arXiv 2105.07576): before evaluation, recompute every
BatchNorm's running mean/variance as population statistics over a number of training
batches with the weights fixed, instead of the exponential average left by training.

The estimate is fvcore's (the one PySlowFast calls): each BatchNorm, in training mode with
momentum 1, leaves its batch mean and unbiased variance in its buffers; they are combined
into the mean and (biased) variance of all the batches' elements together, weighted by each
batch's element count. Under DDP the result is averaged over processes, as PySlowFast does.
torch's ``swa_utils.update_bn`` does not fit: it resets every BatchNorm (frozen ones too),
consumes the whole loader and feeds only ``input[0]`` of a list batch (SlowFast's slow pathway).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sized
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["update_precise_bn"]

_BatchNorm = nn.modules.batchnorm._BatchNorm


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

    The layers updated are those that training updates: the BatchNorms that ``model.train()``
    puts in training mode and that track running statistics. A BatchNorm whose statistics are
    frozen (``track_running_stats=False`` with its buffers kept, as :class:`FreezeBackbone
    <videoattn.callbacks.FreezeBackbone>` and Lightning's ``BaseFinetuning.freeze`` leave it)
    or that the model keeps in eval mode is left alone, and normalises with its own statistics
    during the passes, as in training. Every module's train/eval mode is restored. Returns the
    number of batches used on this process.

    Args:
        model: the network (its BatchNorm layers anywhere inside).
        loader: training batches (any iterable; a DataLoader is read from a fresh iterator).
        num_batches: how many batches to use at most.
        to_input: maps an item of ``loader`` to the model's input; default: the item itself.
    """
    if num_batches <= 0:
        raise ValueError(f"num_batches must be positive, got {num_batches}")
    if isinstance(loader, Sized):
        num_batches = min(num_batches, len(loader))
    if num_batches == 0:
        raise ValueError("precise BN needs at least one batch, the loader is empty")
    modes = [(m, m.training) for m in model.modules()]
    model.train()
    for m in model.modules():
        if isinstance(m, _BatchNorm) and not m.track_running_stats:
            m.eval()  # frozen statistics: normalise with them, as in training
    names = {m: name for name, m in model.named_modules() if isinstance(m, _BatchNorm) and m.training}
    inputs = loader if to_input is None else (to_input(item) for item in loader)
    try:
        if names:
            _population_statistics(model, names, itertools.islice(inputs, num_batches), num_batches)
    finally:
        for m, training in modes:
            m.training = training
    if names and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        world = dist.get_world_size()
        for bn in names:
            for buf in (bn.running_mean, bn.running_var):
                dist.all_reduce(buf, op=dist.ReduceOp.SUM)
                buf.div_(world)
    return num_batches


def _population_statistics(model: nn.Module, names: dict[nn.Module, str], batches: Iterable[Any], num_batches: int) -> None:
    """Sets the running mean and variance of the BatchNorms ``names`` (in training mode) to the
    mean and biased variance over every element of ``batches``, per channel. On an error the
    layers keep the statistics they had."""
    layers = list(names)
    saved = [(bn.momentum, bn.running_mean.clone(), bn.running_var.clone()) for bn in layers]
    sizes: dict[nn.Module, int] = {}  # elements per channel of this batch, per layer

    def record_size(bn: nn.Module, args: tuple[Any, ...]) -> None:
        if bn in sizes:
            raise ValueError(f"precise BN: BatchNorm {names[bn]!r} runs twice in one forward pass; its statistics cannot be estimated")
        sizes[bn] = args[0].numel() // args[0].shape[1]

    hooks = [bn.register_forward_pre_hook(record_size) for bn in layers]
    total = [0] * len(layers)
    mean = [torch.zeros_like(bn.running_mean) for bn in layers]
    square = [torch.zeros_like(bn.running_var) for bn in layers]  # mean of x^2
    used = 0
    try:
        for bn in layers:
            bn.momentum = 1.0  # the buffers hold this batch's mean and unbiased variance after each forward
        for batch in batches:
            sizes.clear()
            model(batch)
            used += 1
            for i, bn in enumerate(layers):
                n = sizes.get(bn)
                if n is None:  # the layer did not run on this batch
                    continue
                total[i] += n
                batch_square = bn.running_mean.square() + bn.running_var * ((n - 1) / n)
                mean[i] += (bn.running_mean - mean[i]) * (n / total[i])
                square[i] += (batch_square - square[i]) * (n / total[i])
        if used < num_batches:
            raise ValueError(f"precise BN: the loader ended after {used} of {num_batches} batches")
    except BaseException:
        for bn, (_, running_mean, running_var) in zip(layers, saved):
            bn.running_mean.copy_(running_mean)
            bn.running_var.copy_(running_var)
        raise
    finally:
        for bn, (momentum, _, _) in zip(layers, saved):
            bn.momentum = momentum
        for hook in hooks:
            hook.remove()
    for i, bn in enumerate(layers):
        if total[i]:
            bn.running_mean.copy_(mean[i])
            bn.running_var.copy_(square[i] - mean[i].square())
