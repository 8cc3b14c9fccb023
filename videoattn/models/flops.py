# FLOP and parameter counting with fvcore, as pytorchvideo's model zoo counts
# (one multiply-add = one FLOP), with a handle for scaled_dot_product_attention
# (fvcore counts it as 0), and the model card: the cost of each inserted block.
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any, Sequence

import torch
import torch.nn as nn
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import get_shape

from videoattn.models.insert import Inserted
from videoattn.models.registry import get_model_entry

__all__ = ["BlockCost", "ModelCard", "sdpa_flop_jit", "flop_counter", "model_inputs", "model_card"]


def sdpa_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """FLOPs of scaled_dot_product_attention: q k^T and (attention) v, multiply-adds."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    # q (..., L, E), k (..., S, E), v (..., S, Ev) -> (..., L, Ev)
    batch = prod(q[:-2])
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def flop_counter(model: nn.Module, inputs: torch.Tensor | Sequence[torch.Tensor]) -> FlopCountAnalysis:
    """fvcore FlopCountAnalysis of ``model(inputs)`` with the SDPA handle, quiet about
    ops it does not count (element-wise ops, pooling: pytorchvideo's convention)."""
    counter = FlopCountAnalysis(model, (inputs,))
    counter.set_op_handle("aten::scaled_dot_product_attention", sdpa_flop_jit)
    counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return counter


def model_inputs(name: str, *, batch: int = 1, frames: Sequence[int] | None = None, crop_size: int | None = None) -> torch.Tensor | list[torch.Tensor]:
    """Zero input at the recipe's size of registered model ``name``: ``(N, 3, T, S, S)``,
    or ``[slow, fast]`` for two-pathway models."""
    entry = get_model_entry(name)
    frames = tuple(entry.frames if frames is None else frames)
    size = entry.crop_size if crop_size is None else crop_size
    clips = [torch.zeros(batch, 3, t, size, size) for t in frames]
    return clips[0] if len(clips) == 1 else clips


@dataclass(frozen=True)
class BlockCost:
    path: str
    block: str
    params: int
    flops: int


@dataclass(frozen=True)
class ModelCard:
    name: str
    input_shape: str
    params: int
    flops: int
    blocks: list[BlockCost]


def model_card(name: str, *, num_classes: int = 400, frames: Sequence[int] | None = None, crop_size: int | None = None) -> ModelCard:
    """Parameters and FLOPs (one view at the recipe's input) of model ``name`` and of each inserted block."""
    from videoattn.models import create_model  # local: the package imports this module's siblings

    model = create_model(name, num_classes=num_classes).eval()
    inputs = model_inputs(name, frames=frames, crop_size=crop_size)
    with torch.no_grad():
        counter = flop_counter(model, inputs)
        by_module = counter.by_module()
        total = counter.total()
    blocks = [
        BlockCost(path, type(m.block).__name__, sum(p.numel() for p in m.block.parameters()), int(by_module.get(f"{path}.block", 0)))
        for path, m in model.named_modules() if isinstance(m, Inserted)
    ]
    shapes = inputs if isinstance(inputs, list) else [inputs]
    shape = " + ".join("x".join(map(str, t.shape[2:])) for t in shapes)
    return ModelCard(name, shape, sum(p.numel() for p in model.parameters()), int(total), blocks)
