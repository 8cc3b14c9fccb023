"""Presets: backbones with blocks where the papers put them. A placement is data:
residual stage (2..5 for res2..res5) -> indices of its residual blocks, and whether
the block goes after the residual block or inside its residual branch.
  NL   Wang et al. 2018 (arXiv 1711.07971), PySlowFast NLN configs: 5 blocks after
       res3 blocks 1,3 and res4 blocks 1,3,5; softmax for I3D, dot_product for Slow/SlowFast.
  GC   Cao et al. 2019 (arXiv 1904.11492): every bottleneck of res3-res5, after the
       last norm of the residual branch; ratio 1/16, add fusion.
  SE   Hu et al. 2018 (arXiv 1709.01507): every bottleneck, same place (SE-ResNet).
  CGNL Yue et al. 2018 (arXiv 1810.13125): one block in res4 before its last residual
       block (dot kernel, 8 groups); "cgnl5" puts CGNL at the five NL places instead.
  LR, Relation, Transformer (arXiv 1904.11491, 1711.11575, 2005.12872): at the five NL places,
       to compare the operators of Non-local's family in one model; keys max-pooled (1, 2, 2)
       as NL's for Relation and Transformer.
SlowFast presets touch the slow pathway only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Sequence

import torch.nn as nn

from videoattn.models.backbones import res_stage_paths
from videoattn.models.insert import insert_blocks
from videoattn.models.registry import get_model_entry, register_model

__all__ = ["Placement", "PRESETS", "placement_paths", "apply_placement"]

ALL = "all"


@dataclass(frozen=True)
class Placement:
    """Where one kind of block goes.

    Attributes:
        block: the block's registry name (``videoattn.blocks.list_blocks()``).
        stages: residual stage number (2..5) -> block indices in it (negative from the end), or "all".
        position: "after" the residual block, or "inside" its residual branch (see insert_blocks).
        kwargs: the block's keyword arguments.
    """

    block: str
    stages: dict[int, Sequence[int] | str]
    position: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def placement_paths(model: nn.Module, placement: Placement) -> list[str]:
    """Module paths of the residual blocks that ``placement`` selects in ``model``."""
    stages = res_stage_paths(model)
    paths = []
    for stage, indices in placement.stages.items():
        stage_path = stages[stage - 2]
        depth = len(model.get_submodule(f"{stage_path}.res_blocks"))
        chosen = range(depth) if indices == ALL else [i % depth for i in indices]
        paths += [f"{stage_path}.res_blocks.{i}" for i in chosen]
    return paths


def apply_placement(model: nn.Module, placement: Placement, **overrides: Any) -> tuple[nn.Module, list[str]]:
    """Insert ``placement``'s blocks into ``model``; ``overrides`` update the block's arguments."""
    return insert_blocks(model, placement.block, placement_paths(model, placement), position=placement.position,
                         **{**placement.kwargs, **overrides})


_NL_PLACES = {3: (1, 3), 4: (1, 3, 5)}
_NL = dict(pool_size=(1, 2, 2))
_GC = dict(ratio=1 / 16, fusions=("add",))
_SE = dict(ratio=1 / 16)
_CGNL = dict(groups=8, kernel="dot")
_LR = dict(kernel_size=(3, 7, 7), heads=8)
_RELATION = dict(heads=16, geometry_channels=64, pool_size=(1, 2, 2))
_TRANSFORMER = dict(heads=8, pool_size=(1, 2, 2))


def _r50_presets(instantiation: str) -> dict[str, Placement]:
    return {
        "nl": Placement("nl", _NL_PLACES, "after", {**_NL, "instantiation": instantiation}),
        "gc": Placement("gc", {3: ALL, 4: ALL, 5: ALL}, "inside", _GC),
        "se": Placement("se", {2: ALL, 3: ALL, 4: ALL, 5: ALL}, "inside", _SE),
        "cgnl": Placement("cgnl", {4: (-2,)}, "after", _CGNL),
        "cgnl5": Placement("cgnl", _NL_PLACES, "after", _CGNL),
        "lr": Placement("lr", _NL_PLACES, "after", _LR),
        "relation": Placement("relation", _NL_PLACES, "after", _RELATION),
        "transformer": Placement("transformer", _NL_PLACES, "after", _TRANSFORMER),
    }


# Tiny backbones (tests, the CPU demo, the ablations): one preset per block of the registry, so
# that a block added to videoattn.blocks gets i3d_tiny_<name> and i3d_probe_<name> with no change
# here. A block goes "after" the residual blocks at the tiny NL places (res3 and res4 block 0)
# unless its paper puts it elsewhere. GC goes into every res3-res5 bottleneck like GCNet, at
# GCNet's "after add" position (after the residual addition and its ReLU) rather than its default
# (after the branch's last norm): these backbones train from scratch with that norm
# zero-initialised, and there the default collapses (docs/gc_collapse.md).
_TINY_NL_PLACES = {3: (0,), 4: (0,)}
_TINY_OVERRIDES = {
    "nl": Placement("nl", _TINY_NL_PLACES, "after", {**_NL, "instantiation": "softmax"}),
    "gc": Placement("gc", {3: ALL, 4: ALL, 5: ALL}, "after", _GC),
    "se": Placement("se", {2: ALL, 3: ALL, 4: ALL, 5: ALL}, "inside", _SE),
    "cgnl": Placement("cgnl", {4: (0,)}, "after", _CGNL),
    "transformer": Placement("transformer", _TINY_NL_PLACES, "after", _TRANSFORMER),  # keys pooled as NL's
}


def _tiny_presets() -> dict[str, Placement]:
    from videoattn.blocks import list_blocks

    return {name: _TINY_OVERRIDES.get(name, Placement(name, _TINY_NL_PLACES, "after")) for name in list_blocks()}


_TINY = _tiny_presets()

# backbone -> {suffix: placement}
PRESETS: dict[str, dict[str, Placement]] = {
    "i3d_r50": _r50_presets("softmax"),
    "slow_r50": _r50_presets("dot_product"),
    "slowfast_r50": _r50_presets("dot_product"),
    "i3d_tiny": _TINY,
    "i3d_probe": _TINY,
    "slowfast_tiny": {"nl": Placement("nl", {3: (0,), 4: (0,)}, "after", {**_NL, "instantiation": "dot_product"})},
}
"""Where each preset puts its blocks: backbone -> {suffix: Placement}; ``<backbone>_<suffix>`` is a
registered model (``i3d_r50_nl``: ``PRESETS["i3d_r50"]["nl"]``)."""


def _describe(placement: Placement) -> str:
    def blocks(indices: Sequence[int] | str) -> str:
        if indices == ALL:
            return "all blocks"
        if list(indices) == [-2]:
            return "block -2 (before the last)"
        return ("block " if len(indices) == 1 else "blocks ") + ",".join(map(str, indices))

    where = "; ".join(f"res{s} {blocks(i)}" for s, i in placement.stages.items())
    extra = f" ({placement.kwargs['instantiation']})" if "instantiation" in placement.kwargs else ""
    return f"{placement.block.upper()}{extra} {placement.position} {where}"


def _build_preset(base: str, placement: Placement, /, *, num_classes: int = 400, dropout: float = 0.5, **block_overrides: Any) -> nn.Module:
    model = get_model_entry(base).builder(num_classes=num_classes, dropout=dropout)
    return apply_placement(model, placement, **block_overrides)[0]


def _register_presets() -> None:
    for backbone, presets in PRESETS.items():
        base = get_model_entry(backbone)
        for suffix, placement in presets.items():
            register_model(f"{backbone}_{suffix}", frames=base.frames, crop_size=base.crop_size,
                           description=f"{backbone} + {_describe(placement)}")(partial(_build_preset, backbone, placement))


_register_presets()
