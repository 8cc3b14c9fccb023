"""videoattn.models: backbones (C2D/I3D/Slow/SlowFast ResNets in pytorchvideo's layout),
presets with attention blocks, insertion of blocks into any model, and weight loading.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn

from videoattn.models import backbones as _backbones  # noqa: F401  (registers the backbones)
from videoattn.models import lr_resnet as _lr_resnet  # noqa: F401  (registers c2d_lr50, i3d_lr50)
from videoattn.models import presets as _presets  # noqa: F401  (registers the presets)
from videoattn.models.backbones import VideoNet, res_stage_paths
from videoattn.models.classifier import find_classifier
from videoattn.models.from_checkpoint import classifier_from_checkpoint
from videoattn.models.insert import Inserted, insert_blocks, match_paths
from videoattn.models.presets import PRESETS, Placement, apply_placement, placement_paths
from videoattn.models.registry import ModelEntry, get_model_entry, list_models, register_model
from videoattn.models.weights import LoadReport, inflate_weight, load_weights, read_checkpoint

__all__ = [
    "create_model", "list_models", "register_model", "get_model_entry", "ModelEntry",
    "find_classifier", "classifier_from_checkpoint", "insert_blocks", "match_paths", "Inserted", "load_weights", "read_checkpoint", "inflate_weight",
    "LoadReport", "PRESETS", "Placement", "apply_placement", "placement_paths", "VideoNet", "res_stage_paths",
]


def create_model(
    name: str,
    *,
    num_classes: int = 400,
    weights: str | Path | Mapping[str, torch.Tensor] | None = None,
    inflate: str = "mean",
    **overrides: Any,
) -> nn.Module:
    """Build registered model ``name`` on the CPU, optionally loading ``weights``.

    Args:
        name: one of ``list_models()``.
        num_classes: classifier outputs.
        weights: a checkpoint file or state dict (see ``load_weights``): pytorchvideo hub,
            videoattn / Lightning, or a torchvision 2D ResNet (inflated to 3D with ``inflate``).
        inflate: "mean" (I3D) or "centre" inflation of 2D kernels.
        overrides: builder arguments, e.g. ``dropout=0.2``; for presets also block arguments,
            e.g. ``instantiation="gaussian"`` for an NL preset.
    """
    entry = get_model_entry(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    params = inspect.signature(entry.builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in overrides if k not in params]
    if unknown and not takes_any:
        accepted = [p for p in params if p != "num_classes"]
        raise ValueError(f"{name}: unknown override(s) {', '.join(unknown)}; accepted: {', '.join(accepted)}")
    try:
        model = entry.builder(num_classes=num_classes, **overrides)
    except TypeError as err:
        raise ValueError(f"{name}: bad override(s) {', '.join(overrides)}: {err}") from None
    if weights is not None:
        load_weights(model, weights, inflate=inflate)
    return model
