"""RelationModule3d: equal to the reference `attention_module_multi_head` (Relation Networks,
ported line by line below) with the same weights; with pooled keys equal to the paper's formula
computed pair by pair; the matmul, chunked and SDPA paths agree in outputs and gradients; bad
arguments.
"""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from videoattn.blocks import RelationModule3d
from videoattn.blocks import relation_module3d
from videoattn.blocks.relation_module3d import _RelationAttention, sine_embedding


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the chunked path use many query chunks."""
    monkeypatch.setattr(relation_module3d, "CHUNK_ELEMENTS", 200)


def _x(shape: tuple[int, ...], seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _randomise(block: RelationModule3d, seed: int) -> RelationModule3d:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.3)
        block.pair_pos_fc1.bias.add_(0.5)  # most w_G > 0: the geometric term is not just the 1e-6 floor
    return block


def reference_position_embedding(position_mat: torch.Tensor, feat_dim: int, wave_length: float = 1000.0) -> torch.Tensor:
    """`extract_position_embedding` of the reference, for 3 geometric components (dt, dy, dx)
    instead of the 4 box ratios, without the x100 scaling of log-ratios (offsets are in pixels)."""
    components = position_mat.shape[-1]
    feat_range = torch.arange(0, feat_dim / (2 * components), dtype=position_mat.dtype)
    dim_mat = wave_length ** ((2.0 * components / feat_dim) * feat_range)
    div_mat = position_mat[..., None] / dim_mat  # [num_rois, nongt_dim, 3, feat_dim / 6]
    embedding = torch.cat((div_mat.sin(), div_mat.cos()), dim=3)
    return embedding.reshape(*position_mat.shape[:2], feat_dim)


def reference_attention_module_multi_head(roi_feat, position_embedding, nongt_dim, fc_dim, feat_dim, dim, group, w):
    """`attention_module_multi_head` of msracver/Relation-Networks-for-Object-Detection (relation_rcnn/
    symbols/resnet_v1_101_rcnn_attention_1024_pairwise_position_multi_head_16.py), mx.sym -> torch."""
    dim_group = (dim[0] // group, dim[1] // group, dim[2] // group)
    nongt_roi_feat = roi_feat[:nongt_dim]
    position_embedding_reshape = position_embedding.reshape(-1, position_embedding.shape[2])
    position_feat_1 = F.linear(position_embedding_reshape, w["pair_pos_fc1.weight"], w["pair_pos_fc1.bias"])
    position_feat_1_relu = F.relu(position_feat_1)
    aff_weight = position_feat_1_relu.reshape(-1, nongt_dim, fc_dim)
    aff_weight = aff_weight.permute(0, 2, 1)
    q_data = F.linear(roi_feat, w["query.weight"].flatten(1), w["query.bias"])
    q_data_batch = q_data.reshape(-1, group, dim_group[0]).permute(1, 0, 2)
    k_data = F.linear(nongt_roi_feat, w["key.weight"].flatten(1), w["key.bias"])
    k_data_batch = k_data.reshape(-1, group, dim_group[1]).permute(1, 0, 2)
    v_data = nongt_roi_feat
    aff = torch.bmm(q_data_batch, k_data_batch.transpose(1, 2))
    aff_scale = (1.0 / math.sqrt(float(dim_group[1]))) * aff
    aff_scale = aff_scale.permute(1, 0, 2)
    weighted_aff = torch.log(torch.clamp(aff_weight, min=1e-6)) + aff_scale
    aff_softmax = torch.softmax(weighted_aff, dim=2)
    aff_softmax_reshape = aff_softmax.reshape(-1, nongt_dim)
    output_t = aff_softmax_reshape @ v_data
    output_t = output_t.reshape(-1, fc_dim * feat_dim, 1, 1)
    linear_out = F.conv2d(output_t, w["linear_out.weight"][..., 0], w["linear_out.bias"], groups=fc_dim)
    return linear_out.reshape(linear_out.shape[0], linear_out.shape[1])


def test_equals_the_reference_attention_module() -> None:
    block = _randomise(RelationModule3d(32, heads=4, key_channels=16, geometry_channels=48, pool_size=None), seed=1).double()
    x = _x((1, 32, 2, 3, 4), seed=2)
    positions = torch.cartesian_prod(*(torch.arange(n, dtype=torch.float64) for n in x.shape[2:]))  # (L, 3)
    offsets = positions[None, :, :] - positions[:, None, :]  # [query n, key m] = p_m - p_n
    embedding = reference_position_embedding(offsets, 48)
    torch.testing.assert_close(embedding, sine_embedding(offsets.flatten(0, 1), 48).view_as(embedding))
    roi_feat = x.flatten(2)[0].t()  # (L, C): every position a "roi"
    length = roi_feat.shape[0]
    expected = reference_attention_module_multi_head(roi_feat, embedding, length, 4, 32, (16, 16, 32), 4, block.state_dict())
    out = block(x) - x  # the reference returns the relation feature; the block adds it to x
    assert expected.abs().max() > 0.1
    torch.testing.assert_close(out.flatten(2)[0].t(), expected, rtol=1e-10, atol=1e-10)


def naive_relation(block: RelationModule3d, x: torch.Tensor) -> torch.Tensor:
    """w^{mn} = w_G^{mn} exp(w_A^{mn}) / sum_k w_G^{kn} exp(w_A^{kn}) pair by pair, keys at the pooled
    cells' centres, f_R^h(n) = sum_m w^{mn} W_V^h x_m; out = x + concat_h f_R^h."""
    heads, d = block.heads, block.key_channels // block.heads
    pooled = block.pool(x) if block.pool is not None else x
    q, k, v = block.query(x), block.key(pooled), block.linear_out(pooled)
    stride = block.pool_size
    out = x.clone()
    cv = x.shape[1] // heads
    for b, n_pos in itertools.product(range(x.shape[0]), itertools.product(*map(range, x.shape[2:]))):
        for h in range(heads):
            numer, values = [], []
            for m_pos in itertools.product(*map(range, pooled.shape[2:])):
                centre = torch.tensor([s * j + (s - 1) / 2 for s, j in zip(stride, m_pos)], dtype=x.dtype)
                offset = centre - torch.tensor(n_pos, dtype=x.dtype)
                w_g = torch.relu(block.pair_pos_fc1(sine_embedding(offset[None], block.geometry_channels))[0, h])
                w_a = (q[b, h * d : (h + 1) * d][(slice(None), *n_pos)] * k[b, h * d : (h + 1) * d][(slice(None), *m_pos)]).sum() / d**0.5
                numer.append(torch.clamp(w_g, min=1e-6) * torch.exp(w_a))
                values.append(v[b, h * cv : (h + 1) * cv][(slice(None), *m_pos)])
            w = torch.stack(numer) / torch.stack(numer).sum()
            out[(b, slice(h * cv, (h + 1) * cv), *n_pos)] += (w[:, None] * torch.stack(values)).sum(0)
    return out


