"""LocalRelation3d: equal to the paper's formula computed with loops (float64), gradients of the
custom op against finite differences, locality, weights over the clipped neighbourhood, the `lr`
residual block, bf16, bad arguments.
"""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from videoattn.blocks import LocalRelation3d, LocalRelationBlock3d
from videoattn.blocks.local_relation3d import local_relation


def _x(shape: tuple[int, ...], seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def naive_local_relation(layer: LocalRelation3d, x: torch.Tensor) -> torch.Tensor:
    """The paper's y(p') = sum_{p in Omega(p')} softmax_p(Phi(q(p'), k(p)) + f_geo(p - p')) x(p), per
    head, one output position, head and neighbour at a time; then the 1x1 channel transform."""
    n, c, t, h, w = x.shape
    heads, (kt, kh, kw), (st, sh, sw) = layer.heads, layer.kernel_size, layer.stride
    d, cg = layer.key_channels // heads, c // heads
    q, k = layer.conv_query(x), layer.conv_key(x)  # full resolution; queries read at p' = stride * i
    out = layer.output_size((t, h, w))
    y = torch.zeros(n, c, *out, dtype=x.dtype)
    offsets = list(itertools.product(*(range(-(s // 2), s // 2 + 1) for s in (kt, kh, kw))))
    for b, (i, j, l), g in itertools.product(range(n), itertools.product(*map(range, out)), range(heads)):
        centre = (i * st, j * sh, l * sw)
        logits, values = [], []
        for off in offsets:
            a, bb, cc = (p + o for p, o in zip(centre, off))
            if not (0 <= a < t and 0 <= bb < h and 0 <= cc < w):
                continue  # outside the input: no part in the softmax
            qq, kk = q[b, g * d : (g + 1) * d, centre[0], centre[1], centre[2]], k[b, g * d : (g + 1) * d, a, bb, cc]
            if layer.composability == "squared_difference":
                phi = -((qq - kk) ** 2).sum()
            else:
                phi = (qq * kk).sum() / d**0.5
            logits.append(phi + layer.geometry(torch.tensor(off, dtype=x.dtype))[g])
            values.append(x[b, g * cg : (g + 1) * cg, a, bb, cc])
        weights = torch.softmax(torch.stack(logits), dim=0)
        y[b, g * cg : (g + 1) * cg, i, j, l] = (weights[:, None] * torch.stack(values)).sum(0)
    return layer.conv_out(y)


@pytest.mark.parametrize("impl", ["window", "dense"])
@pytest.mark.parametrize("composability", ["squared_difference", "dot"])
@pytest.mark.parametrize("stride", [1, (1, 2, 2), 2])
def test_equals_the_paper_formula(composability: str, stride, impl: str) -> None:
    torch.manual_seed(0)
    layer = LocalRelation3d(4, 6, kernel_size=(3, 3, 5), heads=2, key_channels=4, stride=stride,
                            composability=composability, impl=impl).double()
    x = _x((1, 4, 3, 4, 5), seed=1)
    out = layer(x)
    assert out.shape == (1, 6, *layer.output_size((3, 4, 5)))
    torch.testing.assert_close(out, naive_local_relation(layer, x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("composability", ["squared_difference", "dot"])
@pytest.mark.parametrize("stride", [[1, 1, 1], [2, 1, 2]])
def test_op_gradients_against_finite_differences(composability: str, stride: list[int], dense: bool) -> None:
    gen = torch.Generator().manual_seed(2)
    out = [(3 - 1) // stride[0] + 1, 2, (4 - 1) // stride[2] + 1]  # input (3, 2, 4), kernel (3, 1, 3)
    shapes = [(1, 2, 2, *out), (1, 2, 2, 5, 2, 6), (1, 2, 2, 5, 2, 6), (2, 9)]  # q, padded k, padded v, geometry
    q, k, v, geo = (torch.randn(s, generator=gen, dtype=torch.float64, requires_grad=True) for s in shapes)

    def fn(q, k, v, geo):
        return local_relation(q, k, v, geo, [3, 1, 3], stride, composability, dense)[0]

    assert torch.autograd.gradcheck(fn, (q, k, v, geo), fast_mode=True)


@pytest.mark.parametrize("composability", ["squared_difference", "dot"])
@pytest.mark.parametrize("stride", [1, (1, 2, 2)])
def test_dense_and_window_paths_agree(composability: str, stride) -> None:
    """The two computations of the op: outputs, gradients of the input and every parameter, and
    the aggregation weights equal to float64 rounding, on a map larger than the neighbourhood."""
    torch.manual_seed(15)
    window = LocalRelation3d(8, 6, kernel_size=(3, 7, 7), heads=2, key_channels=4, stride=stride,
                             composability=composability, impl="window").double()
    dense = LocalRelation3d(8, 6, kernel_size=(3, 7, 7), heads=2, key_channels=4, stride=stride,
                            composability=composability, impl="dense").double()
    dense.load_state_dict(window.state_dict())
    x = _x((2, 8, 4, 9, 8), seed=16).requires_grad_()
    outs = [layer(x) for layer in (window, dense)]
    grad = torch.randn_like(outs[0])
    grads = [torch.autograd.grad(out, (x, *layer.parameters()), grad) for out, layer in zip(outs, (window, dense))]
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-12, atol=1e-12)
    for g_dense, g_window in zip(grads[1], grads[0]):
        torch.testing.assert_close(g_dense, g_window, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(dense.aggregation_weights(x), window.aggregation_weights(x), rtol=1e-12, atol=1e-14)


def test_auto_is_dense_only_on_maps_near_the_neighbourhood_size() -> None:
    layer = LocalRelation3d(8, kernel_size=(3, 7, 7), heads=2)  # K = 147
    assert layer._dense(8 * 4 * 4) and layer._dense(3 * 147)
    assert not layer._dense(3 * 147 + 1) and not layer._dense(8 * 56 * 56)
    assert LocalRelation3d(8, heads=2, impl="window")._dense(1) is False
    assert LocalRelation3d(8, heads=2, impl="dense")._dense(10**6) is True


def test_layer_gradients_against_finite_differences() -> None:
    torch.manual_seed(3)
    layer = LocalRelation3d(4, kernel_size=(3, 3, 3), heads=2, stride=(1, 2, 1)).double()
    x = _x((1, 4, 2, 4, 3), seed=4).requires_grad_()
    params = tuple(layer.parameters())

    def fn(x, *ps):
        return torch.func.functional_call(layer, dict(zip(dict(layer.named_parameters()), ps)), (x,))

    assert torch.autograd.gradcheck(fn, (x, *params), fast_mode=True)


def test_locality_outside_the_neighbourhood_changes_nothing() -> None:
    torch.manual_seed(5)
    layer = LocalRelation3d(8, kernel_size=(3, 3, 3), heads=4).double()
    x = _x((1, 8, 5, 7, 7), seed=6)
    centre = (2, 3, 3)
    ref = layer(x)[0, :, centre[0], centre[1], centre[2]]
    # every position outside the 3x3x3 cube around the centre: replaced
    outside = torch.ones(5, 7, 7, dtype=torch.bool)
    outside[1:4, 2:5, 2:5] = False
    changed = torch.where(outside, _x((1, 8, 5, 7, 7), seed=7), x)
    torch.testing.assert_close(layer(changed)[0, :, centre[0], centre[1], centre[2]], ref, rtol=0, atol=0)
    # one position inside the cube (a corner of it): the output moves
    corner = x.clone()
    corner[0, :, 1, 2, 4] += 1.0
    assert (layer(corner)[0, :, centre[0], centre[1], centre[2]] - ref).abs().max() > 1e-3


def test_weights_sum_to_one_over_the_clipped_neighbourhood() -> None:
    torch.manual_seed(8)
    layer = LocalRelation3d(8, kernel_size=(3, 5, 5), heads=2)
    weights = layer.aggregation_weights(_x((2, 8, 2, 4, 4), seed=9, dtype=torch.float32))
    assert weights.shape == (2, 2, 75, 2, 4, 4)
    torch.testing.assert_close(weights.sum(2), torch.ones(2, 2, 2, 4, 4))
    # offset (-1, -2, -2) (index 0) of position (0, 0, 0) and (0, 1, *) lies outside the clip: weight 0
    assert (weights[:, :, 0, 0] == 0).all() and (weights[:, :, 0, :, 1] == 0).all()
    assert (weights[:, :, 0, 1, 2:, 2:] > 0).all()  # inside for these positions


def test_the_geometry_prior_acts() -> None:
    torch.manual_seed(10)
    layer = LocalRelation3d(4, kernel_size=3, heads=2)
    x = _x((1, 4, 3, 3, 3), seed=11, dtype=torch.float32)
    before = layer(x)
    with torch.no_grad():
        layer.geometry[2].bias.add_(torch.tensor([0.0, 2.0]))  # constant per head: softmax-invariant
    torch.testing.assert_close(layer(x), before)
    with torch.no_grad():
        layer.geometry[2].weight.mul_(5.0)  # offset-dependent: changes the weights
    assert (layer(x) - before).abs().max() > 1e-3


def test_block_is_a_zero_initialised_residual() -> None:
    block = LocalRelationBlock3d(16, kernel_size=(1, 3, 3), heads=4)
    x = _x((2, 16, 2, 5, 5), seed=12, dtype=torch.float32)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)
    with torch.no_grad():
        block.norm.weight.fill_(1.0)
    block.eval()
    torch.testing.assert_close(block(x), x + block.norm(block.lr(x)))
    no_norm = LocalRelationBlock3d(16, kernel_size=3, heads=4, norm_layer=None)
    assert (no_norm.lr.conv_out.weight == 0).all()
    torch.testing.assert_close(no_norm(x), x, rtol=0, atol=0)


@pytest.mark.parametrize("impl", ["window", "dense"])
def test_channels_last_3d_and_bf16_close_to_fp32(impl: str) -> None:
    torch.manual_seed(13)
    layer = LocalRelation3d(16, kernel_size=(3, 3, 3), heads=4, stride=(1, 2, 2), impl=impl).eval()
    x = _x((1, 16, 3, 6, 6), seed=14, dtype=torch.float32)
    ref = layer(x)
    torch.testing.assert_close(layer(x.contiguous(memory_format=torch.channels_last_3d)), ref, rtol=1e-5, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(heads=3), r"heads=3 must divide in_channels=16"),
        (dict(key_channels=6), r"heads=8 must divide in_channels=16 and key_channels=6"),
        (dict(kernel_size=(3, 4, 3)), r"kernel_size must be odd"),
        (dict(kernel_size=(3, 3)), r"kernel_size must be a positive int or three positive ints"),
        (dict(stride=0), r"stride must be a positive int or three positive ints"),
        (dict(composability="cosine"), r"unknown composability 'cosine'; expected one of 'squared_difference', 'dot'"),
        (dict(out_channels=0), r"out_channels must be a positive int"),
        (dict(impl="loops"), r"unknown impl 'loops'; expected one of 'auto', 'window', 'dense'"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LocalRelation3d(16, **kwargs)


def test_bad_input_names_the_layer() -> None:
    with pytest.raises(ValueError, match=r"LocalRelation3d: expected input of shape \(N, C=16, T, H, W\)"):
        LocalRelation3d(16)(torch.zeros(1, 16, 4, 4))
    assert isinstance(LocalRelationBlock3d(16).lr, nn.Module)
