"""Argument and input-shape checks shared by the four blocks: every failure is a ValueError
that names the argument and what was expected.
"""
from __future__ import annotations

import torch


def check_input(x: torch.Tensor, channels: int, block: str) -> None:
    """Raise unless ``x`` is a (N, C, T, H, W) tensor with ``C == channels``."""
    if not isinstance(x, torch.Tensor) or x.dim() != 5:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{block}: expected input of shape (N, C={channels}, T, H, W), got {shape}")
    if x.shape[1] != channels:
        raise ValueError(
            f"{block}: expected input of shape (N, C={channels}, T, H, W), got {tuple(x.shape)} "
            f"(channel count {x.shape[1]} != {channels})"
        )


def check_positive(name: str, value: int, block: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{block}: {name} must be a positive int, got {value!r}")
    return value


def check_choice(name: str, value: str, choices: tuple[str, ...], block: str) -> str:
    if value not in choices:
        raise ValueError(f"{block}: unknown {name} {value!r}; expected one of {', '.join(map(repr, choices))}")
    return value


def bottleneck_channels(in_channels: int, ratio: float, block: str) -> int:
    """int(in_channels * ratio), at least 1 (as GCNet's ContextBlock and timm's SE)."""
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 < ratio <= 1:
        raise ValueError(f"{block}: ratio must be a number in (0, 1], got {ratio!r}")
    return max(1, int(in_channels * ratio))
