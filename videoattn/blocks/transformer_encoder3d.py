"""DETR's Transformer encoder layer over the T*H*W positions of a clip, as a residual block.
Paper: Carion, Massa, Synnaeve, Usunier, Kirillov, Zagoruyko, "End-to-End Object Detection with
Transformers", ECCV 2020. https://arxiv.org/abs/2005.12872

Parameter names and numerics follow facebookresearch/detr: ``input_proj`` (the 1x1 conv from the
backbone's channels to d_model), the encoder layer ``self_attn`` (nn.MultiheadAttention),
``linear1``, ``linear2``, ``norm1``, ``norm2`` with ``forward_post`` (post-norm, the positional
encoding added to queries and keys, not to values), and the sine encoding of
``PositionEmbeddingSine(normalize=True)`` extended to (t, y, x). DETR's encoder layer ends with a
LayerNorm, so it cannot start as the identity; the block adds its output to the input through
``conv_out`` (d_model -> C), zero-initialised: ``out = x + conv_out(encoder_layer(input_proj(x)))``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from videoattn.blocks._checks import check_input, check_positive
from videoattn.blocks._pointwise import pointwise_conv

TEMPERATURE = 10000.0  # DETR's PositionEmbeddingSine defaults: temperature 10000, scale 2 pi
SCALE = 2 * math.pi


def position_channels(channels: int) -> tuple[int, int, int]:
    """Channels of the (t, y, x) parts of the encoding: even, y and x equal, t the rest
    (256 -> 84, 86, 86)."""
    spatial = 2 * ((channels - 2 * (channels // 6)) // 4)
    return channels - 2 * spatial, spatial, spatial


def _sine(coords: torch.Tensor, feats: int) -> torch.Tensor:
    """DETR's per-axis encoding: (..., ) positions -> (..., feats) [sin, cos interleaved]."""
    dim_t = torch.arange(feats, dtype=torch.float32, device=coords.device)
    dim_t = TEMPERATURE ** (2 * (dim_t // 2) / feats)
    pos = coords[..., None] / dim_t
    return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1).flatten(-2)


def sine_position_encoding(size: Sequence[int], channels: int, *, extent: Sequence[int] | None = None,
                           stride: Sequence[int] = (1, 1, 1), device=None) -> torch.Tensor:
    """3D sine encoding (T*H*W, channels) of a (T, H, W) grid, rows in (t, y, x) order, channels
    [t | y | x] (see :func:`position_channels`). As DETR's PositionEmbeddingSine(normalize=True):
    position p = 1..n along an axis, encoded as p / n * 2 pi; for a grid pooled with ``stride`` from
    an ``extent`` (the unpooled size), a cell sits at the centre of the positions it covers."""
    extent = size if extent is None else extent
    parts = []
    for n, e, s, feats in zip(size, extent, stride, position_channels(channels)):
        centre = s * torch.arange(n, dtype=torch.float32, device=device) + (s + 1) / 2  # 1..n without pooling
        parts.append(_sine(centre / (e + 1e-6) * SCALE, feats) if feats else centre.new_zeros(n, 0))
    t, y, x = parts
    # (T, 1, 1, ft) | (1, H, 1, fy) | (1, 1, W, fx) => (T, H, W, channels)
    size_t, size_h, size_w = size
    grid = torch.cat([
        t[:, None, None].expand(-1, size_h, size_w, -1),
        y[None, :, None].expand(size_t, -1, size_w, -1),
        x[None, None, :].expand(size_t, size_h, -1, -1),
    ], dim=-1)
    return grid.flatten(0, 2)


class TransformerEncoder3d(nn.Module):
    """``out = x + conv_out(E(input_proj(x)))``, E DETR's post-norm encoder layer on the T*H*W tokens:
    ``y = norm1(s + attn(s + pos, s + pos, s))``, ``E(s) = norm2(y + linear2(relu(linear1(y))))``.

    Args:
        in_channels: channels C of the input.
        heads: attention heads (DETR: 8); must divide inner_channels.
        inner_channels: d_model, the width of the tokens; even and a multiple of ``heads``
            (default C // 4 rounded down to such a number; DETR projects its 2048 channels to 256).
        ffn_channels: hidden width of the feed-forward network (default 4 * d_model = C; DETR:
            8 * d_model = 2048).
        dropout: DETR's dropout (attention weights, FFN, both residual branches); 0 by default.
        pool_size: max-pool kernel (= stride) over (T, H, W) on the tokens before keys and values
            (as NonLocal3d); keys are encoded at the pooled cells' centres. None: DETR, every token
            attends to every token.

    The defaults keep the block cheaper than a NonLocal3d (inner width C / 2) at the I3D-R50 res3
    and res4 sizes (scripts/bench_blocks.py, docs/benchmarks/blocks.md).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        heads: int = 8,
        inner_channels: int | None = None,
        ffn_channels: int | None = None,
        dropout: float = 0.0,
        pool_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        block = "TransformerEncoder3d"
        check_positive("in_channels", in_channels, block)
        check_positive("heads", heads, block)
        if inner_channels is None:  # C / 4, rounded down to an even multiple of heads
            step = heads if heads % 2 == 0 else 2 * heads
            inner_channels = max(step, in_channels // 4 // step * step)
        d_model = inner_channels
        check_positive("inner_channels", d_model, block)
        ffn_channels = 4 * d_model if ffn_channels is None else ffn_channels
        check_positive("ffn_channels", ffn_channels, block)
        if d_model % heads or d_model % 2:
            raise ValueError(f"{block}: inner_channels={d_model} must be even and a multiple of heads={heads}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"{block}: dropout must be a number in [0, 1), got {dropout!r}")
        pool_size = (1, 1, 1) if pool_size is None else tuple(pool_size)
        if len(pool_size) != 3 or not all(isinstance(s, int) and s >= 1 for s in pool_size):
            raise ValueError(f"{block}: pool_size must be three positive ints (T, H, W), got {pool_size!r}")
        self.in_channels, self.inner_channels, self.heads, self.dropout_p = in_channels, d_model, heads, float(dropout)
        self.pool_size = pool_size

        self.input_proj = nn.Conv3d(in_channels, d_model, kernel_size=1)
        self.self_attn = nn.MultiheadAttention(d_model, heads, dropout=dropout)
        self.linear1 = nn.Linear(d_model, ffn_channels)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn_channels, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.pool = nn.MaxPool3d(pool_size, stride=pool_size) if any(s > 1 for s in pool_size) else None
        self.conv_out = nn.Conv3d(d_model, in_channels, kernel_size=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # DETR's Transformer._reset_parameters: xavier_uniform_ on every matrix of the encoder layer
        for layer in (self.self_attn, self.linear1, self.linear2):
            for p in layer.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def position_encoding(self, size: Sequence[int], *, pooled: bool = False, device=None) -> torch.Tensor:
        """Sine encoding (L, d_model) of the query grid of an input of size (T, H, W), or of its
        pooled key grid."""
        if not pooled or self.pool is None:
            return sine_position_encoding(size, self.inner_channels, device=device)
        out = [n // s for n, s in zip(size, self.pool_size)]
        return sine_position_encoding(out, self.inner_channels, extent=size, stride=self.pool_size, device=device)

    def _attention(self, src: torch.Tensor, pos: torch.Tensor, keys: torch.Tensor, pos_k: torch.Tensor) -> torch.Tensor:
        """nn.MultiheadAttention(src + pos, keys + pos_k, keys) with its own weights, batch first and
        fused: src (N, L, d), keys (N, Np, d) -> (N, L, d)."""
        n, d, heads = src.shape[0], self.inner_channels, self.heads
        w_q, w_k, w_v = self.self_attn.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.self_attn.in_proj_bias.chunk(3)
        # (N, L, d) -> (N, heads, L, d / heads); the CPU flash kernel needs a contiguous last dim
        q, k, v = (
            F.linear(z, w, b).view(n, -1, heads, d // heads).transpose(1, 2).contiguous()
            for z, w, b in ((src + pos, w_q, b_q), (keys + pos_k, w_k, b_k), (keys, w_v, b_v))
        )
        drop = self.self_attn.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)  # (N, heads, L, d / heads)
        return self.self_attn.out_proj(y.transpose(1, 2).reshape(n, -1, d))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder layer's output tokens (N, T*H*W, d_model) (DETR's ``forward_post``)."""
        check_input(x, self.in_channels, "TransformerEncoder3d")
        n, size = x.shape[0], x.shape[2:]
        tokens = pointwise_conv(self.input_proj, x)  # (N, d, L)
        pos = self.position_encoding(size, device=x.device).to(tokens.dtype)  # (L, d)
        if self.pool is not None:
            # (N, d, L) -> (N, d, T, H, W) -> pooled (N, d, Np)
            keys = self.pool(tokens.view(n, -1, *size)).flatten(2).transpose(1, 2)
            pos_k = self.position_encoding(size, pooled=True, device=x.device).to(tokens.dtype)
        else:
            keys, pos_k = None, pos
        src = tokens.transpose(1, 2)  # (N, L, d)
        src2 = self._attention(src, pos, src if keys is None else keys, pos_k)
        src = self.norm1(src + self.dropout1(src2))
        src2 = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout2(src2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.encode(x)  # (N, L, d)
        out = pointwise_conv(self.conv_out, y.transpose(1, 2))  # (N, d, L) -> (N, C, L)
        return x + out.view_as(x).to(x.dtype)

    def extra_repr(self) -> str:
        return f"inner_channels={self.inner_channels}, heads={self.heads}, pool_size={self.pool_size}"
