"""Local Relation layer in space-time (3D), and the `lr` block that inserts it as a residual.
Paper: Hu, Zhang, Xie, Lin, "Local Relation Networks for Image Recognition", ICCV 2019.
https://arxiv.org/abs/1904.11491

What the paper leaves out follows the official CUDA op (microsoft/Swin-Transformer, branch LR-Net,
ops/local_relation): a neighbour outside the input takes no part in the softmax (the op gives it
a -100 logit; here its weight is exactly 0, not the weight of a zero-padded pixel); the key, query
and aggregated channels are split into contiguous groups, one per head; with a stride the queries
sit on the strided grid while keys and values are read at the input resolution.

The core (composability, geometry prior, softmax, aggregation) is one custom op,
``videoattn::local_relation``, with a hand-written backward: one pass per neighbourhood offset,
so memory is linear in T*H*W (no k_t*k*k-fold im2col copy of the input), the op stays opaque to
torch.compile (no 147-step unrolled graph), and FLOP counters see it by name. On maps not much
larger than the neighbourhood (T*H*W at most DENSE_FACTOR times its K offsets: the res3 and res4
of tiny models, where most of a 3x7x7 neighbourhood is padding), the op computes the same weights
as one dense (T*H*W)^2 matrix per head instead (batched matmuls in place of K strided passes;
memory at most DENSE_FACTOR times the windowed one, times the key channels per head for the
squared difference, so still linear in T*H*W). FLOP counts are
the operator's (K neighbours per position) whichever path runs.
"""
from __future__ import annotations

import itertools
import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from videoattn.blocks._checks import check_choice, check_input, check_positive

COMPOSABILITIES = ("squared_difference", "dot")
IMPLS = ("auto", "window", "dense")
# "auto" computes densely while T*H*W <= DENSE_FACTOR * K. scripts/bench_lr_paths.py (CPU, one thread,
# forward + backward, C 128, 8 heads), window / dense time: 3x7x7 at T*H*W / K = 0.87, 1.96, 3.48,
# 5.44, 7.84: 5.03, 3.52, 1.23, 0.86, 0.56; 1x7x7 at 1.31, 2.94, 4.00, 8.16: 2.61, 1.28, 0.71, 0.41.
DENSE_FACTOR = 3


def _triple(value: int | Sequence[int], name: str, block: str) -> tuple[int, int, int]:
    triple = (value,) * 3 if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(triple) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in triple):
        raise ValueError(f"{block}: {name} must be a positive int or three positive ints (T, H, W), got {value!r}")
    return triple  # type: ignore[return-value]


def _windows(kernel: Sequence[int], stride: Sequence[int], out: Sequence[int]) -> list[tuple[slice, slice, slice]]:
    """For each offset of the neighbourhood (row-major over kt, kh, kw): the slices of the padded
    (T, H, W) grid that hold that neighbour of every output position."""
    return [
        tuple(slice(d, d + s * (o - 1) + 1, s) for d, s, o in zip(offset, stride, out))
        for offset in itertools.product(*(range(k) for k in kernel))
    ]


def _valid(kernel: Sequence[int], stride: Sequence[int], out: Sequence[int], size: Sequence[int], device) -> torch.Tensor:
    """(K, To, Ho, Wo) bool: neighbour k of output position p lies inside the (unpadded) input."""
    axes = []
    for k, s, o, n in zip(kernel, stride, out, size):
        pos = s * torch.arange(o, device=device)[None, :] + torch.arange(k, device=device)[:, None] - k // 2  # (k, o)
        axes.append((pos >= 0) & (pos < n))
    vt, vh, vw = axes
    # (kt, 1, 1, To, 1, 1) & (1, kh, 1, 1, Ho, 1) & (1, 1, kw, 1, 1, Wo) => (kt, kh, kw, To, Ho, Wo)
    valid = vt[:, None, None, :, None, None] & vh[None, :, None, None, :, None] & vw[None, None, :, None, None, :]
    return valid.flatten(0, 2)


