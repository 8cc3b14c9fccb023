"""NonLocal3d: equal to pytorchvideo's NonLocal with the same weights (outputs and gradients, every
implementation); gaussian and concatenation against the paper's formulas computed naively; the
affinity the block exposes rebuilds its output; the implementation choice per shape and device;
bad arguments.
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


IMPLS = ["auto", "matmul", "folded", "chunked", "sdpa"]


@pytest.mark.parametrize("impl", IMPLS)
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


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("instantiation", ["softmax", "dot_product"])
def test_gradients_equal_pytorchvideo(instantiation: str, impl: str, small_chunks: None) -> None:
    ref = create_nonlocal(dim_in=16, dim_inner=8, pool_size=(1, 2, 2), instantiation=instantiation)
    _randomise(ref, seed=4)
    ours = NonLocal3d(16, instantiation=instantiation, pool_size=(1, 2, 2), impl=impl)
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


def test_train_mode_gradients_equal_pytorchvideo_at_res4_shape() -> None:
    """Batch statistics, and the shape where auto folds theta and conv_out onto the pooled keys."""
    ref = create_nonlocal(dim_in=64, dim_inner=32, pool_size=(1, 2, 2), instantiation="softmax")
    _randomise(ref, seed=14)
    ours = NonLocal3d(64, pool_size=(1, 2, 2))
    ours.load_state_dict(ref.state_dict())
    x = _x((2, 64, 4, 4, 4), seed=15)
    assert ours._pick_impl(x.device, 64, 16) == "folded"
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad = _x((2, 64, 4, 4, 4), seed=16)
    out1, out2 = ref(x1), ours(x2)
    torch.testing.assert_close(out2, out1, rtol=1e-4, atol=1e-4)
    out1.backward(grad), out2.backward(grad)
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-4, atol=1e-4)
    ref_grads = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[name].grad, rtol=1e-3, atol=1e-4, msg=name)
    torch.testing.assert_close(ours.norm.running_var, ref.norm.running_var)


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


@pytest.mark.parametrize("impl", ["chunked", "sdpa", "matmul", "folded"])
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


@pytest.mark.parametrize("impl", ["chunked", "sdpa", "matmul", "folded"])
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


# (queries, keys) per clip of I3D-R50's NL blocks at training (8 frames) and their test views (4)
RES3, RES4 = (8 * 28 * 28, 8 * 14 * 14), (8 * 14 * 14, 8 * 7 * 7)


def test_auto_choice_by_shape_and_device() -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    res3, res4 = NonLocal3d(512), NonLocal3d(1024)
    assert res3._pick_impl(cpu, *RES3) == "sdpa" and res4._pick_impl(cpu, *RES4) == "folded"
    assert res4._pick_impl(cpu, 4 * 14 * 14, 4 * 7 * 7) == "folded"  # test views, 4 time steps
    assert NonLocal3d(16)._pick_impl(cpu, 4 * 36, 36) == "matmul"
    assert NonLocal3d(1024, instantiation="gaussian")._pick_impl(cpu, *RES4) == "folded"
    dot3, dot4 = NonLocal3d(512, instantiation="dot_product"), NonLocal3d(1024, instantiation="dot_product")
    assert dot3._pick_impl(cpu, *RES3) == "reorder" and dot4._pick_impl(cpu, *RES4) == "folded"
    assert dot3._pick_impl(cpu, 6272, 98) == "folded" and dot3._pick_impl(gpu, 6272, 98) == "matmul"
    assert NonLocal3d(16, impl="sdpa")._pick_impl(cpu, 4, 4) == "sdpa"
    assert NonLocal3d(16, impl="folded")._pick_impl(gpu, 4, 4) == "folded"  # an explicit choice is kept
    assert NonLocal3d(16, instantiation="concatenation", impl="folded")._pick_impl(cpu, *RES4) == "matmul"


def test_auto_choice_under_compile_on_cuda_is_matmul(monkeypatch: pytest.MonkeyPatch) -> None:
    # inductor failed on SDPA on an H200 ("cutlassF: no kernel found to launch"): compiled CUDA
    # graphs take the plain matmul path, eager ones keep SDPA
    gpu, res3 = torch.device("cuda"), NonLocal3d(512)
    assert res3._pick_impl(gpu, *RES3) == "sdpa"
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert res3._pick_impl(gpu, *RES3) == "matmul"


def test_auto_on_other_devices_is_the_standard_choice() -> None:
    """Nothing tuned on the CPU runs elsewhere: SDPA for softmax and gaussian, never the folded path."""
    for device in ("cuda", "mps", "meta"):
        for block, shape in ((NonLocal3d(512), RES3), (NonLocal3d(1024), RES4), (NonLocal3d(16), (144, 36))):
            assert block._pick_impl(torch.device(device), *shape) == "sdpa"
        assert NonLocal3d(1024, instantiation="gaussian")._pick_impl(torch.device(device), *RES4) == "sdpa"
        dot4 = NonLocal3d(1024, instantiation="dot_product")
        assert dot4._pick_impl(torch.device(device), *RES4) in ("reorder", "matmul")


@pytest.mark.parametrize("instantiation", ["softmax", "dot_product", "gaussian", "concatenation"])
def test_runs_on_a_non_cpu_device(instantiation: str) -> None:
    """The standard-ops path (plain convs, SDPA) forward and backward, shapes only (meta device)."""
    block = NonLocal3d(64, instantiation=instantiation).to("meta")
    x = torch.empty(2, 64, 4, 6, 6, device="meta", requires_grad=True)
    out = block(x)
    out.sum().backward()
    assert out.shape == x.shape and x.grad.shape == x.shape


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("instantiation", ["softmax", "dot_product", "gaussian", "concatenation"])
def test_affinity_rebuilds_the_block_output(instantiation: str, impl: str) -> None:
    """``block.affinity(x)`` is the attention the block applies: y = A g, out = x + norm(conv_out(y))."""
    block = NonLocal3d(16, instantiation=instantiation, pool_size=(1, 2, 2), impl=impl).eval()
    _randomise(block, seed=17)
    x = _x((2, 16, 3, 4, 6), seed=18) * (0.3 if instantiation == "gaussian" else 1.0)
    with torch.no_grad():
        att = block.affinity(x)
        assert att.shape == (2, 3, 4, 6, 3, 2, 3)
        if instantiation in ("softmax", "gaussian"):
            torch.testing.assert_close(att.flatten(4).sum(-1), torch.ones(2, 3, 4, 6))
        g = block.conv_g(block.pool(x)).flatten(2)  # (N, Ci, Np)
        # (N, Ci, Np) x (N, Np, L) => (N, Ci, L) -> (N, Ci, T, H, W)
        y = torch.bmm(g, att.reshape(2, 72, 18).transpose(1, 2)).view(2, 8, 3, 4, 6)
        expected = x + block.norm(block.conv_out(y))
        assert (expected - x).abs().max() > 0.1
        torch.testing.assert_close(block(x), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, C=16, T, H, W\)"):
        block.affinity(x[:, :8])


def test_residual_with_a_norm_that_keeps_its_output() -> None:
    """The residual is added in place only to norms that do not need their output for backward."""
    def norm_layer(c: int) -> nn.Module:
        return nn.Sequential(nn.BatchNorm3d(c), nn.Sigmoid())  # sigmoid's backward reads its output

    torch.manual_seed(19)
    ours = NonLocal3d(16, norm_layer=norm_layer)
    ref = NonLocal3d(16, norm_layer=norm_layer, impl="matmul")
    ref.load_state_dict(ours.state_dict())
    x1, x2 = _x(seed=20).requires_grad_(), _x(seed=20).requires_grad_()
    ours(x1).square().sum().backward()
    expected = x2 + ref.norm(ref.conv_out(_naive_softmax_y(ref, x2)))
    expected.square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-4)


def _naive_softmax_y(block: NonLocal3d, x: torch.Tensor) -> torch.Tensor:
    pooled = block.pool(x)
    theta, phi, g = block.conv_theta(x).flatten(2), block.conv_phi(pooled).flatten(2), block.conv_g(pooled).flatten(2)
    att = torch.softmax(torch.einsum("ncl,ncp->nlp", theta, phi) * block.inner_channels**-0.5, dim=-1)
    return torch.einsum("nlp,ncp->ncl", att, g).view(x.shape[0], -1, *x.shape[2:])


@pytest.mark.parametrize("impl", ["auto", "folded", "matmul"])
def test_channels_last_input(impl: str) -> None:
    block = NonLocal3d(16, impl=impl)
    _randomise(block, seed=21)
    x = _x(seed=22)
    xc = x.contiguous(memory_format=torch.channels_last_3d).requires_grad_()
    out = block(xc)
    torch.testing.assert_close(out, block(x), rtol=1e-5, atol=1e-5)
    out.sum().backward()
    assert xc.grad.shape == x.shape


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


def test_flop_counting_sees_the_unfolded_block() -> None:
    """fvcore traces with torch.jit: the model card counts the published block, not the folded path."""
    from videoattn.models.flops import flop_counter

    block = NonLocal3d(64, pool_size=(1, 2, 2)).eval()
    x = torch.zeros(1, 64, 4, 4, 4)
    assert block._pick_impl(x.device, 64, 16) == "folded"
    with torch.no_grad():
        total = flop_counter(block, x).total()
        total -= flop_counter(block, x).by_operator().get("batch_norm", 0)
    length, keys, c, ci = 64, 16, 64, 32
    assert total == 2 * c * ci * length + 2 * c * ci * keys + 2 * ci * length * keys


def test_folded_under_torch_compile_training_graph() -> None:
    """Forward + backward of the folded path (in-place residual included) captured by dynamo/AOTAutograd."""
    block = NonLocal3d(16, impl="folded")
    _randomise(block, seed=23)
    x = _x(seed=24)
    x_ref, x_c = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref = block(x_ref)
    ref.square().sum().backward()
    grads_ref = [p.grad.clone() for p in block.parameters()]
    block.zero_grad()
    # compiled, the 1x1x1 convs are standard ops while eager CPU runs the GEMM Function: the same math
    # in another float32 summation order: conv_out's weight gradient differs by up to 4e-4 here, where
    # each float32 path is 1e-3 from float64 (eager GEMM 1.0e-3, eager conv 6.9e-4)
    out = torch.compile(block, backend="aot_eager")(x_c)
    out.square().sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(x_c.grad, x_ref.grad, rtol=1e-3, atol=1e-3)
    for p, g in zip(block.parameters(), grads_ref):
        torch.testing.assert_close(p.grad, g, rtol=1e-3, atol=1e-3)
