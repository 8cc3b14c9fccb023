"""CGNL3d: equal to the reference SpatialCGNL / SpatialCGNLx (ported to 3D below) with the same
weights; equal to the generalized non-local operation computed naively with the full
(C'*THW) x (C'*THW) affinity; Taylor coefficients; bad arguments.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from videoattn.blocks import CGNL3d
from videoattn.blocks.cgnl3d import taylor_coefficients


class ReferenceCGNL3d(nn.Module):
    """SpatialCGNL (dot) and SpatialCGNLx (Gaussian RBF) from KaiyuYue/cgnl-network.pytorch,
    model/resnet.py, kernels and forward kept line by line, with Conv2d -> Conv3d and h*w -> t*h*w
    (and without the `.cuda()` call). Reference for the test only."""

    def __init__(self, inplanes: int, planes: int, use_scale: bool, groups: int, kernel: str, order: int):
        super().__init__()
        self.use_scale, self.groups, self.order, self.kernel_type = use_scale, groups, order, kernel
        self.t = nn.Conv3d(inplanes, planes, kernel_size=1, stride=1, bias=False)
        self.p = nn.Conv3d(inplanes, planes, kernel_size=1, stride=1, bias=False)
        self.g = nn.Conv3d(inplanes, planes, kernel_size=1, stride=1, bias=False)
        self.z = nn.Conv3d(planes, inplanes, kernel_size=1, stride=1, groups=self.groups, bias=False)
        self.gn = nn.GroupNorm(num_groups=self.groups, num_channels=inplanes)

    def kernel(self, t, p, g, b, c, d, h, w):
        t = t.view(b, 1, c * d * h * w)
        p = p.view(b, 1, c * d * h * w)
        g = g.view(b, c * d * h * w, 1)
        if self.kernel_type == "dot":
            att = torch.bmm(p, g)
            if self.use_scale:
                att = att.div((c * d * h * w) ** 0.5)
            x = torch.bmm(att, t)
            return x.view(b, c, d, h, w)
        gamma = torch.Tensor(1).fill_(1e-4)
        beta = torch.exp(-2 * gamma)
        t_taylor, p_taylor = [], []
        for order in range(self.order + 1):
            alpha = torch.mul(torch.div(torch.pow((2 * gamma), order), math.factorial(order)), beta)
            alpha = torch.sqrt(alpha)
            t_taylor.append(t.pow(order).mul(alpha))
            p_taylor.append(p.pow(order).mul(alpha))
        t_taylor = torch.cat(t_taylor, dim=1)
        p_taylor = torch.cat(p_taylor, dim=1)
        att = torch.bmm(p_taylor, g)
        if self.use_scale:
            att = att.div((c * d * h * w) ** 0.5)
        att = att.view(b, 1, int(self.order + 1))
        x = torch.bmm(att, t_taylor)
        return x.view(b, c, d, h, w)

    def forward(self, x):
        residual = x
        t, p, g = self.t(x), self.p(x), self.g(x)
        b, c, d, h, w = t.size()
        if self.groups and self.groups > 1:
            _c = int(c / self.groups)
            ts = torch.split(t, split_size_or_sections=_c, dim=1)
            ps = torch.split(p, split_size_or_sections=_c, dim=1)
            gs = torch.split(g, split_size_or_sections=_c, dim=1)
            x = torch.cat([self.kernel(ts[i], ps[i], gs[i], b, _c, d, h, w) for i in range(self.groups)], dim=1)
        else:
            x = self.kernel(t, p, g, b, c, d, h, w)
        x = self.z(x)
        return self.gn(x) + residual


def _randomise(module: nn.Module, seed: int, std: float = 0.3) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)


def _x(shape=(2, 16, 3, 4, 4), seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("use_scale", [False, True])
@pytest.mark.parametrize("groups", [1, 2, 4])
@pytest.mark.parametrize("kernel", ["dot", "gaussian"])
def test_equals_reference(kernel: str, groups: int, use_scale: bool) -> None:
    block = CGNL3d(16, groups=groups, kernel=kernel, order=3, use_scale=use_scale)
    _randomise(block, seed=groups)
    ref = ReferenceCGNL3d(16, 8, use_scale, groups, kernel, order=3)
    ref.load_state_dict(block.state_dict())  # strict: same names t, p, g, z, gn
    # gamma = 1e-4: inputs are scaled so that 2 gamma t p ~ 1 and the k = 2, 3 Taylor terms matter
    x = _x(seed=10 + groups) * (30.0 if kernel == "gaussian" else 1.0)
    expected = ref(x)
    assert (expected - x).abs().max() > 0.1
    torch.testing.assert_close(block(x), expected, rtol=1e-4, atol=1e-4)


def _naive_generalized_nonlocal(block: CGNL3d, x: torch.Tensor) -> torch.Tensor:
    """y_j = sum_i f(t_j, p_i) g_i over all C' * T*H*W positions of a group, with the full affinity."""
    n, groups = x.shape[0], block.groups
    t, p, g = (conv(x).reshape(n, groups, -1) for conv in (block.t, block.p, block.g))  # (N, G, K)
    if block.kernel == "dot":
        affinity = t.unsqueeze(-1) * p.unsqueeze(-2)  # f(t_j, p_i) = t_j p_i: (N, G, K, K)
    else:  # Gaussian RBF, Taylor-expanded: f = sum_k alpha_k^2 t_j^k p_i^k
        affinity = sum(c * t.unsqueeze(-1) ** k * p.unsqueeze(-2) ** k for k, c in enumerate(taylor_coefficients(block.order)))
    if block.use_scale:
        affinity = affinity / t.shape[-1] ** 0.5
    y = (affinity @ g.unsqueeze(-1)).squeeze(-1)  # (N, G, K, K) x (N, G, K, 1) => (N, G, K)
    return x + block.gn(block.z(y.reshape(n, block.inner_channels, *x.shape[2:])))


