"""1x1x1 convolutions and channel projections for the blocks, with one device-dependent choice.

On the CPU a 1x1x1 Conv3d is evaluated as batched matrix products (``_PointwiseConv``): faster
than nn.Conv3d's forward + backward at the I3D-R50 res3/res4 sizes with one thread (measured
with scripts/bench_blocks.py), and the result comes in the (N, C_out, T*H*W) layout that the
attention wants. The weight gradient is accumulated clip by clip, so that no (N, C_out, C)
per-clip gradient is materialised. (Stacking several convs into one GEMM was measured 5-10%
faster but kept the stacked output alive for backward: +18 MiB for CGNL at res4; not done.)
That Function is tuned and measured on the CPU only: on any other device (CUDA) the same
results come from the standard ops, nn.Conv3d / conv1d, whose kernels the vendor tunes
(:func:`uses_cpu_gemm` is the one place that decides).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def uses_cpu_gemm(device: torch.device) -> bool:
    """Whether 1x1x1 convs on ``device`` run as the CPU-tuned GEMM Function: in eager mode on the
    CPU only. Elsewhere, and under ``torch.compile`` (the compiler makes its own kernels, and
    dynamo cannot trace the Function's per-clip backward loop over symbolic shapes), they are
    plain convolutions."""
    return torch.device(device).type == "cpu" and not torch.compiler.is_compiling()


class _PointwiseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        # x (N, C, L), weight (C_out, C), bias (C_out,) -> (N, C_out, L)
        w = weight.expand(x.shape[0], -1, -1)  # (N, C_out, C), no copy
        y = torch.bmm(w, x) if bias is None else torch.baddbmm(bias.view(1, -1, 1), w, x)
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, weight = ctx.saved_tensors
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = torch.bmm(weight.t().expand(x.shape[0], -1, -1), dy)  # (N, C, C_out) x (N, C_out, L)
        if ctx.needs_input_grad[1]:
            dw = torch.mm(dy[0], x[0].t())  # sum_n dy_n x_n^T: (C_out, L) x (L, C)
            for n in range(1, x.shape[0]):
                dw.addmm_(dy[n], x[n].t())
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = dy.sum(dim=(0, 2))
        return dx, dw, db


def project(weight: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``weight @ x + bias`` per clip: weight (C_out, C), x (N, C, L), bias (C_out,) -> (N, C_out, L)."""
    if not uses_cpu_gemm(x.device):
        return F.conv1d(x, weight.unsqueeze(-1), bias)  # (C_out, C, 1) kernel
    device = x.device.type
    if torch.is_autocast_enabled(device):  # the Function runs without autocast: cast as conv would
        dtype = torch.get_autocast_dtype(device)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    with torch.autocast(device, enabled=False):
        return _PointwiseConv.apply(x, weight, bias)


def pointwise_conv(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x).flatten(2)`` for a 1x1x1, stride-1, ungrouped conv: (N, C, T, H, W) or (N, C, L)
    -> (N, C_out, L), L = T*H*W."""
    if x.dim() == 5 and not uses_cpu_gemm(x.device):
        return conv(x).flatten(2)
    # (N, C, T, H, W) -> (N, C, L), a view also for channels_last_3d input; weight (C_out, C)
    return project(conv.weight.flatten(1), x.flatten(2), conv.bias)


def grouped_pointwise_conv(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x).flatten(2)`` for a 1x1x1 grouped conv without bias: (N, C, L) -> (N, C_out, L)."""
    n, groups = x.shape[0], conv.groups
    w = conv.weight.view(groups, conv.out_channels // groups, -1)  # (G, C_out/G, C/G)
    # (G, C_out/G, C/G) x (N, G, C/G, L) => (N, G, C_out/G, L)
    return torch.matmul(w, x.reshape(n, groups, -1, x.shape[-1])).view(n, conv.out_channels, -1)
