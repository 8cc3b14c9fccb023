# Non-local block in space-time (3D).
# Paper: Wang, Girshick, Gupta, He, "Non-local Neural Networks", CVPR 2018. https://arxiv.org/abs/1711.07971
# Parameter names and numerics follow pytorchvideo's `layers/nonlocal_net.py` NonLocal
# (conv_theta, conv_phi, conv_g, conv_out, norm), so its weights load with `load_state_dict`.
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from videoattn.blocks._checks import check_choice, check_input, check_positive

INSTANTIATIONS = ("softmax", "dot_product", "gaussian", "concatenation")
IMPLS = ("auto", "fused", "matmul")


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
            is zero-initialised so that the block is the identity at initialisation.
        impl: how y is computed. ``"matmul"`` materialises the (THW x Np) affinity like pytorchvideo;
            ``"fused"`` never does: fused ``scaled_dot_product_attention`` for softmax/gaussian and the
            exact reordering theta (phi^T g) / Np for dot_product. ``"auto"`` picks the faster by
            shape (measured in scripts/bench_blocks.py). Results are equal up to float rounding.
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
        if self.norm is not None and getattr(self.norm, "weight", None) is not None:
            nn.init.zeros_(self.norm.weight)
            nn.init.zeros_(self.norm.bias)
        elif self.norm is None:
            nn.init.zeros_(self.conv_out.weight)  # identity at init without a norm layer

    def _use_fused(self, num_queries: int, num_keys: int) -> bool:
        if self.impl != "auto":
            return self.impl == "fused"
        if self.instantiation == "dot_product":
            # theta (phi^T g) costs L*Ci^2 against L*Np*Ci for the affinity route.
            return self.inner_channels < num_keys
        if self.instantiation in ("softmax", "gaussian"):
            return num_queries * num_keys >= 4096  # below that the kernel launch overhead dominates
        return False  # concatenation: no fused form

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, "NonLocal3d")
        n, _, t, h, w = x.shape
        ci = self.inner_channels
        pooled = self.pool(x) if self.pool is not None else x

        # (N, C', T, H, W) -> (N, C', L) -> (N, L, C'), C' = Ci (C for gaussian's theta and phi).
        if self.instantiation == "gaussian":
            theta = x.flatten(2).transpose(1, 2)
            phi = pooled.flatten(2).transpose(1, 2)
            scale = 1.0
        else:
            theta = self.conv_theta(x).flatten(2).transpose(1, 2)
            phi = self.conv_phi(pooled).flatten(2).transpose(1, 2)
            scale = ci**-0.5
        g = self.conv_g(pooled).flatten(2).transpose(1, 2)
        num_queries, num_keys = theta.shape[1], phi.shape[1]

        if self.instantiation in ("softmax", "gaussian"):
            if self._use_fused(num_queries, num_keys):
                # (N, 1, L, C') each; the CPU flash kernel needs a contiguous last dim.
                y = F.scaled_dot_product_attention(
                    theta.unsqueeze(1).contiguous(),
                    phi.unsqueeze(1).contiguous(),
                    g.unsqueeze(1).contiguous(),
                    scale=scale,
                ).squeeze(1)
            else:
                # (N, L, C') x (N, C', Np) => (N, L, Np)
                affinity = torch.softmax(torch.bmm(theta, phi.transpose(1, 2)) * scale, dim=-1)
                y = torch.bmm(affinity, g)  # (N, L, Np) x (N, Np, Ci) => (N, L, Ci)
        elif self.instantiation == "dot_product":
            if self._use_fused(num_queries, num_keys):
                # (N, Ci, Np) x (N, Np, Ci) => (N, Ci, Ci); (N, L, Ci) x (N, Ci, Ci) => (N, L, Ci)
                y = torch.bmm(theta, torch.bmm(phi.transpose(1, 2), g) / num_keys)
            else:
                affinity = torch.bmm(theta, phi.transpose(1, 2)) / num_keys  # (N, L, Np)
                y = torch.bmm(affinity, g)
        else:  # concatenation: w . [theta_i, phi_j] = w_t . theta_i + w_p . phi_j
            w_theta, w_phi = self.concat_project.weight.split(ci, dim=1)  # (1, Ci) each
            a = F.linear(theta, w_theta)  # (N, L, 1)
            b = F.linear(phi, w_phi).transpose(1, 2)  # (N, 1, Np)
            affinity = F.relu(a + b) / num_keys  # (N, L, Np)
            y = torch.bmm(affinity, g)

        # (N, L, Ci) -> (N, Ci, L) -> (N, Ci, T, H, W)
        y = y.transpose(1, 2).reshape(n, ci, t, h, w)
        p = self.conv_out(y)
        if self.norm is not None:
            p = self.norm(p)
        return x + p

    def extra_repr(self) -> str:
        return f"instantiation={self.instantiation!r}, impl={self.impl!r}"