def _neighbours(kernel: Sequence[int], stride: Sequence[int], out: Sequence[int], size: Sequence[int], device) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, Po) flat index into the unpadded (T, H, W) input of neighbour k of output position p
    (0 where it lies outside), and the (K, Po) bool mask of the neighbours inside."""
    coords = []
    for k, s, o in zip(kernel, stride, out):
        coords.append(s * torch.arange(o, device=device)[None, :] + torch.arange(k, device=device)[:, None] - k // 2)
    (ct, ch, cw), (nt, nh, nw) = coords, size
    flat = (ct[:, None, None, :, None, None] * nh + ch[None, :, None, None, :, None]) * nw + cw[None, None, :, None, None, :]
    valid = _valid(kernel, stride, out, size, device).flatten(1)
    return flat.flatten(0, 2).flatten(1).masked_fill(~valid, 0), valid


def _inside(kernel: Sequence[int], padded: Sequence[int]) -> tuple[slice, slice, slice]:
    """The slices of a (Tp, Hp, Wp) grid zero-padded by kernel // 2 that hold the input."""
    return tuple(slice(k // 2, n - k // 2) for k, n in zip(kernel, padded))  # type: ignore[return-value]


def _unpadded_size(padded: torch.Tensor, kernel: Sequence[int]) -> list[int]:
    """(T, H, W) of the input inside a (N, G, D, Tp, Hp, Wp) grid zero-padded by kernel // 2."""
    return [n - 2 * (k // 2) for n, k in zip(padded.shape[3:], kernel)]


def _unpad(padded: torch.Tensor, kernel: Sequence[int]) -> torch.Tensor:
    """(N, G, D, Tp, Hp, Wp) zero-padded by kernel // 2 -> the (N, G, D, T*H*W) inside, a copy."""
    return padded[(..., *_inside(kernel, padded.shape[3:]))].flatten(3)


def _dense_logits(query: torch.Tensor, key: torch.Tensor, composability: str) -> torch.Tensor:
    """Phi for every (output, input) pair: query (N, G, D, Po), key (N, G, D, Pi) -> (N, G, Po, Pi)."""
    if composability == "squared_difference":
        return (query.unsqueeze(-1) - key.unsqueeze(-2)).square_().sum(2).neg_()
    return torch.matmul(query.transpose(2, 3), key).mul_(query.shape[2] ** -0.5)


def _dense_forward(query, key, value, geometry, kernel, stride, composability):
    """:func:`local_relation` through one (Po, Pi) weight matrix per head and sample."""
    n, g, d, *out = query.shape
    size = _unpadded_size(key, kernel)
    index, valid = _neighbours(kernel, stride, out, size, query.device)  # (K, Po)
    logits = _dense_logits(query.flatten(3), _unpad(key, kernel), composability)  # (N, G, Po, Pi)
    # the geometry prior at each (p, neighbour) pair; pairs outside the neighbourhood: -inf
    bias = logits.new_full((g, logits.shape[2], logits.shape[3]), float("-inf"))
    k_idx, p_idx = valid.nonzero(as_tuple=True)
    bias[:, p_idx, index[k_idx, p_idx]] = geometry[:, k_idx]
    weights = torch.softmax(logits.add_(bias), dim=-1)
    y = torch.matmul(_unpad(value, kernel), weights.transpose(2, 3))  # (N, G, Cg, Pi) x (Pi, Po)
    # back to the windowed layout (N, G, K, Po): weight of neighbour k, 0 outside
    windowed = weights.gather(3, index.t().expand(n, g, -1, -1)).transpose(2, 3).masked_fill_(~valid, 0)
    return y.unflatten(3, out), windowed.unflatten(3, out)


def _dense_backward(grad, query, key, value, weights, kernel, stride, composability):
    """:func:`local_relation_backward` through the dense (Po, Pi) matrices."""
    n, g, d, *out = query.shape
    size = _unpadded_size(key, kernel)
    index, valid = _neighbours(kernel, stride, out, size, query.device)
    pi = math.prod(size)
    # dense weights: scatter-add (0 for the masked entries, so their index 0 does no harm)
    scatter = index.t().expand(n, g, -1, -1)  # (N, G, Po, K)
    dense = weights.new_zeros(n, g, scatter.shape[2], pi).scatter_add_(3, scatter, weights.flatten(3).transpose(2, 3))
    grad, v = grad.flatten(3), _unpad(value, kernel)  # (N, G, Cg, Po), (N, G, Cg, Pi)
    grad_v = torch.matmul(grad, dense)  # (N, G, Cg, Pi)
    grad_w = torch.matmul(grad.transpose(2, 3), v)  # (N, G, Po, Pi)
    grad_logits = grad_w.sub_((grad_w * dense).sum(3, keepdim=True)).mul_(dense)
    grad_geometry = grad_logits.gather(3, scatter).masked_fill_(~valid.t(), 0).sum((0, 2))  # (G, K)
    q, k = query.flatten(3), _unpad(key, kernel)
    if composability == "squared_difference":  # d/dq -(q - k)^2 = -2 (q - k), d/dk = 2 (q - k)
        diff = q.unsqueeze(-1) - k.unsqueeze(-2)  # (N, G, D, Po, Pi)
        weighted = diff.mul_(grad_logits.unsqueeze(2))
        grad_q, grad_k = weighted.sum(4).mul_(-2.0), weighted.sum(3).mul_(2.0)
    else:
        scale = d**-0.5
        grad_q = torch.matmul(k, grad_logits.transpose(2, 3)).mul_(scale)  # (N, G, D, Po)
        grad_k = torch.matmul(q, grad_logits).mul_(scale)  # (N, G, D, Pi)
    inside = _inside(kernel, key.shape[3:])
    grad_key, grad_value = torch.zeros_like(key), torch.zeros_like(value)
    grad_key[(..., *inside)] = grad_k.unflatten(3, size)
    grad_value[(..., *inside)] = grad_v.unflatten(3, size)
    return grad_q.unflatten(3, out), grad_key, grad_value, grad_geometry.to(weights.dtype)


@torch.library.custom_op("videoattn::local_relation", mutates_args=())
def local_relation(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, geometry: torch.Tensor,
    kernel: list[int], stride: list[int], composability: str, dense: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Aggregation of a local relation layer, per head g and output position p:
    ``w_gk(p) = softmax_k(Phi(q_g(p), k_g(p + k)) + geometry[g, k])`` over the neighbours inside the
    input, ``y_g(p) = sum_k w_gk(p) v_g(p + k)``.

    query (N, G, D, To, Ho, Wo); key (N, G, D, Tp, Hp, Wp) and value (N, G, Cg, Tp, Hp, Wp) zero-padded
    by kernel // 2 on each side; geometry (G, K), K = kt * kh * kw. Returns y (N, G, Cg, To, Ho, Wo)
    and the weights w (N, G, K, To, Ho, Wo) (not differentiable). ``dense``: compute through one
    (To*Ho*Wo, T*H*W) matrix per head (small maps; equal up to float rounding).
    """
    if dense:
        return _dense_forward(query, key, value, geometry, kernel, stride, composability)
    n, g, d, *out = query.shape
    size = _unpadded_size(key, kernel)
    windows = _windows(kernel, stride, out)
    logits = query.new_empty(n, g, len(windows), *out)
    for i, win in enumerate(windows):
        neighbour = key[(..., *win)]  # (N, G, D, To, Ho, Wo), a strided view
        if composability == "squared_difference":
            logits[:, :, i] = (query - neighbour).square_().sum(2).neg_()
        else:
            logits[:, :, i] = (query * neighbour).sum(2).mul_(d**-0.5)
    logits += geometry.view(1, g, -1, 1, 1, 1)
    logits.masked_fill_(~_valid(kernel, stride, out, size, query.device), float("-inf"))
    weights = torch.softmax(logits, dim=2)
    y = value.new_zeros(n, g, value.shape[2], *out)
    for i, win in enumerate(windows):
        y.addcmul_(value[(..., *win)], weights[:, :, i : i + 1])  # (N, G, Cg, To, Ho, Wo) * (N, G, 1, ...)
    return y, weights


@local_relation.register_fake
def _local_relation_fake(query, key, value, geometry, kernel, stride, composability, dense=False):
    n, g, _, *out = query.shape
    return value.new_empty(n, g, value.shape[2], *out), query.new_empty(n, g, geometry.shape[1], *out)


@torch.library.custom_op("videoattn::local_relation_backward", mutates_args=())
def local_relation_backward(
    grad: torch.Tensor, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, weights: torch.Tensor,
    kernel: list[int], stride: list[int], composability: str, dense: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of :func:`local_relation` w.r.t. query, key, value and geometry, given dL/dy."""
    if dense:
        return _dense_backward(grad, query, key, value, weights, kernel, stride, composability)
    d, out = query.shape[2], list(query.shape[3:])
    windows = _windows(kernel, stride, out)
    grad_w = torch.empty_like(weights)
    grad_value = torch.zeros_like(value)
    for i, win in enumerate(windows):
        grad_w[:, :, i] = (grad * value[(..., *win)]).sum(2)
        grad_value[(..., *win)].addcmul_(grad, weights[:, :, i : i + 1])
    # softmax backward; neighbours outside the input have w = 0 and get no gradient
    grad_logits = grad_w.sub_((grad_w * weights).sum(2, keepdim=True)).mul_(weights)
    grad_geometry = grad_logits.sum((0, 3, 4, 5))  # (G, K)
    grad_query, grad_key = torch.zeros_like(query), torch.zeros_like(key)
    for i, win in enumerate(windows):
        neighbour, g = key[(..., *win)], grad_logits[:, :, i : i + 1]
        if composability == "squared_difference":  # d/dq -(q - k)^2 = -2 (q - k), d/dk = 2 (q - k)
            diff = query - neighbour
            grad_query.addcmul_(g, diff, value=-2.0)
            grad_key[(..., *win)].addcmul_(g, diff, value=2.0)
        else:
            grad_query.addcmul_(g, neighbour, value=d**-0.5)
            grad_key[(..., *win)].addcmul_(g, query, value=d**-0.5)
    return grad_query, grad_key, grad_value, grad_geometry.to(weights.dtype)


@local_relation_backward.register_fake
def _local_relation_backward_fake(grad, query, key, value, weights, kernel, stride, composability, dense=False):
    g, k = weights.shape[1], weights.shape[2]
    return torch.empty_like(query), torch.empty_like(key), torch.empty_like(value), weights.new_empty(g, k)


def _setup_context(ctx, inputs, output) -> None:
    query, key, value, _, kernel, stride, composability, *dense = inputs
    ctx.save_for_backward(query, key, value, output[1])
    ctx.meta = (kernel, stride, composability, bool(dense and dense[0]))
    ctx.mark_non_differentiable(output[1])


def _backward(ctx, grad_y: torch.Tensor, _grad_weights: torch.Tensor | None):
    query, key, value, weights = ctx.saved_tensors
    grads = local_relation_backward(grad_y.contiguous(), query, key, value, weights, *ctx.meta)
    return (*grads, None, None, None, None)


local_relation.register_autograd(_backward, setup_context=_setup_context)


class LocalRelation3d(nn.Module):
    """Local relation layer: ``out = conv_out(y)``, per head (channel group) g and position p'
    ``y_g(p') = sum_{p in Omega(p')} softmax_p(Phi(q_g(p'), k_g(p)) + f_geo(p - p'))_g x_g(p)``,
    Omega(p') the kt x kh x kw neighbourhood of p' (clipped to the input).

    A layer that replaces a convolution (no residual inside); ``make_block("lr", C)`` is the
    residual block :class:`LocalRelationBlock3d`.

    Args:
        in_channels: channels C of the input; a multiple of ``heads``.
        out_channels: channels of the output (default C), made by ``conv_out`` (1x1x1, no bias),
            the channel transform after the channel-shared aggregation (paper, Fig. 2).
        kernel_size: neighbourhood (kt, kh, kw), odd sizes; an int k means (k, k, k).
        heads: channel groups m; each has its own aggregation weights, shared by its C / m
            channels (the paper's channel sharing).
        stride: output stride (int or (T, H, W)); queries on the strided grid.
        key_channels: channels of the key and query maps (1x1x1 convs ``conv_key``, ``conv_query``),
            a multiple of ``heads`` (default ``heads``: one key and one query scalar per head).
        composability: Phi. ``"squared_difference"``: -(q - k)^2 summed over the head's key
            channels (the paper's default); ``"dot"``: q . k / sqrt(key channels per head) (the
            official op's ``sim_method=0``).
        geometry_channels: hidden width of the geometry prior f_geo, a two-layer network
            (``geometry``: Linear 3 -> hidden, ReLU, Linear hidden -> heads) on the relative
            offset (dt, dy, dx) in input pixels (default ``heads``).
        impl: how the op computes; results are equal up to float rounding. ``"window"``: one pass
            per neighbourhood offset (memory linear in T*H*W); ``"dense"``: one (To*Ho*Wo, T*H*W)
            weight matrix per head, its entries outside the neighbourhood 0 (batched matmuls; memory
            quadratic in T*H*W); ``"auto"`` (default): dense while T*H*W <= DENSE_FACTOR * K
            (3), where dense is faster (scripts/bench_lr_paths.py: 5.0x at 8x4x4, a 3x7x7
            neighbourhood; slower beyond about 4 K).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        *,
        kernel_size: int | Sequence[int] = (3, 7, 7),
        heads: int = 8,
        stride: int | Sequence[int] = 1,
        key_channels: int | None = None,
        composability: str = "squared_difference",
        geometry_channels: int | None = None,
        impl: str = "auto",
    ) -> None:
        super().__init__()
        block = "LocalRelation3d"
        check_positive("in_channels", in_channels, block)
        out_channels = in_channels if out_channels is None else out_channels
        check_positive("out_channels", out_channels, block)
        check_positive("heads", heads, block)
        key_channels = heads if key_channels is None else key_channels
        check_positive("key_channels", key_channels, block)
        geometry_channels = heads if geometry_channels is None else geometry_channels
        check_positive("geometry_channels", geometry_channels, block)
        if in_channels % heads or key_channels % heads:
            raise ValueError(f"{block}: heads={heads} must divide in_channels={in_channels} and key_channels={key_channels}")
        self.kernel_size = _triple(kernel_size, "kernel_size", block)
        if any(k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"{block}: kernel_size must be odd (a centred neighbourhood), got {self.kernel_size}")
        self.stride = _triple(stride, "stride", block)
        self.composability = check_choice("composability", composability, COMPOSABILITIES, block)
        self.impl = check_choice("impl", impl, IMPLS, block)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.heads, self.key_channels = heads, key_channels

        self.conv_query = nn.Conv3d(in_channels, key_channels, kernel_size=1)
        self.conv_key = nn.Conv3d(in_channels, key_channels, kernel_size=1)
        self.geometry = nn.Sequential(nn.Linear(3, geometry_channels), nn.ReLU(inplace=True), nn.Linear(geometry_channels, heads))
        self.conv_out = nn.Conv3d(in_channels, out_channels, kernel_size=1, bias=False)

    def output_size(self, size: Sequence[int]) -> tuple[int, int, int]:
        """(T, H, W) of the output for an input of size (T, H, W): ceil(size / stride)."""
        return tuple((n - 1) // s + 1 for n, s in zip(size, self.stride))  # type: ignore[return-value]

    def geometry_prior(self) -> torch.Tensor:
        """f_geo of every neighbourhood offset: (heads, K), offsets row-major over (kt, kh, kw)."""
        weight = self.geometry[0].weight
        offsets = torch.cartesian_prod(*(torch.arange(k, device=weight.device) - k // 2 for k in self.kernel_size))
        return self.geometry(offsets.to(weight.dtype)).t()  # (K, 3) -> (K, heads) -> (heads, K)

    def _dense(self, positions: int) -> bool:
        """Whether the op computes densely for an input of ``positions`` = T*H*W positions."""
        if self.impl != "auto":
            return self.impl == "dense"
        return positions <= DENSE_FACTOR * math.prod(self.kernel_size)

    def _relation(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        st, sh, sw = self.stride
        pad = [p for k in reversed(self.kernel_size) for p in (k // 2, k // 2)]  # F.pad order: W, H, T
        query = self.conv_query(x[:, :, ::st, ::sh, ::sw])  # (N, Ck, To, Ho, Wo)
        key = F.pad(self.conv_key(x), pad)  # (N, Ck, Tp, Hp, Wp)
        dtype = query.dtype  # the convs' (bf16 under autocast); the op runs in it
        value = F.pad(x.to(dtype), pad)  # (N, C, Tp, Hp, Wp)
        heads = self.heads
        dense = self._dense(x.shape[2:].numel())
        # (N, C', T, H, W) -> (N, heads, C' / heads, T, H, W): contiguous channel groups
        y, weights = local_relation(
            query.unflatten(1, (heads, -1)).contiguous(), key.unflatten(1, (heads, -1)).contiguous(),
            value.unflatten(1, (heads, -1)).contiguous(), self.geometry_prior().to(dtype).contiguous(),
            list(self.kernel_size), list(self.stride), self.composability, dense,
        )
        return y.flatten(1, 2), weights  # (N, C, To, Ho, Wo), (N, heads, K, To, Ho, Wo)

    def aggregation_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The softmax weights (N, heads, K, To, Ho, Wo) over each output position's neighbourhood
        (K = kt * kh * kw offsets, row-major); 0 for neighbours outside the input. No gradient."""
        check_input(x, self.in_channels, "LocalRelation3d")
        with torch.no_grad():
            return self._relation(x)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, "LocalRelation3d")
        return self.conv_out(self._relation(x)[0])

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, heads={self.heads}, "
                f"stride={self.stride}, key_channels={self.key_channels}, composability={self.composability!r}, impl={self.impl!r}")


class LocalRelationBlock3d(nn.Module):
    """The ``lr`` block: ``out = x + norm(lr(x))``, ``lr`` a :class:`LocalRelation3d` (C -> C, stride 1)
    and ``norm`` zero-initialised, so the block is the identity at initialisation.

    Args:
        in_channels: channels C of the input.
        kernel_size: neighbourhood (T, H, W) of the layer (:class:`LocalRelation3d`).
        heads: channel groups of the layer, each with its own key and query scalar.
        key_channels: key and query channels of the layer.
        composability: how the layer compares a key and a query.
        geometry_channels: width of the layer's geometric prior.
        impl: the layer's computation: "auto", "window" or "dense".
        norm_layer: ``norm_layer(C)``; weight and bias zero-initialised (``lr.conv_out`` is zeroed
            instead when the norm has no affine weight, or is None).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        kernel_size: int | Sequence[int] = (3, 7, 7),
        heads: int = 8,
        key_channels: int | None = None,
        composability: str = "squared_difference",
        geometry_channels: int | None = None,
        impl: str = "auto",
        norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm3d,
    ) -> None:
        super().__init__()
        self.lr = LocalRelation3d(
            in_channels, kernel_size=kernel_size, heads=heads, key_channels=key_channels,
            composability=composability, geometry_channels=geometry_channels, impl=impl,
        )
        self.in_channels = in_channels
        self.norm = norm_layer(in_channels) if norm_layer is not None else None
        weight, bias = getattr(self.norm, "weight", None), getattr(self.norm, "bias", None)
        if isinstance(weight, torch.Tensor):
            nn.init.zeros_(weight)
            if isinstance(bias, torch.Tensor):
                nn.init.zeros_(bias)
        else:
            nn.init.zeros_(self.lr.conv_out.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, "LocalRelationBlock3d")
        y = self.lr(x)
        return x + (self.norm(y) if self.norm is not None else y)
