# 1x1x1 Conv3d evaluated as batched matrix products. On the CPU this is faster than nn.Conv3d's
# forward + backward at the I3D-R50 res3/res4 sizes (it takes the slow_conv3d path; measured with
# scripts/bench_blocks.py), several convs on one input share a single GEMM, and the result comes
# in the (N, C_out, T*H*W) layout that the attention wants.
from __future__ import annotations

import torch
from torch import nn


def pointwise_convs(x: torch.Tensor, *convs: nn.Conv3d) -> tuple[torch.Tensor, ...]:
    """``(conv(x).flatten(2) for conv in convs)`` for 1x1x1, stride-1, ungrouped convs, computed as
    one GEMM with the weights stacked: (N, C, T, H, W) -> (N, C_out_i, T*H*W) each."""
    x = x.flatten(2)  # (N, C, L), a view also for channels_last_3d input
    weight = convs[0].weight if len(convs) == 1 else torch.cat([c.weight for c in convs])
    w = weight.flatten(1).expand(x.shape[0], -1, -1)  # (N, sum C_out, C), no copy
    biases = [c.bias for c in convs]
    if all(b is None for b in biases):
        y = torch.bmm(w, x)
    else:
        if any(b is None for b in biases):
            raise ValueError("pointwise_convs: convs must all have a bias or none")
        bias = biases[0] if len(convs) == 1 else torch.cat(biases)
        y = torch.baddbmm(bias.view(1, -1, 1), w, x)  # (N, sum C_out, C) x (N, C, L) + b
    return y.split([c.out_channels for c in convs], dim=1)


def pointwise_conv(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x).flatten(2)`` for a 1x1x1, stride-1, ungrouped conv: (N, C, T, H, W) -> (N, C_out, T*H*W)."""
    return pointwise_convs(x, conv)[0]


def grouped_pointwise_conv(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x).flatten(2)`` for a 1x1x1 grouped conv without bias: (N, C, L) -> (N, C_out, L)."""
    n, groups = x.shape[0], conv.groups
    w = conv.weight.view(groups, conv.out_channels // groups, -1)  # (G, C_out/G, C/G)
    # (G, C_out/G, C/G) x (N, G, C/G, L) => (N, G, C_out/G, L)
    return torch.matmul(w, x.reshape(n, groups, -1, x.shape[-1])).view(n, conv.out_channels, -1)
