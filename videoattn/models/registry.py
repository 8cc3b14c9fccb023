"""The model registry: one plain dict from a model name to its entry (builder and
the input a recipe feeds it). Backbones and presets register themselves here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

__all__ = ["ModelEntry", "register_model", "get_model_entry", "list_models"]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model.

    Attributes:
        builder: ``builder(*, num_classes, dropout, **overrides) -> nn.Module`` (a CPU module).
        frames: clip length per pathway at the recipe's input (one entry, or slow and fast).
        crop_size: spatial size of the recipe's input.
        description: one line for ``videoattn models``.
    """

    builder: Callable[..., nn.Module]
    frames: tuple[int, ...]
    crop_size: int
    description: str


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, *, frames: tuple[int, ...], crop_size: int, description: str) -> Callable:
    """Decorator registering ``builder`` under ``name``; a duplicate name raises ValueError."""

    def _register(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = ModelEntry(builder, tuple(frames), crop_size, description)
        return builder

    return _register


def get_model_entry(name: str) -> ModelEntry:
    """The entry of ``name``; an unknown name raises ValueError listing the valid ones."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_MODELS)
