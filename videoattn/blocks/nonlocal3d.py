"""Non-local block in space-time (3D).
Paper: Wang, Girshick, Gupta, He, "Non-local Neural Networks", CVPR 2018. https://arxiv.org/abs/1711.07971
Parameter names and numerics follow pytorchvideo's `layers/nonlocal_net.py` NonLocal
(conv_theta, conv_phi, conv_g, conv_out, norm), so its weights load with `load_state_dict`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from videoattn.blocks._attention import chunked_softmax_attention
from videoattn.blocks._checks import check_choice, check_input, check_positive
from videoattn.blocks._pointwise import pointwise_conv

INSTANTIATIONS = ("softmax", "dot_product", "gaussian", "concatenation")
IMPLS = ("auto", "matmul", "chunked", "sdpa")
# On the CPU, below this many affinity entries (L * Np) per clip the plain matmul is faster than
# the fused SDPA kernel and the affinity small (res4, 1568 x 392: matmul); from it on (res3,
# 6272 x 1568) SDPA is faster than both matmul and chunked, at 0.39x pytorchvideo's memory.
MIN_FUSED_AFFINITY = 2**21


class NonLocal3d(nn.Module):
    """Non-local block: ``out = x + norm(conv_out(y))``, ``y_i = sum_j f(x_i, x_j) g(x_j) / C(x)``.

    Args:
        in_channels: channels C of the input.
        inner_channels: channels of theta/phi/g (default C // 2).
        instantiation: pairwise function f.
            ``"softmax"``: embedded Gaussian, softmax(theta_i . phi_j * inner**-0.5) (pytorchvideo's).
            ``"dot_product"``: theta_i . phi_j divided by the number of (pooled) positions Np.
            ``"gaussian"``: softmax(x_i . x_j) on the raw features (no theta/phi convs, as the paper).
            ``"concatenation"``: ReLU(w . [theta_i, phi_j]) / Np (``concat_project`` holds w).
        pool_size: max-pool kernel (= stride) over (T, H, W) applied to x before phi and g;
            None or (1, 1, 1) for no pooling.
        norm_layer: normalisation after conv_out, built as ``norm_layer(in_channels)``; its weight
            and bias are zero-initialised so that the block is the identity at initialisation
            (conv_out is zeroed instead when the norm has no affine weight, or is None).
        impl: how y is computed; results are equal up to float rounding.
            ``"matmul"`` materialises the (THW x Np) affinity, as pytorchvideo does.
            ``"chunked"`` (softmax, gaussian) never stores it: queries in chunks, softmax recomputed
            in backward (``_attention.py``); the leanest (0.34x pytorchvideo's memory at res3).
            ``"sdpa"`` (softmax, gaussian): ``F.scaled_dot_product_attention`` (fused kernels; on the
            CPU the fastest at res3 with 1 and 2 threads).
            For dot_product any impl but ``"matmul"`` uses the exact reordering theta (phi^T g) / Np.
            For concatenation the affinity is always materialised.
            ``"auto"``: dot_product reorders when inner_channels < Np (fewer FLOPs); softmax and
            gaussian use sdpa on GPUs, and on the CPU from 2**21 affinity entries per clip (res3 of
            I3D-R50: 6272 x 1568); matmul below (res4: 1568 x 392), where it is faster and the
            affinity is small (measurements in scripts/bench_blocks.py).
    """

    def __init__(
        self,
        in_channels: int,
        inner_channels: int | None = None,
        *,
        instantiation: str = "softmax",
        pool_size: Sequence[int] | None = (1, 2, 2),
        norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm3d,
        impl: str = "auto",
    ) -> None:
        super().__init__()
        check_positive("in_channels", in_channels, "NonLocal3d")
        inner_channels = in_channels // 2 if inner_channels is None else inner_channels
        check_positive("inner_channels", inner_channels, "NonLocal3d")
        self.instantiation = check_choice("instantiation", instantiation, INSTANTIATIONS, "NonLocal3d")
        self.impl = check_choice("impl", impl, IMPLS, "NonLocal3d")
        self.in_channels = in_channels
        self.inner_channels = inner_channels

        if instantiation != "gaussian":
            self.conv_theta = nn.Conv3d(in_channels, inner_channels, kernel_size=1)
            self.conv_phi = nn.Conv3d(in_channels, inner_channels, kernel_size=1)
        self.conv_g = nn.Conv3d(in_channels, inner_channels, kernel_size=1)
        self.conv_out = nn.Conv3d(inner_channels, in_channels, kernel_size=1)
        if instantiation == "concatenation":
            # w of f = ReLU(w . [theta_i, phi_j]): first half acts on theta, second on phi.
            self.concat_project = nn.Linear(2 * inner_channels, 1, bias=False)

        pool_size = (1, 1, 1) if pool_size is None else tuple(pool_size)
        if len(pool_size) != 3 or not all(isinstance(s, int) and s >= 1 for s in pool_size):
            raise ValueError(f"NonLocal3d: pool_size must be three positive ints (T, H, W), got {pool_size!r}")
        self.pool = nn.MaxPool3d(pool_size, stride=pool_size) if any(s > 1 for s in pool_size) else None
        self.norm = norm_layer(in_channels) if norm_layer is not None else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Original Caffe2 NL (video-nonlocal-net): Gaussian std 0.01 for the convs, final BN gamma 0.
        for m in (getattr(self, "conv_theta", None), getattr(self, "conv_phi", None), self.conv_g, self.conv_out):
            if m is not None:
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        norm_weight, norm_bias = getattr(self.norm, "weight", None), getattr(self.norm, "bias", None)
        if isinstance(norm_weight, torch.Tensor):
            nn.init.zeros_(norm_weight)
            if isinstance(norm_bias, torch.Tensor):
                nn.init.zeros_(norm_bias)
        else:  # no affine norm: the zero conv_out makes the branch 0 (a norm of a constant is 0)
            nn.init.zeros_(self.conv_out.weight)

    def _pick_impl(self, device: torch.device, num_queries: int, num_keys: int) -> str:
        if self.instantiation == "dot_product":
            if self.impl == "auto":
                return "reorder" if self.inner_channels < num_keys else "matmul"
            return "matmul" if self.impl == "matmul" else "reorder"
        if self.instantiation == "concatenation":
            return "matmul"
        if self.impl != "auto":
            return self.impl
        if device.type != "cpu":
            return "sdpa"
        return "sdpa" if num_queries * num_keys >= MIN_FUSED_AFFINITY else "matmul"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, "NonLocal3d")
        n, _, t, h, w = x.shape
        ci = self.inner_channels
        pooled = self.pool(x) if self.pool is not None else x

        # (N, C', T, H, W) -> (N, C', L); C' = Ci (C for gaussian's theta and phi), Np pooled positions
        if self.instantiation == "gaussian":
            theta, phi, scale = x.flatten(2), pooled.flatten(2), 1.0
            g = pointwise_conv(self.conv_g, pooled)
        else:
            theta = pointwise_conv(self.conv_theta, x)
            phi, g = pointwise_conv(self.conv_phi, pooled), pointwise_conv(self.conv_g, pooled)
            scale = ci**-0.5
        num_queries, num_keys = theta.shape[2], phi.shape[2]

        impl = self._pick_impl(x.device, num_queries, num_keys)
        if impl == "chunked":
            y = chunked_softmax_attention(theta, phi, g, scale)  # (N, Ci, L)
        elif impl == "sdpa":
            # (N, C', L) -> (N, 1, L, C'); the CPU flash kernel needs a contiguous last dim.
            q, k, v = (z.transpose(1, 2).unsqueeze(1).contiguous() for z in (theta, phi, g))
            y = F.scaled_dot_product_attention(q, k, v, scale=scale).squeeze(1).transpose(1, 2)
        elif impl == "reorder":
            # y = (g phi^T / Np) theta, the affinity (theta^T phi / Np) never formed:
            # (N, Ci, Np) x (N, Np, Ci) => (N, Ci, Ci); (N, Ci, Ci) x (N, Ci, L) => (N, Ci, L)
            y = torch.bmm(torch.bmm(g, phi.transpose(1, 2)) / num_keys, theta)
        else:
            if self.instantiation == "concatenation":
                # w . [theta_i, phi_j] = w_t . theta_i + w_p . phi_j
                w_theta, w_phi = self.concat_project.weight.split(ci, dim=1)  # (1, Ci) each
                a = torch.matmul(w_theta, theta).transpose(1, 2)  # (1, Ci) x (N, Ci, L) => (N, L, 1)
                b = torch.matmul(w_phi, phi)  # (N, 1, Np)
                affinity = F.relu(a + b) / num_keys  # (N, L, Np)
            else:
                # (N, L, C') x (N, C', Np) => (N, L, Np)
                affinity = torch.bmm(theta.transpose(1, 2), phi)
                if self.instantiation == "dot_product":
                    affinity = affinity / num_keys
                else:
                    affinity = torch.softmax(affinity * scale, dim=-1)
            y = torch.bmm(g, affinity.transpose(1, 2))  # (N, Ci, Np) x (N, Np, L) => (N, Ci, L)

        p = pointwise_conv(self.conv_out, y).view(n, -1, t, h, w)  # (N, C, L) -> (N, C, T, H, W)
        if self.norm is not None:
            p = self.norm(p)
        return x + p

    def extra_repr(self) -> str:
        return f"instantiation={self.instantiation!r}, impl={self.impl!r}"
