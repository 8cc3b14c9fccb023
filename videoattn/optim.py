"""Optimisation pieces for the LightningModule: parameter groups without weight decay on
normalisation and bias parameters, the optimizer factory (SGD or AdamW), and the
learning-rate schedule of PySlowFast's recipes: linear warm-up into a half-cosine decay,
computed per optimizer step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["NORM_LAYERS", "WarmupCosine", "WarmupCosineLR", "build_optimizer", "param_groups", "warmup_cosine_factor"]

NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm1d/2d/3d, SyncBatchNorm, InstanceNorm*
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)


def param_groups(model: nn.Module, weight_decay: float, *, decay_norm_and_bias: bool = False) -> list[dict]:
    """Split the trainable parameters of ``model`` into a decayed group and a group with
    ``weight_decay=0`` holding every parameter of a normalisation layer and every bias
    (PySlowFast's ``BN.WEIGHT_DECAY: 0.0``). Frozen parameters are left out. Empty groups
    are dropped."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        is_norm = isinstance(module, NORM_LAYERS)
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if not decay_norm_and_bias and (is_norm or name == "bias"):
                no_decay.append(param)
            else:
                decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay, "name": "decay"},
              {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"}]
    return [g for g in groups if g["params"]]


def build_optimizer(
    model: nn.Module,
    name: Literal["sgd", "adamw"],
    *,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    nesterov: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
    decay_norm_and_bias: bool = False,
) -> torch.optim.Optimizer:
    """SGD (with ``momentum``, optionally Nesterov) or AdamW over :func:`param_groups`."""
    groups = param_groups(model, weight_decay, decay_norm_and_bias=decay_norm_and_bias)
    if not groups:
        raise ValueError("the model has no trainable parameters (is everything frozen?)")
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    raise ValueError(f"unknown optimizer {name!r}; valid: sgd, adamw")


def warmup_cosine_factor(
    step: int, total_steps: int, *, warmup_steps: int = 0, warmup_start_factor: float = 0.1, end_factor: float = 0.0
) -> float:
    """Learning-rate multiplier at ``step``, PySlowFast's ``LR_POLICY: cosine`` with warm-up:
    ``cos(s) = end + (1 - end) * (1 + cos(pi * s / total)) / 2`` over the WHOLE run, and
    during the first ``warmup_steps`` a straight line from ``warmup_start_factor`` to
    ``cos(warmup_steps)`` (``solver/lr_policy.py: get_lr_at_epoch``)."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")

    def cosine(s: int) -> float:
        s = min(s, total_steps)
        return end_factor + (1.0 - end_factor) * 0.5 * (1.0 + math.cos(math.pi * s / total_steps))

    if step < warmup_steps:
        return warmup_start_factor + (cosine(warmup_steps) - warmup_start_factor) * step / warmup_steps
    return cosine(step)


@dataclass(frozen=True)
class WarmupCosine:
    """:func:`warmup_cosine_factor` as a picklable ``lr_lambda`` for ``torch.optim.lr_scheduler.LambdaLR``
    (its fields are saved in the scheduler's state, so a resumed run continues the same curve)."""

    total_steps: int
    warmup_steps: int = 0
    warmup_start_factor: float = 0.1
    end_factor: float = 0.0

    def __post_init__(self) -> None:
        warmup_cosine_factor(0, self.total_steps, warmup_steps=self.warmup_steps)  # validates the lengths

    def __call__(self, step: int) -> float:
        return warmup_cosine_factor(step, self.total_steps, warmup_steps=self.warmup_steps,
                                    warmup_start_factor=self.warmup_start_factor, end_factor=self.end_factor)


def WarmupCosineLR(
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    warmup_steps: int = 0,
    warmup_start_factor: float = 0.1,
    end_factor: float = 0.0,
) -> LambdaLR:
    """torch's ``LambdaLR`` with :class:`WarmupCosine`, stepped once per optimizer step."""
    return LambdaLR(optimizer, WarmupCosine(total_steps, warmup_steps, warmup_start_factor, end_factor))
