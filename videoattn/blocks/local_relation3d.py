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
torch.compile (no 147-step unrolled graph), and FLOP counters see it by name.
"""
from __future__ import annotations

import itertools
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from videoattn.blocks._checks import check_choice, check_input, check_positive

COMPOSABILITIES = ("squared_difference", "dot")


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


@torch.library.custom_op("videoattn::local_relation", mutates_args=())
def local_relation(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, geometry: torch.Tensor,
    kernel: list[int], stride: list[int], composability: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Aggregation of a local relation layer, per head g and output position p:
    ``w_gk(p) = softmax_k(Phi(q_g(p), k_g(p + k)) + geometry[g, k])`` over the neighbours inside the
    input, ``y_g(p) = sum_k w_gk(p) v_g(p + k)``.

    query (N, G, D, To, Ho, Wo); key (N, G, D, Tp, Hp, Wp) and value (N, G, Cg, Tp, Hp, Wp) zero-padded
    by kernel // 2 on each side; geometry (G, K), K = kt * kh * kw. Returns y (N, G, Cg, To, Ho, Wo)
    and the weights w (N, G, K, To, Ho, Wo) (not differentiable).
    """
    n, g, d, *out = query.shape
    size = [p - 2 * (k // 2) for p, k in zip(key.shape[3:], kernel)]
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
def _local_relation_fake(query, key, value, geometry, kernel, stride, composability):
    n, g, _, *out = query.shape
    return value.new_empty(n, g, value.shape[2], *out), query.new_empty(n, g, geometry.shape[1], *out)


@torch.library.custom_op("videoattn::local_relation_backward", mutates_args=())
def local_relation_backward(
    grad: torch.Tensor, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, weights: torch.Tensor,
    kernel: list[int], stride: list[int], composability: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of :func:`local_relation` w.r.t. query, key, value and geometry, given dL/dy."""
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
def _local_relation_backward_fake(grad, query, key, value, weights, kernel, stride, composability):
    g, k = weights.shape[1], weights.shape[2]
    return torch.empty_like(query), torch.empty_like(key), torch.empty_like(value), weights.new_empty(g, k)


def _setup_context(ctx, inputs, output) -> None:
    query, key, value, _, kernel, stride, composability = inputs
    ctx.save_for_backward(query, key, value, output[1])
    ctx.meta = (kernel, stride, composability)
    ctx.mark_non_differentiable(output[1])


def _backward(ctx, grad_y: torch.Tensor, _grad_weights: torch.Tensor | None):
    query, key, value, weights = ctx.saved_tensors
    grads = local_relation_backward(grad_y.contiguous(), query, key, value, weights, *ctx.meta)
    return (*grads, None, None, None)


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

    def _relation(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        st, sh, sw = self.stride
        pad = [p for k in reversed(self.kernel_size) for p in (k // 2, k // 2)]  # F.pad order: W, H, T
        query = self.conv_query(x[:, :, ::st, ::sh, ::sw])  # (N, Ck, To, Ho, Wo)
        key = F.pad(self.conv_key(x), pad)  # (N, Ck, Tp, Hp, Wp)
        dtype = query.dtype  # the convs' (bf16 under autocast); the op runs in it
        value = F.pad(x.to(dtype), pad)  # (N, C, Tp, Hp, Wp)
        heads = self.heads
        # (N, C', T, H, W) -> (N, heads, C' / heads, T, H, W): contiguous channel groups
        y, weights = local_relation(
            query.unflatten(1, (heads, -1)).contiguous(), key.unflatten(1, (heads, -1)).contiguous(),
            value.unflatten(1, (heads, -1)).contiguous(), self.geometry_prior().to(dtype).contiguous(),
            list(self.kernel_size), list(self.stride), self.composability,
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
                f"stride={self.stride}, key_channels={self.key_channels}, composability={self.composability!r}")


class LocalRelationBlock3d(nn.Module):
    """The ``lr`` block: ``out = x + norm(lr(x))``, ``lr`` a :class:`LocalRelation3d` (C -> C, stride 1)
    and ``norm`` zero-initialised, so the block is the identity at initialisation.

    Args:
        in_channels: channels C of the input.
        kernel_size, heads, key_channels, composability, geometry_channels: of the layer.
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
        norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm3d,
    ) -> None:
        super().__init__()
        self.lr = LocalRelation3d(
            in_channels, kernel_size=kernel_size, heads=heads, key_channels=key_channels,
            composability=composability, geometry_channels=geometry_channels,
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
