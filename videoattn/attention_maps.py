"""Attention maps of Non-local and Global Context blocks, for visualisation. Forward pre-hooks
record each block's input during an ordinary forward pass; the attention is then recomputed
from that input with the block's own layers (the blocks may use fused kernels that never
materialise it). NL: for every query position, its weights over all (pooled) positions of
the clip; GC: the one query-independent softmax map over all T*H*W positions.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from videoattn.blocks import GlobalContext3d, NonLocal3d

__all__ = ["AttentionMap", "AttentionRecorder", "nonlocal_attention", "global_context_attention"]


@dataclass
class AttentionMap:
    """The attention of one block for one forward pass.

    kind: "nl" or "gc".
    weights: nl: ``[N, T, H, W, Tk, Hk, Wk]``, the weights of each query position (T, H, W) over the
        key positions (Tk, Hk, Wk: after the block's pooling), each query's weights summing to 1
        (softmax / gaussian; dot_product and concatenation are normalised by their absolute sum
        for display). gc: ``[N, T, H, W]``, summing to 1 over T*H*W.
    """

    name: str
    kind: str
    weights: torch.Tensor

    @property
    def query_grid(self) -> tuple[int, int, int]:
        return tuple(self.weights.shape[1:4])


@torch.no_grad()
def nonlocal_attention(block: NonLocal3d, x: torch.Tensor) -> torch.Tensor:
    """The affinity of ``block`` on input ``x`` (N, C, T, H, W) -> (N, T, H, W, Tk, Hk, Wk):
    :meth:`NonLocal3d.affinity`, computed by the block itself."""
    return block.affinity(x)


@torch.no_grad()
def global_context_attention(block: GlobalContext3d, x: torch.Tensor) -> torch.Tensor:
    """The context weights of ``block`` on ``x`` (N, C, T, H, W) -> (N, T, H, W), summing to 1;
    uniform for ``pooling="avg"`` (``GlobalContext3d.attention``)."""
    return block.attention(x)


class AttentionRecorder:
    """Record the attention of every NL and GC block of ``model`` during forward passes.

    >>> with AttentionRecorder(model) as rec:
    ...     model(clip)
    >>> rec.maps  # {module path: AttentionMap}, from the last forward pass
    """

    def __init__(self, model: nn.Module) -> None:
        self.blocks = {name: m for name, m in model.named_modules() if isinstance(m, (NonLocal3d, GlobalContext3d))}
        self.maps: dict[str, AttentionMap] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def _hook(self, name: str):
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].detach()
            if isinstance(module, NonLocal3d):
                self.maps[name] = AttentionMap(name, "nl", nonlocal_attention(module, x))
            else:
                self.maps[name] = AttentionMap(name, "gc", global_context_attention(module, x))

        return hook

    def __enter__(self) -> AttentionRecorder:
        if not self.blocks:
            raise ValueError("the model has no NonLocal3d or GlobalContext3d block to visualise")
        self._handles = [m.register_forward_pre_hook(self._hook(name)) for name, m in self.blocks.items()]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
