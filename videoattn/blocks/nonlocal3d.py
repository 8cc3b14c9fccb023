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
from videoattn.blocks._pointwise import pointwise_conv, project

INSTANTIATIONS = ("softmax", "dot_product", "gaussian", "concatenation")
IMPLS = ("auto", "matmul", "folded", "chunked", "sdpa")
# On the CPU, below this many affinity entries (L * Np) per clip the plain matmul is faster than
# the fused SDPA kernel and the affinity small; from it on (res3 of I3D-R50, 6272 x 1568) SDPA is
# faster than both matmul and chunked, at 0.39x pytorchvideo's memory.
MIN_FUSED_AFFINITY = 2**21
# Norms whose backward does not need their output: the residual is added in place to it.
_INPLACE_SAFE_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


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
        impl: how the block is computed; results are equal up to float rounding.
            ``"matmul"`` materialises the (THW x Np) affinity, as pytorchvideo does.
            ``"folded"`` (softmax, dot_product, gaussian) moves theta and conv_out to the Np pooled
            key positions, by associativity: ``theta_i . phi_j = x_i . (W_theta^T phi_j) +
            b_theta . phi_j`` and ``conv_out(g A^T) = (W_out g) A^T + b_out``; theta's and y's
            (C/2 x THW) maps are never formed, and where ``C Np (C/2 + THW) < C/2 THW (C + Np)``
            (res4 of I3D-R50: 1024 x 392 keys for 1568 queries) it takes fewer FLOPs.
            ``"chunked"`` (softmax, gaussian) never stores the affinity: queries in chunks, softmax
            recomputed in backward (``_attention.py``); the leanest at res3.
            ``"sdpa"`` (softmax, gaussian): ``F.scaled_dot_product_attention`` (fused kernels).
            For dot_product, ``"chunked"`` and ``"sdpa"`` use the exact reordering theta (phi^T g) / Np.
            For concatenation the affinity is always materialised.
            ``"auto"``: dot_product reorders when inner_channels < Np (fewer FLOPs); softmax and
            gaussian use SDPA. On the CPU, softmax and gaussian use matmul below 2**21 affinity
            entries per clip (SDPA from there on: res3 of I3D-R50, 6272 x 1568), and every
            instantiation but concatenation ``"folded"`` wherever that takes fewer FLOPs (res4 of
            I3D-R50). Other devices (CUDA) get only the standard choices, nothing tuned on the CPU,
            and ``"matmul"`` instead of SDPA under ``torch.compile``: measured on an H200 (torch
            2.11, i3d_r50_nl, batch 8, fp32, train step), inductor fails on the SDPA call
            ("cutlassF: no kernel found to launch"), while the compiled matmul path ran in 0.0416 s
            against 0.0447 s for eager SDPA, peak memory 5138 against 5129 MiB.
            FLOP counting (videoattn.models.flops) counts the published block whatever runs.
            Measurements in scripts/bench_blocks.py.
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
        """The implementation that runs for ``num_queries`` positions and ``num_keys`` pooled ones on ``device``."""
        inst, cpu = self.instantiation, torch.device(device).type == "cpu"
        fold = cpu
        if inst == "concatenation":
            return "matmul"
        if inst == "dot_product" and self.impl in ("chunked", "sdpa"):
            return "reorder"
        if self.impl != "auto":
            return self.impl
        costs = _flops(self.in_channels, self.inner_channels, num_queries, num_keys, gaussian=inst == "gaussian")
        if inst == "dot_product":
            base = "reorder" if self.inner_channels < num_keys else "matmul"
            return "folded" if fold and costs["folded"] < costs[base] else base
        if not cpu:
            # inductor fails on the fused SDPA kernels here (see impl in the class docstring)
            return "matmul" if torch.compiler.is_compiling() else "sdpa"
        if fold and costs["folded"] < costs["matmul"]:
            return "folded"
        return "sdpa" if num_queries * num_keys >= MIN_FUSED_AFFINITY else "matmul"

    def _keys(self, x: torch.Tensor) -> torch.Tensor:
        """x, max-pooled for phi and g: (N, C, T, H, W) -> (N, C, Tk, Hk, Wk)."""
        return self.pool(x) if self.pool is not None else x

    def _queries_keys(self, x: torch.Tensor, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """theta (N, C', L), phi (N, C', Np) and the logit scale; C' = Ci (C for gaussian)."""
        if self.instantiation == "gaussian":
            return x.flatten(2), pooled.flatten(2), 1.0
        theta, phi = pointwise_conv(self.conv_theta, x), pointwise_conv(self.conv_phi, pooled)
        return theta, phi, self.inner_channels**-0.5

    def _affinity(self, theta: torch.Tensor, phi: torch.Tensor, scale: float) -> torch.Tensor:
        """The weights f(x_i, x_j) / C(x) as the block applies them: (N, L, Np)."""
        num_keys = phi.shape[2]
        if self.instantiation == "concatenation":
            # w . [theta_i, phi_j] = w_t . theta_i + w_p . phi_j
            w_theta, w_phi = self.concat_project.weight.split(self.inner_channels, dim=1)  # (1, Ci) each
            a = torch.matmul(w_theta, theta).transpose(1, 2)  # (1, Ci) x (N, Ci, L) => (N, L, 1)
            b = torch.matmul(w_phi, phi)  # (N, 1, Np)
            return F.relu(a + b) / num_keys  # (N, L, Np)
        affinity = torch.bmm(theta.transpose(1, 2), phi)  # (N, L, C') x (N, C', Np) => (N, L, Np)
        if self.instantiation == "dot_product":
            return affinity / num_keys
        return torch.softmax(affinity * scale, dim=-1)

    def affinity(self, x: torch.Tensor) -> torch.Tensor:
        """The attention weights that the block applies to ``x``: ``y_i = sum_j A[i, j] g(x_j)``,
        (N, C, T, H, W) -> (N, T, H, W, Tk, Hk, Wk), the key positions (Tk, Hk, Wk) after pooling.
        Softmax and gaussian weights sum to 1 over the keys; dot_product and concatenation are
        divided by the number of keys Np. Whatever ``impl`` the forward uses, the weights are
        computed here in full (L x Np per clip)."""
        check_input(x, self.in_channels, "NonLocal3d")
        n, _, t, h, w = x.shape
        pooled = self._keys(x)
        affinity = self._affinity(*self._queries_keys(x, pooled))  # (N, L, Np)
        return affinity.view(n, t, h, w, *pooled.shape[2:])

    def _folded(self, x: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """conv_out(y) with theta and conv_out moved to the pooled keys (``impl="folded"``): (N, C, L)."""
        g = pointwise_conv(self.conv_g, pooled)  # (N, Ci, Np)
        num_keys = g.shape[2]
        if self.instantiation == "gaussian":
            keys, key_bias = pooled.flatten(2), None  # (N, C, Np): raw features, scale 1
        else:
            phi = pointwise_conv(self.conv_phi, pooled)  # (N, Ci, Np)
            # scale * theta_i . phi_j = x_i . (scale W_theta^T phi_j) + scale b_theta . phi_j; the scale is
            # applied to the (C, Ci) weight, not to the (Np, L) logits and their gradient
            scale = self.inner_channels**-0.5 if self.instantiation == "softmax" else 1.0 / num_keys
            w_theta, b_theta = self.conv_theta.weight.flatten(1) * scale, self.conv_theta.bias * scale
            keys = project(w_theta.t(), phi)  # (C, Ci) x (N, Ci, Np) => (N, C, Np)
            # (N, 1, Ci) x (N, Ci, Np) => (N, 1, Np) -> (N, Np, 1)
            key_bias = torch.bmm(b_theta.view(1, 1, -1).expand(phi.shape[0], 1, -1), phi).transpose(1, 2)
        # the affinity transposed, keys first: (N, Np, C) x (N, C, L) => (N, Np, L)
        keys_t, queries = keys.transpose(1, 2), x.flatten(2)
        logits = torch.bmm(keys_t, queries) if key_bias is None else torch.baddbmm(key_bias, keys_t, queries)
        weights = logits if self.instantiation == "dot_product" else torch.softmax(logits, dim=1)
        values = project(self.conv_out.weight.flatten(1), g)  # (C, Ci) x (N, Ci, Np) => (N, C, Np)
        # conv_out(y) = (W_out g) A^T + b_out: (N, C, Np) x (N, Np, L) => (N, C, L)
        return torch.baddbmm(self.conv_out.bias.view(1, -1, 1), values, weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, "NonLocal3d")
        n, _, t, h, w = x.shape
        pooled = self._keys(x)
        impl = self._pick_impl(x.device, t * h * w, pooled.shape[2:].numel())
        if impl == "folded":
            p = self._folded(x, pooled)
        else:
            # (N, C', T, H, W) -> (N, C', L)
            theta, phi, scale = self._queries_keys(x, pooled)
            g = pointwise_conv(self.conv_g, pooled)  # (N, Ci, Np)
            if impl == "chunked":
                y = chunked_softmax_attention(theta, phi, g, scale)  # (N, Ci, L)
            elif impl == "sdpa":
                # (N, C', L) -> (N, 1, L, C'); the flash kernels need a contiguous last dim.
                q, k, v = (z.transpose(1, 2).unsqueeze(1).contiguous() for z in (theta, phi, g))
                y = F.scaled_dot_product_attention(q, k, v, scale=scale).squeeze(1).transpose(1, 2)
            elif impl == "reorder":
                # y = (g phi^T / Np) theta, the affinity (theta^T phi / Np) never formed:
                # (N, Ci, Np) x (N, Np, Ci) => (N, Ci, Ci); (N, Ci, Ci) x (N, Ci, L) => (N, Ci, L)
                y = torch.bmm(torch.bmm(g, phi.transpose(1, 2)) / phi.shape[2], theta)
            else:
                # (N, Ci, Np) x (N, Np, L) => (N, Ci, L)
                y = torch.bmm(g, self._affinity(theta, phi, scale).transpose(1, 2))
            p = pointwise_conv(self.conv_out, y)  # (N, C, L)
        p = p.view(n, -1, t, h, w)  # (N, C, L) -> (N, C, T, H, W)
        if self.norm is None:
            return x + p
        p = self.norm(p)
        # The norm's output is not needed by its backward: add the residual in place (one (N, C, THW)
        # buffer less at the end of the forward); out of place for other norms, dtypes or layouts.
        if isinstance(self.norm, _INPLACE_SAFE_NORMS) and p.dtype == x.dtype and p.is_contiguous() and x.is_contiguous():
            return p.add_(x)
        return x + p

    def extra_repr(self) -> str:
        return f"instantiation={self.instantiation!r}, impl={self.impl!r}"


def _flops(channels: int, inner: int, num_queries: int, num_keys: int, *, gaussian: bool) -> dict[str, int]:
    """Multiply-adds per clip of theta, the attention and conv_out (phi and g: the same for all)."""
    c, ci, length, np_ = channels, inner, num_queries, num_keys
    theta = 0 if gaussian else c * ci * length  # gaussian: no theta conv, logits on C channels
    logits = (c if gaussian else ci) * length * np_
    return {
        "matmul": theta + logits + ci * np_ * length + c * ci * length,
        "reorder": theta + ci * np_ * ci + ci * ci * length + c * ci * length,
        "folded": (0 if gaussian else c * ci * np_) + c * length * np_ + c * ci * np_ + c * np_ * length,
    }
