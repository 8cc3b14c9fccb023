"""NonLocal3d: equal to pytorchvideo's NonLocal with the same weights; gaussian and concatenation
against the paper's formulas computed naively; the fused and matmul paths agree; bad arguments.
"""
from __future__ import annotations

import pytest
import torch
from pytorchvideo.layers.nonlocal_net import create_nonlocal
from torch import nn

from videoattn.blocks import NonLocal3d
from videoattn.blocks import _attention
from videoattn.blocks._attention import chunked_softmax_attention
from videoattn.blocks._pointwise import _PointwiseConv, grouped_pointwise_conv, pointwise_conv


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the chunked attention use many query chunks (one chunk = 100 affinity entries)."""
    monkeypatch.setattr(_attention, "CHUNK_ELEMENTS", 100)


def _randomise(module: nn.Module, seed: int) -> None:
    """Random weights everywhere (also the zero-initialised norm) and random BN statistics."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


def _x(shape: tuple[int, ...] = (2, 16, 4, 6, 6), seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("impl", ["auto", "matmul", "chunked", "sdpa"])
@pytest.mark.parametrize("pool_size", [(1, 1, 1), (1, 2, 2), (2, 2, 2)])
@pytest.mark.parametrize("instantiation", ["softmax", "dot_product"])
def test_equals_pytorchvideo_nonlocal(
    instantiation: str, pool_size: tuple[int, int, int], impl: str, small_chunks: None
) -> None:
    ref = create_nonlocal(dim_in=16, dim_inner=8, pool_size=pool_size, instantiation=instantiation)
    _randomise(ref, seed=1)
    ours = NonLocal3d(16, instantiation=instantiation, pool_size=pool_size, impl=impl)
    assert ours.load_state_dict(ref.state_dict()) is not None  # strict: same names and shapes
    assert set(ours.state_dict()) == set(ref.state_dict())
    x = _x()
    for train in (False, True):
        ref.train(train), ours.train(train)
        expected = ref(x)
        assert (expected - x).abs().max() > 0.1  # the non-local branch is not trivially zero
        torch.testing.assert_close(ours(x), expected, rtol=1e-4, atol=1e-4)


def test_pytorchvideo_loads_our_weights() -> None:
    ours = NonLocal3d(16, instantiation="softmax", pool_size=(1, 2, 2)).eval()
    _randomise(ours, seed=2)
    ref = create_nonlocal(dim_in=16, dim_inner=8, pool_size=(1, 2, 2), instantiation="softmax").eval()
    ref.load_state_dict(ours.state_dict())
    x = _x(seed=3)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", ["chunked", "sdpa", "matmul"])
def test_gradients_equal_pytorchvideo(impl: str, small_chunks: None) -> None:
    ref = create_nonlocal(dim_in=16, dim_inner=8, pool_size=(1, 2, 2), instantiation="softmax")
    _randomise(ref, seed=4)
    ours = NonLocal3d(16, pool_size=(1, 2, 2), impl=impl)
    ours.load_state_dict(ref.state_dict())
    # eval: with batch statistics the gradient of conv_g.bias is exactly 0 (rounding noise only)
    ref.eval(), ours.eval()
    x1, x2 = _x(seed=5).requires_grad_(), _x(seed=5).requires_grad_()
    ref(x1).square().sum().backward()
    ours(x2).square().sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-4, atol=1e-4)
    ref_grads = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[name].grad, rtol=1e-4, atol=1e-4, msg=name)


def _naive_y(block: NonLocal3d, x: torch.Tensor) -> torch.Tensor:
    """The paper's y_i = 1/C(x) sum_j f(x_i, x_j) g(x_j), with the (THW x Np) affinity in full."""
    pooled = block.pool(x) if block.pool is not None else x
    g = block.conv_g(pooled).flatten(2)  # (N, Ci, Np)
    if block.instantiation == "gaussian":
        theta, phi = x.flatten(2), pooled.flatten(2)  # raw features, (N, C, L) and (N, C, Np)
        f = torch.einsum("ncl,ncp->nlp", theta, phi).exp()
        f = f / f.sum(-1, keepdim=True)  # C(x) = sum_j f
    else:  # concatenation
        theta, phi = block.conv_theta(x).flatten(2), block.conv_phi(pooled).flatten(2)
        num_q, num_k = theta.shape[2], phi.shape[2]
        # [theta_i, phi_j] for every pair: (N, 2 Ci, L, Np), as mmcv's repeat + cat
        pair = torch.cat(
            [theta.unsqueeze(3).expand(-1, -1, -1, num_k), phi.unsqueeze(2).expand(-1, -1, num_q, -1)], dim=1
        )
        f = torch.relu(torch.einsum("o c, n c l p -> n l p", block.concat_project.weight, pair))
        f = f / num_k  # C(x) = N, the number of positions
    return torch.einsum("nlp,ncp->ncl", f, g).view(x.shape[0], -1, *x.shape[2:])