@pytest.mark.parametrize("impl", ["matmul", "chunked", "sdpa"])
@pytest.mark.parametrize("pool_size", [(1, 2, 2), (2, 2, 1)])
def test_pooled_keys_equal_the_paper_formula(impl: str, pool_size: tuple[int, int, int], small_chunks: None) -> None:
    block = _randomise(RelationModule3d(16, heads=2, key_channels=8, geometry_channels=12, pool_size=pool_size, impl=impl), seed=3).double()
    x = _x((1, 16, 2, 4, 3), seed=4)
    torch.testing.assert_close(block(x), naive_relation(block, x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("impl", ["chunked", "sdpa"])
def test_implementations_agree_in_outputs_and_gradients(impl: str, small_chunks: None) -> None:
    torch.manual_seed(5)
    ref = _randomise(RelationModule3d(32, heads=4, impl="matmul"), seed=6)
    other = RelationModule3d(32, heads=4, impl=impl)
    other.load_state_dict(ref.state_dict())
    x1 = _x((2, 32, 2, 4, 6), seed=7, dtype=torch.float32).requires_grad_()
    x2 = x1.detach().clone().requires_grad_()
    out1, out2 = ref(x1), other(x2)
    torch.testing.assert_close(out2, out1, rtol=1e-5, atol=1e-5)
    out1.square().sum().backward()
    out2.square().sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-4, atol=1e-4)
    grads = dict(ref.named_parameters())
    for name, p in other.named_parameters():
        assert grads[name].grad.abs().max() > 0, name
        torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-4, atol=1e-4, msg=name)


def test_chunked_attention_gradcheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relation_module3d, "CHUNK_ELEMENTS", 60)  # 3 query rows per chunk: 3 chunks, the last partial
    gen = torch.Generator().manual_seed(8)
    shapes = [(2, 2, 7, 3), (2, 2, 5, 3), (2, 2, 5, 4), (2, 11)]  # q, k, v, table
    q, k, v, table = (torch.randn(s, generator=gen, dtype=torch.float64, requires_grad=True) for s in shapes)
    index_q, index_k = torch.tensor([0, 1, 2, 3, 4, 5, 6]), torch.tensor([0, 1, 2, 3, 4])
    expected = torch.softmax(q @ k.transpose(2, 3) + table[:, index_q[:, None] + index_k[None, :]], -1) @ v
    torch.testing.assert_close(_RelationAttention.apply(q, k, v, table, index_q, index_k), expected)
    assert torch.autograd.gradcheck(
        lambda q, k, v, t: _RelationAttention.apply(q, k, v, t, index_q, index_k), (q, k, v, table), fast_mode=True
    )


def test_auto_choice_by_size_and_device() -> None:
    block = RelationModule3d(64)
    res3, res4 = 16 * 6272 * 1568, 16 * 1568 * 392
    assert block._pick_impl(torch.device("cpu"), res3) == "chunked"
    assert block._pick_impl(torch.device("cpu"), res4) == "chunked"
    assert block._pick_impl(torch.device("cpu"), 16 * 256 * 64) == "matmul"
    assert block._pick_impl(torch.device("cuda"), res4) == "sdpa"


def test_affinity_rows_sum_to_one_and_the_block_starts_as_identity() -> None:
    block = RelationModule3d(32, heads=4)
    x = _x((2, 32, 2, 4, 4), seed=9, dtype=torch.float32)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)
    w = block.affinity(x)
    assert w.shape == (2, 4, 32, 8)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 32))


def test_sine_embedding_shares_frequencies_over_the_axes() -> None:
    e = sine_embedding(torch.zeros(5, 3), 64)
    assert e.shape == (5, 64)
    # sin(0) = 0, cos(0) = 1 in blocks of 10 (t), 11 (y), 11 (x)
    expected = torch.cat([torch.zeros(10), torch.ones(10), torch.zeros(11), torch.ones(11), torch.zeros(11), torch.ones(11)])
    torch.testing.assert_close(e[0], expected)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(heads=5), r"heads=5 must divide in_channels=32 and key_channels=15"),
        (dict(key_channels=12), r"heads=16 must divide in_channels=32 and key_channels=12"),
        (dict(geometry_channels=7), r"geometry_channels must be even and at least 6"),
        (dict(pool_size=(2, 2)), r"pool_size must be three positive ints"),
        (dict(impl="flash"), r"unknown impl 'flash'"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RelationModule3d(32, **kwargs)
