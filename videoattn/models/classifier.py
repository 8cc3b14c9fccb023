"""The classification head of a model, found one way everywhere (fine-tuning, freezing,
feature extraction, weight loading): the model's own ``get_classifier()`` when it has one
(videoattn's ``VideoNet``, timm models), else its last ``nn.Linear``.
"""
from __future__ import annotations

from torch import nn

__all__ = ["find_classifier"]


def find_classifier(model: nn.Module) -> tuple[str, nn.Module]:
    """``(path, module)`` of ``model``'s classifier; ``path`` is relative to ``model``."""
    getter = getattr(model, "get_classifier", None)
    if callable(getter):
        head = getter()
        for path, module in model.named_modules():
            if module is head:
                return path, head
        raise ValueError(f"{type(model).__name__}.get_classifier() returned a module that is not part of the model")
    linears = [(path, m) for path, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no classifier: no get_classifier() method and no nn.Linear layer")
    return linears[-1]
