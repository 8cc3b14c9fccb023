"""Compact Generalized Non-local block in space-time (3D).
Paper: Yue, Sun, Li, Zhou, Ding, Xu, "Compact Generalized Non-local Network", NeurIPS 2018.
https://arxiv.org/abs/1810.13125
Parameter names and numerics follow the reference SpatialCGNL / SpatialCGNLx
(KaiyuYue/cgnl-network.pytorch, model/resnet.py): t, p, g, z, gn.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from videoattn.blocks._checks import check_choice, check_input, check_positive
from videoattn.blocks._pointwise import grouped_pointwise_conv, pointwise_conv

KERNELS = ("dot", "gaussian")
GAUSSIAN_GAMMA = 1e-4  # gamma of the Gaussian RBF kernel in the reference


def taylor_coefficients(order: int, gamma: float = GAUSSIAN_GAMMA) -> list[float]:
    """alpha_k^2 = beta * (2 gamma)^k / k!, beta = exp(-2 gamma), k = 0..order (the reference's
    alpha_k multiplies both t^k and p^k, so their product carries alpha_k^2)."""
    beta = math.exp(-2 * gamma)
    return [beta * (2 * gamma) ** k / math.factorial(k) for k in range(order + 1)]


class CGNL3d(nn.Module):
    """Compact generalized non-local block: ``out = x + gn(z(y))``.

    The generalized non-local operation lets every (channel, t, h, w) position of a channel group
    attend to every other: ``y_j = sum_i f(t_j, p_i) g_i`` over the group's C' * T * H * W positions.
    For the dot kernel f(t, p) = t * p this reorders exactly to ``y = t * <p, g>``; the Gaussian RBF
    kernel is linearised by its Taylor expansion, ``f = sum_k alpha_k^2 t^k p^k``. Linear in T*H*W.

    Args:
        in_channels: channels C of the input.
        inner_channels: channels of t/p/g (default C // 2).
        groups: channel groups G (attention is computed per group); G must divide both C and
            inner_channels.
        kernel: ``"dot"`` or ``"gaussian"``.
        order: Taylor expansion order of the Gaussian kernel.
        use_scale: divide the attention by sqrt(C/G * T * H * W).
    """

    def __init__(
        self,
        in_channels: int,
        inner_channels: int | None = None,
        *,
        groups: int = 8,
        kernel: str = "dot",
        order: int = 3,
        use_scale: bool = False,
    ) -> None:
        super().__init__()
        check_positive("in_channels", in_channels, "CGNL3d")
        inner_channels = in_channels // 2 if inner_channels is None else inner_channels
        check_positive("inner_channels", inner_channels, "CGNL3d")
        check_positive("groups", groups, "CGNL3d")
        check_positive("order", order, "CGNL3d")
        if in_channels % groups or inner_channels % groups:
            raise ValueError(
                f"CGNL3d: groups={groups} must divide in_channels={in_channels} and "
                f"inner_channels={inner_channels}"
            )
        self.kernel = check_choice("kernel", kernel, KERNELS, "CGNL3d")
        self.in_channels = in_channels
        self.inner_channels = inner_channels
        self.groups = groups
        self.order = order
        self.use_scale = use_scale

        self.t = nn.Conv3d(in_channels, inner_channels, kernel_size=1, bias=False)
        self.p = nn.Conv3d(in_channels, inner_channels, kernel_size=1, bias=False)
        self.g = nn.Conv3d(in_channels, inner_channels, kernel_size=1, bias=False)
        self.z = nn.Conv3d(inner_channels, in_channels, kernel_size=1, groups=groups, bias=False)
        self.gn = nn.GroupNorm(groups, in_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Reference ResNet: block convs N(0, 0.01), GroupNorm weight and bias 0 (identity at init).
        for conv in (self.t, self.p, self.g, self.z):
            nn.init.normal_(conv.weight, std=0.01)
        nn.init.zeros_(self.gn.weight)
        nn.init.zeros_(self.gn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, "CGNL3d")
        n = x.shape[0]
        # (N, C, T, H, W) -> (N, Ci, THW) -> (N, G, Ci/G * THW)
        t, p, g = (pointwise_conv(conv, x).view(n, self.groups, -1) for conv in (self.t, self.p, self.g))
        scale = t.shape[-1] ** -0.5 if self.use_scale else 1.0

        if self.kernel == "dot":
            att = torch.einsum("ngk,ngk->ng", p, g) * scale  # (N, G)
            y = t * att.unsqueeze(-1)
        else:
            coefs = taylor_coefficients(self.order)
            y = (g.sum(-1, keepdim=True) * (coefs[0] * scale)).expand_as(t)  # k = 0: t^0 = p^0 = 1
            t_k, p_k = t, p
            for k in range(1, self.order + 1):
                if k > 1:
                    t_k, p_k = t_k * t, p_k * p
                att = torch.einsum("ngk,ngk->ng", p_k, g) * (coefs[k] * scale)  # (N, G)
                y = y + t_k * att.unsqueeze(-1)
        # (N, G, Ci/G * THW) -> (N, Ci, THW) -> z -> (N, C, T, H, W)
        z = grouped_pointwise_conv(self.z, y.reshape(n, self.inner_channels, -1)).view_as(x)
        return x + self.gn(z)

    def extra_repr(self) -> str:
        return f"groups={self.groups}, kernel={self.kernel!r}, order={self.order}, use_scale={self.use_scale}"
