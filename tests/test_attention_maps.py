"""Tests of the attention recorder: the recomputed NL affinity is the one the block applies (its
output is rebuilt from it), the GC map is the block's context weights, hooks come off.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from videoattn.attention_maps import AttentionRecorder, global_context_attention, nonlocal_attention
from videoattn.blocks import GlobalContext3d, NonLocal3d


def _randomise(block: nn.Module) -> nn.Module:
    """Move the block away from its identity initialisation, as training would."""
    torch.manual_seed(0)
    for p in block.parameters():
        nn.init.normal_(p, std=0.3)
    return block.eval()


@pytest.mark.parametrize("instantiation", ["softmax", "dot_product", "gaussian", "concatenation"])
def test_nonlocal_affinity_rebuilds_the_block_output(instantiation: str) -> None:
    block = _randomise(NonLocal3d(8, instantiation=instantiation, pool_size=(1, 2, 2)))
    x = torch.randn(2, 8, 3, 4, 6)
    att = nonlocal_attention(block, x)
    assert att.shape == (2, 3, 4, 6, 3, 2, 3)
    if instantiation in ("softmax", "gaussian"):
        torch.testing.assert_close(att.flatten(4).sum(-1), torch.ones(2, 3, 4, 6))
    # y = A g, out = x + norm(conv_out(y)): the block's own output from the recomputed affinity
    g = block.conv_g(block.pool(x)).flatten(2).transpose(1, 2)  # (N, Np, Ci)
    y = torch.bmm(att.reshape(2, 72, 18), g).transpose(1, 2).reshape(2, 4, 3, 4, 6)
    expected = x + block.norm(block.conv_out(y))
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected, rtol=1e-4, atol=1e-5)


def test_global_context_map_is_the_block_context() -> None:
    block = _randomise(GlobalContext3d(16, ratio=1 / 4))
    x = torch.randn(2, 16, 3, 4, 5)
    att = global_context_attention(block, x)
    assert att.shape == (2, 3, 4, 5)
    torch.testing.assert_close(att.flatten(1).sum(-1), torch.ones(2))
    ctx = (x * att.unsqueeze(1)).sum(dim=(2, 3, 4)).view(2, 16, 1, 1, 1)  # weighted sum over T*H*W
    with torch.no_grad():
        torch.testing.assert_close(block.context(x), ctx, rtol=1e-4, atol=1e-5)
    avg = GlobalContext3d(16, ratio=1 / 4, pooling="avg")
    torch.testing.assert_close(global_context_attention(avg, x), torch.full((2, 3, 4, 5), 1 / 60))


def test_recorder_captures_every_block_and_removes_its_hooks() -> None:
    model = nn.Sequential(nn.Conv3d(3, 8, 1), _randomise(NonLocal3d(8)), nn.Conv3d(8, 16, 1, stride=(1, 2, 2)), _randomise(GlobalContext3d(16, ratio=1 / 4)))
    x = torch.randn(1, 3, 4, 8, 8)
    with AttentionRecorder(model) as rec:
        out = model(x)
    assert set(rec.maps) == {"1", "3"}
    assert rec.maps["1"].kind == "nl" and rec.maps["1"].query_grid == (4, 8, 8)
    assert rec.maps["3"].kind == "gc" and rec.maps["3"].weights.shape == (1, 4, 4, 4)
    torch.testing.assert_close(out, model(x))  # recording does not change the output
    rec.maps.clear()
    model(x)
    assert rec.maps == {}  # hooks removed on exit
    with pytest.raises(ValueError, match="no NonLocal3d or GlobalContext3d"):
        AttentionRecorder(nn.Conv3d(3, 3, 1)).__enter__()
