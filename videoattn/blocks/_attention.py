"""Memory-lean softmax attention for the Non-local block on the CPU: queries are processed in
chunks and the (L x Np) affinity is never stored; backward recomputes each chunk's softmax
(the FlashAttention recipe, arXiv 2205.14135, at the granularity of BLAS matmuls).
Tensors stay channels-first, as the 1x1x1 convs produce them: no transposed copies, and the
output is already (B, Dv, L) for conv_out. Tuned on the CPU: NonLocal3d runs it only when asked
(``impl="chunked"``), never by its automatic choice; on GPUs fused SDPA kernels do this work.
"""
from __future__ import annotations

import torch

# Affinity entries per chunk and batch item: 2**19 floats = 2 MiB, measured on a 2-core AVX-512
# CPU at the I3D-R50 res3 and res4 sizes (scripts/bench_blocks.py).
CHUNK_ELEMENTS = 2**19


def query_chunk(num_queries: int, num_keys: int) -> int:
    return max(1, min(num_queries, CHUNK_ELEMENTS // max(1, num_keys)))


def _chunk_softmax(q: torch.Tensor, k: torch.Tensor, rows: slice, scale: float) -> torch.Tensor:
    # (B, D, c)^T x (B, D, Np) => (B, c, Np), softmax over the keys
    return torch.softmax(torch.bmm(q[:, :, rows].transpose(1, 2), k).mul_(scale), dim=-1)


class _ChunkedSoftmaxAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        # q (B, D, L), k (B, D, Np), v (B, Dv, Np) -> y (B, Dv, L)
        chunk = query_chunk(q.shape[2], k.shape[2])
        y = q.new_empty(q.shape[0], v.shape[1], q.shape[2])
        for i in range(0, q.shape[2], chunk):
            rows = slice(i, i + chunk)
            # (B, Dv, Np) x (B, Np, c) => (B, Dv, c)
            torch.bmm(v, _chunk_softmax(q, k, rows, scale).transpose(1, 2), out=y[:, :, rows])
        ctx.save_for_backward(q, k, v)
        ctx.scale = scale
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        q, k, v = ctx.saved_tensors
        scale, chunk = ctx.scale, query_chunk(q.shape[2], k.shape[2])
        dq, dk, dv = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
        for i in range(0, q.shape[2], chunk):
            rows = slice(i, i + chunk)
            p = _chunk_softmax(q, k, rows, scale)  # (B, c, Np), recomputed
            dy_c = dy[:, :, rows]  # (B, Dv, c)
            dv.baddbmm_(dy_c, p)  # (B, Dv, c) x (B, c, Np)
            # softmax backward: ds = p * (dp - sum_j p_j dp_j)
            ds = torch.bmm(dy_c.transpose(1, 2), v).mul_(p)  # (B, c, Dv) x (B, Dv, Np), then * p
            ds.addcmul_(p, ds.sum(-1, keepdim=True), value=-1.0)
            torch.bmm(k, ds.transpose(1, 2), out=dq[:, :, rows])  # (B, D, Np) x (B, Np, c)
            dk.baddbmm_(q[:, :, rows], ds)  # (B, D, c) x (B, c, Np)
        return dq.mul_(scale), dk.mul_(scale), dv, None


def chunked_softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """``y[:, :, i] = sum_j softmax_j(q_i . k_j * scale) v[:, :, j]`` for q (B, D, L), k (B, D, Np),
    v (B, Dv, Np) -> y (B, Dv, L), in q's dtype (autocast is resolved by the caller's projections),
    without storing the (L x Np) affinity."""
    with torch.autocast(q.device.type, enabled=False):
        return _ChunkedSoftmaxAttention.apply(q, k.to(q.dtype), v.to(q.dtype), scale)
