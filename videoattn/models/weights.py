"""Weight loading: pytorchvideo / PySlowFast hub checkpoints, videoattn and Lightning
checkpoints, and torchvision 2D ResNet state dicts inflated to 3D (I3D inflation,
Carreira & Zisserman, CVPR 2017, arXiv 1705.07750). Files are read with
torch.load(weights_only=True), so nothing in them can run code.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

from videoattn.checkpoints import CheckpointError, load_checkpoint
from videoattn.models.classifier import find_classifier
from videoattn.models.insert import Inserted
from videoattn.models.resnet import res_stage_paths

__all__ = ["LoadReport", "read_checkpoint", "load_weights", "inflate_weight", "torchvision_resnet_to_3d"]

log = logging.getLogger(__name__)
INFLATE_MODES = ("mean", "centre")
_STATE_DICT_ENTRIES = ("model_state", "state_dict", "model")  # pytorchvideo/PySlowFast, Lightning, others
_TV_BLOCK = {"conv1": "branch2.conv_a", "bn1": "branch2.norm_a", "conv2": "branch2.conv_b", "bn2": "branch2.norm_b",
             "conv3": "branch2.conv_c", "bn3": "branch2.norm_c", "downsample.0": "branch1_conv", "downsample.1": "branch1_norm"}


@dataclass
class LoadReport:
    """What ``load_weights`` did.

    Attributes:
        source: "pytorchvideo" (``model_state`` entry), "videoattn" (Lightning/videoattn
            checkpoint), "bare" (a plain state dict) or "torchvision-2d" (inflated).
        loaded: model keys filled from the checkpoint.
        inserted: paths of inserted blocks left at their initialisation (not in the checkpoint).
        head_reinitialised: classifier keys left at their initialisation (class count differs).
    """

    source: str
    loaded: list[str] = field(default_factory=list)
    inserted: list[str] = field(default_factory=list)
    head_reinitialised: list[str] = field(default_factory=list)


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict held by a checkpoint file and its kind ("pytorchvideo", "videoattn", "bare").

    Accepts ``{"model_state": sd}`` (pytorchvideo, PySlowFast), ``{"state_dict": sd}`` (Lightning;
    ``backbone.`` keys are kept and the prefix stripped), ``{"model": sd}`` and a bare state dict;
    a DDP ``module.`` prefix is stripped.
    """
    try:
        obj = load_checkpoint(path, what="weights")
    except CheckpointError as err:
        if not Path(path).is_file():
            raise FileNotFoundError(str(err)) from None
        raise
    kind = "bare"
    for entry in _STATE_DICT_ENTRIES:
        if isinstance(obj.get(entry), Mapping):
            obj, kind = obj[entry], ("pytorchvideo" if entry == "model_state" else "videoattn")
            break
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ValueError(f"weights: {str(path)!r} holds no tensors; top-level keys: {', '.join(map(str, obj))}")
    if any(k.startswith("backbone.") for k in state):
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        kind = "videoattn"
    for prefix in ("module.", "model."):
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state, kind


