"""Reading checkpoint files safely, and rebuilding the classifier a videoattn checkpoint holds.

Every path that opens a checkpoint (``weights=``, ``--ckpt_path``, ``visualize``, ``export``,
``VideoClassifier.load_from_checkpoint`` through the CLI) goes through :func:`load_checkpoint`:
``torch.load(weights_only=True)``, so nothing in the file can run code, and one
:class:`CheckpointError` line naming the file instead of torch's traceback when it is refused.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

__all__ = ["CheckpointError", "load_checkpoint", "classifier_from_checkpoint"]


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or would run code when unpickled."""


def _first_line(err: Exception) -> str:
    """An exception's first message line (its type's name if it has no message)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def unsafe_checkpoint(what: str, path: str | os.PathLike, err: Exception, hint: str = "") -> CheckpointError:
    """The one-line error for a checkpoint that ``torch.load(weights_only=True)`` refused."""
    return CheckpointError(
        f"{what}: refusing to load {str(path)!r}: it holds Python objects that would run code when "
        f"unpickled (torch.load weights_only=True rejected it: {_first_line(err)}).{hint}"
    )


def load_checkpoint(path: str | Path, *, what: str = "checkpoint") -> Mapping[str, Any]:
    """The dict held by checkpoint file ``path``, read with ``torch.load(weights_only=True)``
    on the CPU. ``what`` names the option in error messages (``--ckpt_path``, ``weights``...)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what}: no such checkpoint file {str(path)!r}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise unsafe_checkpoint(what, path, err, hint=" Re-save only the state dict.") from None
    except Exception as err:  # torch raises RuntimeError, EOFError, KeyError... on non-checkpoints
        raise CheckpointError(f"{what}: {str(path)!r} is not a PyTorch checkpoint ({_first_line(err)})") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{what}: {str(path)!r} holds a {type(obj).__name__}, expected a dict")
    return obj


def classifier_from_checkpoint(checkpoint: str | Path, model: str | None = None, *, what: str = "checkpoint") -> tuple[nn.Module, dict[str, Any]]:
    """The backbone of a videoattn/Lightning checkpoint, in eval mode, and what a tool needs to feed it.

    The model name, class count, class names and builder overrides come from the checkpoint's
    hyperparameters; ``model`` names the architecture of a bare state dict. The returned dict holds
    the data module's hyperparameters (``num_frames``, ``crop_size``, ``mean``...; empty if the
    checkpoint has none) plus ``class_names``.
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
    info = dict(obj.get("datamodule_hyper_parameters", {}) or {})
    clip = info.pop("clip", None)  # ClipSettings as saved by the data module (older checkpoints: flat keys)
    if isinstance(clip, Mapping):
        info.update(clip)
    elif clip is not None and hasattr(clip, "__dataclass_fields__"):
        info.update({k: getattr(clip, k) for k in clip.__dataclass_fields__})
    info["class_names"] = hp.get("class_names") or obj.get("classes")
    return net.eval(), info
