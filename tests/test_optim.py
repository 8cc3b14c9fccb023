"""Tests for videoattn.optim: no-decay parameter groups, optimizers, warm-up + cosine schedule."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from videoattn.optim import (
    WarmupCosineLR,
    build_optimizer,
    param_groups,
    warmup_cosine_factor,
)


def _net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(3, 4, 1, bias=True),
        nn.BatchNorm3d(4),
        nn.GroupNorm(2, 4),
        nn.Conv3d(4, 4, 1, bias=False),
        nn.Flatten(),
        nn.LayerNorm(4),
        nn.Linear(4, 5),
    )


def test_norm_and_bias_parameters_get_no_weight_decay() -> None:
    net = _net()
    groups = param_groups(net, 1e-4)
    decay = {id(p) for p in groups[0]["params"]}
    no_decay = {id(p) for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 1e-4 and groups[1]["weight_decay"] == 0.0
    names = {id(p): n for n, p in net.named_parameters()}
    assert sorted(names[i] for i in decay) == ["0.weight", "3.weight", "6.weight"]
    assert sorted(names[i] for i in no_decay) == ["0.bias", "1.bias", "1.weight", "2.bias", "2.weight", "5.bias", "5.weight", "6.bias"]
    assert len(param_groups(net, 1e-4, decay_norm_and_bias=True)) == 1


def test_frozen_parameters_are_left_out_and_all_frozen_raises() -> None:
    net = _net()
    for p in net[:4].parameters():
        p.requires_grad_(False)
    ids = {id(p) for g in param_groups(net, 1e-4) for p in g["params"]}
    assert ids == {id(p) for p in net[4:].parameters()}
    net.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(net, "sgd", lr=0.1, weight_decay=1e-4)


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_weight_decay_moves_only_the_decayed_group(name: str) -> None:
    net = _net()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = build_optimizer(net, name, lr=0.1, weight_decay=0.5, nesterov=(name == "sgd"))
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in net.named_parameters():
        moved = not torch.equal(p, before[n])
        assert moved == (n in ("0.weight", "3.weight", "6.weight")), n
    if name == "sgd":
        assert opt.param_groups[0]["momentum"] == 0.9 and opt.param_groups[0]["nesterov"]
    assert isinstance(opt, torch.optim.AdamW if name == "adamw" else torch.optim.SGD)


def _pyslowfast_lr(epoch: float, *, base: float, end: float, max_epoch: float, warmup_epochs: float, warmup_start: float) -> float:
    """PySlowFast solver/lr_policy.py get_lr_at_epoch for LR_POLICY cosine, written out."""

    def cosine(e: float) -> float:
        return end + (base - end) * (math.cos(math.pi * e / max_epoch) + 1.0) * 0.5

    if epoch < warmup_epochs:
        alpha = (cosine(warmup_epochs) - warmup_start) / warmup_epochs
        return epoch * alpha + warmup_start
    return cosine(epoch)


def test_schedule_matches_pyslowfast_kinetics_recipe() -> None:
    # I3D_8x8_R50: BASE_LR 0.1, WARMUP_START_LR 0.01, WARMUP_EPOCHS 34, MAX_EPOCH 196; 10 steps per epoch
    spe, base = 10, 0.1
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base)
    sched = WarmupCosineLR(opt, total_steps=196 * spe, warmup_steps=34 * spe, warmup_start_factor=0.1)
    seen = []
    for step in range(196 * spe):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    for step in (0, 1, 55, 339, 340, 341, 1000, 1959):
        want = _pyslowfast_lr(step / spe, base=base, end=0.0, max_epoch=196, warmup_epochs=34, warmup_start=0.01)
        assert seen[step] == pytest.approx(want, rel=1e-9, abs=1e-12), step
    assert max(seen) == pytest.approx(seen[340])  # peak at the end of warm-up
    assert all(a < b for a, b in itertools.pairwise(seen[:341]))  # rising during warm-up
    assert all(a >= b for a, b in itertools.pairwise(seen[340:]))  # then non-increasing


def test_schedule_resumes_from_state_dict() -> None:
    def make() -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        return opt, WarmupCosineLR(opt, total_steps=20, warmup_steps=5, end_factor=0.01)

    opt, sched = make()
    for _ in range(7):
        opt.step()
        sched.step()
    state = (opt.state_dict(), sched.state_dict())
    rest = []
    for _ in range(13):
        opt.step()
        sched.step()
        rest.append(opt.param_groups[0]["lr"])
    opt2, sched2 = make()
    opt2.load_state_dict(state[0])
    sched2.load_state_dict(state[1])
    resumed = []
    for _ in range(13):
        opt2.step()
        sched2.step()
        resumed.append(opt2.param_groups[0]["lr"])
    assert resumed == rest
    assert rest[-1] == pytest.approx(0.01)


def test_bad_lengths_raise_value_error() -> None:
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine_factor(0, 10, warmup_steps=11)
    with pytest.raises(ValueError, match="total_steps"):
        warmup_cosine_factor(0, 0)
