"""The classifier a videoattn/Lightning checkpoint holds, rebuilt from the checkpoint alone: the
model name, class count, class names and builder overrides of its hyperparameters, the weights
of its state dict, and the data settings a tool needs to feed it (``export``, ``visualize``).
The file is read by :func:`videoattn.checkpoints.load_checkpoint` (``weights_only=True``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from videoattn.checkpoints import CheckpointError, data_settings, load_checkpoint

__all__ = ["classifier_from_checkpoint"]


def classifier_from_checkpoint(checkpoint: str | Path, model: str | None = None, *, what: str = "checkpoint") -> tuple[nn.Module, dict[str, Any]]:
    """The backbone of a videoattn/Lightning checkpoint, in eval mode, and what a tool needs to feed it.

    Args:
        checkpoint: the checkpoint file.
        model: the registered model name, for a bare state dict (a Lightning checkpoint names its
            model in ``hyper_parameters.backbone``).
        what: the option named in error messages (``--ckpt_path``, ``CKPT``...).

    Returns:
        ``(model, info)``: ``info`` holds the data module's settings as
        :func:`videoattn.checkpoints.data_settings` gives them (``num_frames``,
        ``test_crop_size``, ``mean``...; empty if the checkpoint has none) plus ``class_names`` and
        ``test_aggregate`` (how the test views' scores are combined, "mean" unless saved otherwise).
    """
    from videoattn.models import create_model

    obj = load_checkpoint(checkpoint, what=what)
    hp = dict(obj.get("hyper_parameters", {}) or {})
    name = model or hp.get("backbone")
    if not isinstance(name, str):
        raise CheckpointError(f"{what}: {str(checkpoint)!r} does not name its model (no hyper_parameters.backbone): pass the model name")
    state = obj.get("state_dict", obj)
    heads = [v for k, v in state.items() if k.endswith(("proj.weight", "fc.weight", "head.weight"))]
    num_classes = hp.get("num_classes") or (heads[-1].shape[0] if heads else 400)
    net = create_model(name, num_classes=num_classes, weights=str(checkpoint), **(hp.get("backbone_kwargs") or {}))
    info = data_settings(obj)
    info.pop("class_path", None)
    info["class_names"] = hp.get("class_names") or obj.get("classes")
    info["test_aggregate"] = hp.get("test_aggregate") or "mean"
    return net.eval(), info
