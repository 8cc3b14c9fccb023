"""Relation module (attention with a geometric prior) in space-time (3D).
Paper: Hu, Gu, Zhang, Dai, Wei, "Relation Networks for Object Detection", CVPR 2018.
https://arxiv.org/abs/1711.11575

Between the T*H*W positions of a clip instead of between object boxes. Parameter names and
numerics follow the official `attention_module_multi_head` (msracver/Relation-Networks-for-
Object-Detection, relation_rcnn/symbols): ``query``, ``key``, ``pair_pos_fc1``, ``linear_out``;
w_G enters the softmax as log(max(w_G, 1e-6)); the geometric embedding is sinusoidal with wave
length 1000. ``linear_out`` (the reference's grouped 1x1 conv applied to each head's aggregate of
the input features) is applied to the features before the aggregation instead: it is linear and
the weights of each head sum to 1, so the result is the same, at 1/heads of the cost.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from videoattn.blocks._checks import check_choice, check_input, check_positive
from videoattn.blocks._pointwise import pointwise_conv

IMPLS = ("auto", "matmul", "chunked", "sdpa")
WAVE_LENGTH = 1000.0
MIN_GEOMETRY_WEIGHT = 1e-6  # the reference's floor of w_G before the log
# Logits per chunk (all heads and clips): 2**22 floats = 16 MiB, the fastest of 2**20, 2**22, 2**24 at
# res3 of I3D-R50. scripts/bench_blocks.py (CPU, 1 thread, batch 2, forward + backward, medians of
# 7): the chunked path took 3.31 s at res3 (16 heads x 6272 x 1568 logits per clip) against 5.60 s
# for matmul and 5.55 s for SDPA with the bias as a float mask (both 16x its peak memory), and
# 0.46 s against 0.58 s and 0.57 s at res4 (16 x 1568 x 392). Below 2**22 logits per clip the plain
# matmul is used (small inputs; no Python loop).
CHUNK_ELEMENTS = 2**22
MIN_CHUNKED_LOGITS = 2**22


def sine_embedding(offsets: torch.Tensor, channels: int, wave_length: float = WAVE_LENGTH) -> torch.Tensor:
    """E_G: (M, 3) offsets (dt, dy, dx) -> (M, channels). Per axis a block [sin(d w_i), cos(d w_i)],
    w_i = wave_length ** (-i / F_a), i < F_a; the channels / 2 frequencies are shared out over the
    three axes, spatial ones first (64 channels: 10 for t, 11 for y, 11 for x)."""
    pairs = channels // 2
    counts = [pairs // 3 + (1 if a >= 3 - pairs % 3 else 0) for a in range(3)]  # t gets the fewest
    parts = []
    for axis, count in enumerate(counts):
        freqs = wave_length ** (-torch.arange(count, dtype=offsets.dtype, device=offsets.device) / count)
        angle = offsets[:, axis : axis + 1] * freqs  # (M, F_a)
        parts += [angle.sin(), angle.cos()]
    return torch.cat(parts, dim=1)


def _axis_offsets(size: int, pooled: int, stride: int, device) -> torch.Tensor:
    """Offsets key - query along one axis, indexed by stride * j - i + size - 1 (keys at the centres
    of the pooled cells, in input positions)."""
    return torch.arange(stride * (pooled - 1) + size, device=device) - (size - 1) + (stride - 1) / 2


class _RelationAttention(torch.autograd.Function):
    """Softmax attention with a gathered additive bias, queries in chunks, logits never stored:
    ``y = softmax(q k^T + table[:, A_i + B_j]) v``; backward recomputes each chunk."""

    @staticmethod
    def forward(ctx, q, k, v, table, index_q, index_k):
        # q (N, G, L, D) pre-scaled, k (N, G, Np, D), v (N, G, Np, Dv), table (G, M); -> y (N, G, L, Dv)
        chunk = max(1, CHUNK_ELEMENTS // (q.shape[0] * q.shape[1] * k.shape[2]))
        y = q.new_empty(*q.shape[:3], v.shape[3])
        kt = k.transpose(2, 3)
        for i in range(0, q.shape[2], chunk):
            rows = slice(i, i + chunk)
            bias = _gather(table, index_q[rows], index_k)  # (G, c, Np), shared by the clips
            p = torch.softmax(torch.matmul(q[:, :, rows], kt).add_(bias), dim=-1)  # (N, G, c, Np)
            torch.matmul(p, v, out=y[:, :, rows])
        ctx.save_for_backward(q, k, v, table, index_q, index_k, y)
        ctx.chunk = chunk
        return y

    @staticmethod
    def backward(ctx, dy):
        q, k, v, table, index_q, index_k, y = ctx.saved_tensors
        dy = dy.contiguous()
        dq, dk, dv, dtable = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v), torch.zeros_like(table)
        delta = (dy * y).sum(-1, keepdim=True)  # sum_j p_j dp_j = dy . y, (N, G, L, 1)
        kt, vt = k.transpose(2, 3), v.transpose(2, 3)
        for i in range(0, q.shape[2], ctx.chunk):
            rows = slice(i, i + ctx.chunk)
            index = (index_q[rows, None] + index_k[None, :]).view(-1)
            bias = table.index_select(1, index).view(table.shape[0], -1, k.shape[2])
            p = torch.softmax(torch.matmul(q[:, :, rows], kt).add_(bias), dim=-1)  # recomputed
            dy_c = dy[:, :, rows]
            dv += torch.matmul(p.transpose(2, 3), dy_c)  # (N, G, Np, c) x (N, G, c, Dv)
            ds = torch.matmul(dy_c, vt).sub_(delta[:, :, rows]).mul_(p)  # softmax backward
            dtable.index_add_(1, index, ds.sum(0).view(table.shape[0], -1))
            torch.matmul(ds, k, out=dq[:, :, rows])
            dk += torch.matmul(ds.transpose(2, 3), q[:, :, rows])
        return dq, dk, dv, dtable, None, None


def _gather(table: torch.Tensor, index_q: torch.Tensor, index_k: torch.Tensor) -> torch.Tensor:
    """table[:, index_q[i] + index_k[j]]: (G, M) -> (G, Lq, Lk)."""
    index = (index_q[:, None] + index_k[None, :]).view(-1)
    return table.index_select(1, index).view(table.shape[0], index_q.shape[0], index_k.shape[0])


class RelationModule3d(nn.Module):
    """Relation module: ``out = x + concat_h(f_R^h)``,
    ``f_R^h(n) = sum_m w_h^{mn} (W_V^h x_m)``,
    ``w_h^{mn} = w_G^{mn} exp(w_A^{mn}) / sum_k w_G^{kn} exp(w_A^{kn})``, with
    ``w_A = <W_K x_m, W_Q x_n> / sqrt(d_k)`` per head and ``w_G = max(0, W_G . E_G(p_m - p_n))``,
    E_G the sinusoidal embedding of the space-time offset (dt, dy, dx) from query n to key m.

    Args:
        in_channels: channels C of the input; a multiple of ``heads``.
        heads: N_r, the number of relation heads (paper: 16).
        key_channels: channels of ``query`` and ``key`` (1x1x1 convs), split over the heads; a
            multiple of ``heads`` (default C // 2, rounded down to a multiple of ``heads``).
        geometry_channels: d_g, channels of E_G (paper: 64); even, at least 6.
        pool_size: max-pool kernel (= stride) over (T, H, W) on x before ``key`` and ``linear_out``
            (as NonLocal3d); keys sit at the pooled cells' centres. None or (1, 1, 1): no pooling.
        impl: ``"matmul"`` materialises the (heads x L x Np) logits; ``"chunked"`` never stores them
            (queries in chunks, recomputed in backward); ``"sdpa"``: fused attention with the
            geometric term as an additive float mask (materialised); ``"auto"``: sdpa on GPUs, on
            the CPU matmul below 2**22 logits per clip and chunked from there (measured,
            scripts/bench_blocks.py). Results are equal up to float rounding.

    ``linear_out`` (W_V of all heads, C -> C) is zero-initialised: the block starts as the identity.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        heads: int = 16,
        key_channels: int | None = None,
        geometry_channels: int = 64,
        pool_size: Sequence[int] | None = (1, 2, 2),
        impl: str = "auto",
    ) -> None:
        super().__init__()
        block = "RelationModule3d"
        check_positive("in_channels", in_channels, block)
        check_positive("heads", heads, block)
        if key_channels is None:  # C / 2, rounded down to a multiple of heads (at least heads)
            key_channels = max(heads, in_channels // 2 // heads * heads)
        check_positive("key_channels", key_channels, block)
        check_positive("geometry_channels", geometry_channels, block)
        if in_channels % heads or key_channels % heads:
            raise ValueError(f"{block}: heads={heads} must divide in_channels={in_channels} and key_channels={key_channels}")
        if geometry_channels % 2 or geometry_channels < 6:
            raise ValueError(f"{block}: geometry_channels must be even and at least 6 (sin and cos per axis), got {geometry_channels}")
        pool_size = (1, 1, 1) if pool_size is None else tuple(pool_size)
        if len(pool_size) != 3 or not all(isinstance(s, int) and s >= 1 for s in pool_size):
            raise ValueError(f"{block}: pool_size must be three positive ints (T, H, W), got {pool_size!r}")
        self.impl = check_choice("impl", impl, IMPLS, block)
        self.in_channels, self.heads, self.key_channels = in_channels, heads, key_channels
        self.geometry_channels, self.pool_size = geometry_channels, pool_size

        self.query = nn.Conv3d(in_channels, key_channels, kernel_size=1)
        self.key = nn.Conv3d(in_channels, key_channels, kernel_size=1)
        self.pair_pos_fc1 = nn.Linear(geometry_channels, heads)
        self.linear_out = nn.Conv3d(in_channels, in_channels, kernel_size=1)
        self.pool = nn.MaxPool3d(pool_size, stride=pool_size) if any(s > 1 for s in pool_size) else None
        nn.init.zeros_(self.linear_out.weight)
        nn.init.zeros_(self.linear_out.bias)

    def geometry_table(self, size: Sequence[int], pooled: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log(max(w_G, 1e-6)) for every offset between a (T, H, W) query grid and its pooled key
        grid: the table (heads, M) and index vectors (L,), (Np,) with table[:, A_n + B_m] the term of
        query n and key m."""
        device = self.pair_pos_fc1.weight.device
        axes = [_axis_offsets(n, m, s, device) for n, m, s in zip(size, pooled, self.pool_size)]
        offsets = torch.cartesian_prod(*axes)  # (M, 3), row-major over (t, y, x)
        w_g = F.relu(self.pair_pos_fc1(sine_embedding(offsets.to(self.pair_pos_fc1.weight.dtype), self.geometry_channels)))
        table = w_g.clamp(min=MIN_GEOMETRY_WEIGHT).log().t()  # (heads, M)
        _, ny, nx = (len(a) for a in axes)

        def flat(t: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return ((t[:, None, None] * ny + y[None, :, None]) * nx + x[None, None, :]).flatten()

        ar = [torch.arange(n, device=device) for n in size]
        index_q = flat(*(n - 1 - a for n, a in zip(size, ar)))  # -i + (n - 1) per axis
        index_k = flat(*(s * torch.arange(m, device=device) for s, m in zip(self.pool_size, pooled)))  # s j
        return table, index_q, index_k

    def _pick_impl(self, device: torch.device, logits: int) -> str:
        if self.impl != "auto":
            return self.impl
        if device.type != "cpu":
            return "sdpa"
        return "chunked" if logits >= MIN_CHUNKED_LOGITS else "matmul"

    def affinity(self, x: torch.Tensor) -> torch.Tensor:
        """The relation weights w_h^{mn}: (N, heads, T*H*W queries n, Np keys m). No gradient."""
        with torch.no_grad():
            q, k, _, table, index_q, index_k = self._inputs(x)
            return torch.softmax(torch.matmul(q, k.transpose(2, 3)) + _gather(table, index_q, index_k), dim=-1)

    def _inputs(self, x: torch.Tensor):
        check_input(x, self.in_channels, "RelationModule3d")
        n, heads = x.shape[0], self.heads
        pooled = self.pool(x) if self.pool is not None else x
        table, index_q, index_k = self.geometry_table(x.shape[2:], pooled.shape[2:])
        # (N, C', L) -> (N, heads, L, C' / heads); the CPU kernels want a contiguous last dim
        q, k, v = (
            z.view(n, heads, -1, z.shape[-1]).transpose(2, 3).contiguous()
            for z in (pointwise_conv(self.query, x), pointwise_conv(self.key, pooled), pointwise_conv(self.linear_out, pooled))
        )
        q = q * (self.key_channels // heads) ** -0.5
        return q, k, v, table.to(q.dtype), index_q, index_k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v, table, index_q, index_k = self._inputs(x)
        n, heads, length, num_keys = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
        impl = self._pick_impl(x.device, heads * length * num_keys)
        if impl == "chunked":
            with torch.autocast(x.device.type, enabled=False):
                y = _RelationAttention.apply(q, k.to(q.dtype), v.to(q.dtype), table, index_q, index_k)
        else:
            bias = _gather(table, index_q, index_k)  # (heads, L, Np)
            if impl == "sdpa":
                y = F.scaled_dot_product_attention(q, k, v.to(q.dtype), attn_mask=bias.unsqueeze(0).to(q.dtype), scale=1.0)
            else:
                # (N, h, L, d) x (N, h, d, Np) => (N, h, L, Np); (N, h, L, Np) x (N, h, Np, Dv) => (N, h, L, Dv)
                y = torch.matmul(torch.softmax(torch.matmul(q, k.transpose(2, 3)) + bias, dim=-1), v.to(q.dtype))
        # (N, heads, L, C / heads) -> (N, C, T, H, W)
        return x + y.transpose(2, 3).reshape(n, -1, *x.shape[2:]).to(x.dtype)

    def extra_repr(self) -> str:
        return (f"heads={self.heads}, key_channels={self.key_channels}, geometry_channels={self.geometry_channels}, "
                f"pool_size={self.pool_size}, impl={self.impl!r}")
