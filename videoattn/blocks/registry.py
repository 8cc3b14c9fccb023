"""Name -> block class registry and the `make_block` factory used by the model builders."""
from __future__ import annotations

from typing import Any

from torch import nn

from videoattn.blocks.cgnl3d import CGNL3d
from videoattn.blocks.global_context3d import GlobalContext3d
from videoattn.blocks.local_relation3d import LocalRelationBlock3d
from videoattn.blocks.nonlocal3d import NonLocal3d
from videoattn.blocks.relation_module3d import RelationModule3d
from videoattn.blocks.squeeze_excite3d import SqueezeExcite3d
from videoattn.blocks.transformer_encoder3d import TransformerEncoder3d

BLOCKS: dict[str, type[nn.Module]] = {
    "nl": NonLocal3d,
    "gc": GlobalContext3d,
    "se": SqueezeExcite3d,
    "cgnl": CGNL3d,
    "lr": LocalRelationBlock3d,
    "relation": RelationModule3d,
    "transformer": TransformerEncoder3d,
}
"""The block registry: name -> class; every class takes ``(in_channels, **kwargs)`` and maps
``(N, C, T, H, W)`` to the same shape. A block added here gets its presets and its ablation row."""


def list_blocks() -> list[str]:
    """Names accepted by :func:`make_block`."""
    return list(BLOCKS)


def make_block(name: str, in_channels: int, **kwargs: Any) -> nn.Module:
    """Build block ``name`` as ``BLOCKS[name](in_channels, **kwargs)``.

    Args:
        name: one of :func:`list_blocks` ("nl", "gc", "se", "cgnl", "lr", "relation", "transformer").
        in_channels: channels C of the input.
        kwargs: the block's keyword arguments (see its class).
    """
    if name not in BLOCKS:
        raise ValueError(f"unknown block {name!r}; expected one of {', '.join(map(repr, BLOCKS))}")
    return BLOCKS[name](in_channels, **kwargs)
