"""FLOP and parameter counting with fvcore, as pytorchvideo's model zoo counts
(one multiply-add = one FLOP), and the model card: the cost of each inserted block.
fvcore counts 0 for several ops our blocks use; handles here count them:
scaled_dot_product_attention, baddbmm, the blocks' custom autograd Functions (1x1x1
convs as GEMMs, chunked softmax attention, the Relation module's chunked attention), the
Local Relation op, and broadcast matmul (fvcore's handle drops the broadcast batch
dimensions). A custom op without a handle raises a warning.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any, Sequence

import torch
import torch.nn as nn
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import get_shape

import warnings

from videoattn.blocks._attention import _ChunkedSoftmaxAttention
from videoattn.blocks._pointwise import _PointwiseConv
from videoattn.blocks.relation_module3d import _RelationAttention
from videoattn.models.insert import Inserted
from videoattn.models.registry import get_model_entry

__all__ = ["BlockCost", "ModelCard", "EXTRA_HANDLES", "flop_counter", "model_inputs", "model_card"]


def sdpa_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """scaled_dot_product_attention: q k^T and (attention) v."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    # q (..., L, E), k (..., S, E), v (..., S, Ev) -> (..., L, Ev)
    return prod(q[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])


def channels_first_attention_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """The blocks' chunked softmax attention: q (B, D, L), k (B, D, Np), v (B, Dv, Np) -> (B, Dv, L)."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    return q[0] * q[2] * k[2] * (q[1] + v[1])


def pointwise_conv_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """The blocks' 1x1x1 conv as a GEMM: x (N, C, L), weight (C_out, C) -> (N, C_out, L)."""
    x, w = get_shape(inputs[0]), get_shape(inputs[1])
    return x[0] * x[1] * x[2] * w[0]


def relation_attention_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """RelationModule3d's chunked attention: q (N, G, L, D), k (N, G, Np, D), v (N, G, Np, Dv)."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    return q[0] * q[1] * q[2] * k[2] * (q[3] + v[3])


def local_relation_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """The Local Relation op: per output position and neighbour (K of them), the composability
    over the head's key channels and the aggregation of its value channels.
    query (N, G, D, To, Ho, Wo), value (N, G, Cg, ...), geometry (G, K)."""
    q, v, geometry = get_shape(inputs[0]), get_shape(inputs[2]), get_shape(inputs[3])
    return prod(q[:2]) * prod(q[3:]) * geometry[1] * (q[2] + v[2])


def baddbmm_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """baddbmm(input, b1, b2): b1 (B, N, M) x b2 (B, M, P)."""
    b1, b2 = get_shape(inputs[1]), get_shape(inputs[2])
    return b1[0] * b1[1] * b1[2] * b2[2]


def matmul_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """matmul with broadcasting: (..., N, M) x (..., M, P) -> (..., N, P)."""
    a, b = get_shape(inputs[0]), get_shape(inputs[1])
    if len(a) == 1 or len(b) == 1:  # vector products
        return prod(a) * (b[-1] if len(b) > 1 else 1)
    out = get_shape(outputs[0])
    return prod(out) * a[-1]


EXTRA_HANDLES = {
    "aten::scaled_dot_product_attention": sdpa_flop_jit,
    f"prim::PythonOp.{_ChunkedSoftmaxAttention.__name__}": channels_first_attention_flop_jit,
    f"prim::PythonOp.{_PointwiseConv.__name__}": pointwise_conv_flop_jit,
    f"prim::PythonOp.{_RelationAttention.__name__}": relation_attention_flop_jit,
    "videoattn::local_relation": local_relation_flop_jit,
    "aten::baddbmm": baddbmm_flop_jit,
    "aten::matmul": matmul_flop_jit,
}


def flop_counter(model: nn.Module, inputs: torch.Tensor | Sequence[torch.Tensor]) -> FlopCountAnalysis:
    """fvcore FlopCountAnalysis of ``model(inputs)`` with EXTRA_HANDLES, quiet about the ops
    it does not count (element-wise ops, softmax, pooling: pytorchvideo's convention)."""
    counter = FlopCountAnalysis(model, (inputs,))
    counter.set_op_handle(**EXTRA_HANDLES)
    counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    counter.total()  # runs the trace once; later queries reuse it
    custom = sorted(op for op in counter.unsupported_ops() if op.startswith("prim::PythonOp"))
    if custom:
        warnings.warn(f"FLOPs undercounted: no handle for the custom ops {', '.join(custom)} "
                      "(add one to videoattn.models.flops.EXTRA_HANDLES)", stacklevel=2)
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