def inflate_weight(weight_2d: torch.Tensor, time: int, mode: str = "mean") -> torch.Tensor:
    """Inflate a 2D conv kernel (O, I, kh, kw) to (O, I, time, kh, kw).

    "mean": repeated over time and divided by ``time`` (I3D), so a clip of identical frames gives
    the 2D response away from the temporal borders; "centre": the 2D kernel at the centre tap,
    zeros elsewhere, so identical frames give exactly the 2D response everywhere.
    """
    if mode not in INFLATE_MODES:
        raise ValueError(f"inflate must be one of {INFLATE_MODES}, got {mode!r}")
    # (O, I, kh, kw) -> (O, I, 1, kh, kw)
    w = weight_2d.unsqueeze(2)
    if mode == "mean":
        return w.repeat(1, 1, time, 1, 1) / time
    out = torch.zeros(*w.shape[:2], time, *w.shape[3:], dtype=w.dtype)
    out[:, :, time // 2] = weight_2d
    return out


def _some(items: list[str], limit: int = 12, sep: str = ", ") -> str:
    shown = sep.join(items[:limit])
    return shown + (f"{sep}... ({len(items) - limit} more)" if len(items) > limit else "")


def _is_torchvision_2d(state: Mapping[str, torch.Tensor]) -> bool:
    return "conv1.weight" in state and state["conv1.weight"].dim() == 4 and any(k.startswith("layer1.") for k in state)


def _classifier_path(model: nn.Module) -> str | None:
    try:
        return find_classifier(model)[0]
    except ValueError:
        return None


def torchvision_resnet_to_3d(state_2d: Mapping[str, torch.Tensor], model: nn.Module, mode: str = "mean") -> dict[str, torch.Tensor]:
    """Rename a torchvision 2D ResNet (bottleneck) state dict to ``model``'s pytorchvideo layout,
    inflating each conv kernel to the temporal size of the matching 3D conv."""
    stages = res_stage_paths(model)
    if len(stages) != 4 or any(".multipathway_blocks." in s for s in stages):
        raise ValueError(
            "weights: a torchvision 2D ResNet inflates into a single-pathway ResNet (c2d, i3d, slow); "
            f"{type(model).__name__} has residual stages {stages}"
        )
    stem, head = "blocks.0", _classifier_path(model)
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state_2d.items():
        if key.startswith("conv1."):
            new = f"{stem}.conv.{key[6:]}"
        elif key.startswith("bn1."):
            new = f"{stem}.norm.{key[4:]}"
        elif key.startswith("fc.") and head is not None:
            new = f"{head}.{key[3:]}"
        elif m := re.fullmatch(r"layer([1-4])\.(\d+)\.(conv[1-3]|bn[1-3]|downsample\.[01])\.(.+)", key):
            new = f"{stages[int(m[1]) - 1]}.res_blocks.{m[2]}.{_TV_BLOCK[m[3]]}.{m[4]}"
        else:
            new = key  # reported as unexpected by load_weights
        renamed[new] = value
    target = _canonical_state(model)
    for key, value in renamed.items():
        ref = target.get(key)
        if ref is not None and value.dim() == 4 and ref.dim() == 5:
            renamed[key] = inflate_weight(value, ref.shape[2], mode)
    return renamed


def _key_layout(model: nn.Module) -> tuple[dict[str, str], dict[str, str]]:
    """Map canonical key -> model key (canonical = as if no block were inserted), and
    inserted key -> path of its Inserted wrapper."""
    wrappers = {name for name, m in model.named_modules() if isinstance(m, Inserted)}
    canonical, inserted = {}, {}
    for key in model.state_dict():
        parts, path, out, owner = key.split("."), [], [], None
        for part in parts:
            here = ".".join(path)
            path.append(part)
            if here in wrappers and (here or isinstance(model, Inserted)) and part in ("module", "block"):
                if part == "block" and owner is None:
                    owner = here
                continue
            out.append(part)
        if owner is not None:
            inserted[key] = owner
        else:
            canonical[".".join(out)] = key
    return canonical, inserted


def _canonical_state(model: nn.Module) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    canonical, _ = _key_layout(model)
    return {c: state[k] for c, k in canonical.items()}


def load_weights(model: nn.Module, weights: str | Path | Mapping[str, torch.Tensor], *, inflate: str = "mean") -> LoadReport:
    """Load ``weights`` (a file, or a state dict) into ``model`` in place.

    The checkpoint kind is detected (see read_checkpoint; a torchvision 2D ResNet is inflated with
    ``inflate``). Keys of inserted blocks missing from the checkpoint keep their initialisation and
    are reported; a classifier of another class count is re-initialised and reported (fine-tuning);
    any other missing, unexpected or mis-shaped key raises ValueError naming the keys.
    """
    if isinstance(weights, (str, Path)):
        state, kind = read_checkpoint(weights)
    elif isinstance(weights, Mapping):
        state, kind = dict(weights), "bare"
    else:
        raise ValueError(f"weights must be a file path or a state dict, got {type(weights).__name__}")
    if inflate not in INFLATE_MODES:
        raise ValueError(f"inflate must be one of {INFLATE_MODES}, got {inflate!r}")
    if _is_torchvision_2d(state):
        state, kind = torchvision_resnet_to_3d(state, model, inflate), "torchvision-2d"

    own = model.state_dict()
    canonical, inserted = _key_layout(model)
    head = _classifier_path(model)
    head_keys = {canonical.get(f"{head}.{p}", f"{head}.{p}") for p in ("weight", "bias")} if head else set()

    to_load, unexpected, mismatched, head_reinit = {}, [], [], []
    for key, value in state.items():
        target = key if key in own else canonical.get(key)
        if target is None:
            unexpected.append(key)
        elif own[target].shape != value.shape:
            (head_reinit if target in head_keys else mismatched).append(target)
            if target not in head_keys:
                mismatched[-1] = f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(own[target].shape)}"
        else:
            to_load[target] = value
    missing = [k for k in own if k not in to_load and k not in head_reinit]
    missing_inserted = [k for k in missing if k in inserted]
    # BatchNorm's step counter is absent from PySlowFast / Caffe2-converted checkpoints: harmless.
    missing = [k for k in missing if k not in inserted and not k.endswith("num_batches_tracked")]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (not in the checkpoint): {_some(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (not in the model): {_some(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches: {_some(mismatched, sep='; ')}")
    if problems:
        name = str(weights) if isinstance(weights, (str, Path)) else "state dict"
        raise ValueError(f"weights: {name} does not fit {type(model).__name__}:\n  " + "\n  ".join(problems))

    model.load_state_dict(to_load, strict=False)
    report = LoadReport(kind, sorted(to_load), sorted(set(inserted[k] for k in missing_inserted)), sorted(head_reinit))
    if report.head_reinitialised:
        log.warning("weights: classifier %s re-initialised: the checkpoint has another number of classes", head)
    if report.inserted:
        log.warning("weights: %d inserted blocks keep their initialisation (not in the checkpoint): %s",
                    len(report.inserted), ", ".join(report.inserted))
    return report