@pytest.mark.parametrize("use_scale", [False, True])
@pytest.mark.parametrize("kernel", ["dot", "gaussian"])
def test_equals_naive_full_affinity(kernel: str, use_scale: bool) -> None:
    block = CGNL3d(8, groups=2, kernel=kernel, use_scale=use_scale).double()
    _randomise(block, seed=5)
    x = _x((2, 8, 2, 3, 3), seed=6, dtype=torch.float64) * (30.0 if kernel == "gaussian" else 1.0)
    expected = _naive_generalized_nonlocal(block, x)
    assert (expected - x).abs().max() > 0.1
    torch.testing.assert_close(block(x), expected, rtol=1e-10, atol=1e-10)


def test_taylor_expansion_approximates_the_rbf_kernel() -> None:
    # sum_k beta (2 gamma tp)^k / k!  ->  beta * exp(2 gamma t p), the reference's linearised RBF
    coefs = taylor_coefficients(3)
    assert coefs[0] == pytest.approx(math.exp(-2e-4))
    assert coefs[1] == pytest.approx(math.exp(-2e-4) * 2e-4)
    tp = 50.0
    approx = sum(c * tp**k for k, c in enumerate(coefs))
    assert approx == pytest.approx(math.exp(-2e-4) * math.exp(2e-4 * tp), rel=1e-6)


def test_initial_state_and_default_width() -> None:
    block = CGNL3d(64)
    assert block.inner_channels == 32 and block.groups == 8 and block.kernel == "dot" and block.order == 3
    assert block.z.groups == 8 and block.gn.num_groups == 8
    assert block.gn.weight.abs().sum() == 0 and block.gn.bias.abs().sum() == 0
    assert all(getattr(block, name).bias is None for name in "tpgz")


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((12,), dict(groups=8), r"groups=8 must divide in_channels=12 and inner_channels=6"),
        ((16, 12), dict(groups=8), r"groups=8 must divide in_channels=16 and inner_channels=12"),
        ((16,), dict(kernel="rbf"), r"unknown kernel 'rbf'; expected one of 'dot', 'gaussian'"),
        ((16,), dict(order=0), r"order must be a positive int"),
        ((16,), dict(groups=0), r"groups must be a positive int"),
    ],
)
def test_bad_arguments(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CGNL3d(*args, **kwargs)