@pytest.mark.parametrize("impl", ["chunked", "sdpa", "matmul"])
@pytest.mark.parametrize("instantiation", ["gaussian", "concatenation"])
def test_gaussian_and_concatenation_match_the_paper(instantiation: str, impl: str, small_chunks: None) -> None:
    block = NonLocal3d(16, instantiation=instantiation, pool_size=(1, 2, 2), impl=impl).eval()
    _randomise(block, seed=6)
    x = _x(seed=7) * 0.3  # raw-feature dot products stay in softmax's useful range
    with torch.no_grad():
        expected = x + block.norm(block.conv_out(_naive_y(block, x)))
        out = block(x)
    assert (expected - x).abs().max() > 0.1
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_gaussian_has_no_theta_phi() -> None:
    names = {k.split(".")[0] for k in NonLocal3d(16, instantiation="gaussian").state_dict()}
    assert names == {"conv_g", "conv_out", "norm"}


def test_chunked_attention_gradcheck(small_chunks: None) -> None:
    gen = torch.Generator().manual_seed(9)
    q, k, v = (torch.randn(shape, generator=gen, dtype=torch.float64, requires_grad=True) for shape in [(2, 5, 23), (2, 5, 7), (2, 3, 7)])
    assert _attention.query_chunk(23, 7) == 14  # two chunks, the second one partial
    expected = torch.einsum("bdj,bij->bdi", v, torch.softmax(torch.einsum("bdi,bdj->bij", q, k) * 0.7, dim=-1))
    torch.testing.assert_close(chunked_softmax_attention(q, k, v, 0.7), expected)
    assert torch.autograd.gradcheck(lambda q, k, v: chunked_softmax_attention(q, k, v, 0.7), (q, k, v))


@pytest.mark.parametrize("impl", ["chunked", "sdpa", "matmul"])
def test_bf16_autocast_close_to_fp32(impl: str, small_chunks: None) -> None:
    block = NonLocal3d(16, impl=impl).eval()
    _randomise(block, seed=10)
    x = _x((1, 16, 2, 4, 4), seed=11)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), block(x), rtol=0.1, atol=0.1)


def test_pointwise_conv_equals_conv3d() -> None:
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(3, 5, 7, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(4, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(_PointwiseConv.apply, (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w: _PointwiseConv.apply(x, w, None), (x, w))
    conv, grouped = nn.Conv3d(8, 6, 1), nn.Conv3d(8, 12, 1, groups=4, bias=False)
    x = torch.randn(2, 8, 2, 3, 3)
    for inp in (x, x.contiguous(memory_format=torch.channels_last_3d)):
        torch.testing.assert_close(pointwise_conv(conv, inp), conv(x).flatten(2))
        torch.testing.assert_close(grouped_pointwise_conv(grouped, inp.flatten(2)), grouped(x).flatten(2))


def test_auto_choice_by_shape_and_device() -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    res3, res4 = (8 * 28 * 28, 8 * 14 * 14), (8 * 14 * 14, 8 * 7 * 7)
    soft = NonLocal3d(16)
    assert soft._pick_impl(cpu, *res3) == "sdpa" and soft._pick_impl(cpu, *res4) == "matmul"
    assert soft._pick_impl(cpu, 4 * 36, 36) == "matmul" and soft._pick_impl(gpu, *res3) == "sdpa"
    dot = NonLocal3d(512, instantiation="dot_product")
    assert dot._pick_impl(cpu, *res3) == "reorder" and dot._pick_impl(cpu, 6272, 98) == "matmul"
    assert NonLocal3d(16, impl="sdpa")._pick_impl(cpu, 4, 4) == "sdpa"


def test_identity_at_init_with_a_norm_without_affine() -> None:
    block = NonLocal3d(16, norm_layer=lambda c: nn.BatchNorm3d(c, affine=False))
    x = _x(seed=9)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)


def test_inner_channels_and_no_norm() -> None:
    block = NonLocal3d(16, 4, norm_layer=None)
    assert block.conv_theta.out_channels == 4 and block.conv_out.in_channels == 4
    assert block.norm is None
    x = _x(seed=8)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)  # conv_out zero-initialised instead


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(instantiation="embedded"), r"unknown instantiation 'embedded'; expected one of 'softmax'"),
        (dict(impl="cuda"), r"unknown impl 'cuda'"),
        (dict(pool_size=(2, 2)), r"pool_size must be three positive ints"),
        (dict(pool_size=(1, 0, 2)), r"pool_size must be three positive ints"),
        (dict(inner_channels=0), r"inner_channels must be a positive int"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NonLocal3d(16, **kwargs)
