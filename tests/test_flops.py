"""Tests for videoattn.models.flops and the `videoattn models` / `videoattn flops` tools:
FLOPs as multiply-adds, the SDPA handle, per-block costs of a preset.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from videoattn.blocks import LocalRelationBlock3d, NonLocal3d, RelationModule3d, TransformerEncoder3d
from videoattn.models import create_model, insert_blocks, list_models
from videoattn.models.flops import flop_counter, model_card, model_inputs
from videoattn.tools import flops as flops_tool
from videoattn.tools import models as models_tool


def test_conv_flops_are_multiply_adds() -> None:
    conv = nn.Conv3d(3, 4, kernel_size=(1, 3, 3), padding=(0, 1, 1), bias=False)
    # 4 x 2 x 8 x 8 outputs, each 3 x 1 x 3 x 3 multiply-adds
    assert flop_counter(conv, torch.zeros(1, 3, 2, 8, 8)).total() == 4 * 2 * 8 * 8 * 27


@pytest.mark.parametrize("impl", ["matmul", "sdpa", "chunked", "auto"])
def test_non_local_flops_whatever_the_implementation(impl: str) -> None:
    """fvcore alone counts 0 for SDPA, baddbmm (the blocks' 1x1x1 convs) and the chunked attention."""
    block = NonLocal3d(32, impl=impl).eval()
    x = torch.zeros(1, 32, 4, 8, 8)
    with torch.no_grad():
        counter = flop_counter(block, x)
        total, norm = counter.total(), counter.by_operator().get("batch_norm", 0)
    length, pooled, inner = 4 * 8 * 8, 4 * 4 * 4, 16
    convs = length * 32 * inner * 2 + pooled * 32 * inner * 2  # theta and out on L, phi and g on Np positions
    attention = length * pooled * inner * 2  # theta.phi and attention.g
    assert total - norm == convs + attention


def test_an_uncounted_custom_op_is_loud() -> None:
    class Double(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x: torch.Tensor) -> torch.Tensor:
            return x * 2

        @staticmethod
        def backward(ctx, dy: torch.Tensor) -> torch.Tensor:
            return dy * 2

    class Model(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return Double.apply(x)

    with pytest.warns(UserWarning, match=r"undercounted: .*prim::PythonOp\.Double"):
        flop_counter(Model(), torch.zeros(2, 3))


def test_grouped_matmul_counts_every_batch_item() -> None:
    class Grouped(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # (4, 3, 5) x (N, 4, 5, 7) => (N, 4, 3, 7)
            return torch.matmul(torch.ones(4, 3, 5), x)

    assert flop_counter(Grouped(), torch.zeros(2, 4, 5, 7)).total() == 2 * 4 * 3 * 5 * 7
    cgnl_block = create_model("i3d_tiny_cgnl").blocks[4].res_blocks[0].block
    x = torch.zeros(2, cgnl_block.in_channels, 2, 4, 4)
    with torch.no_grad():
        one, two = flop_counter(cgnl_block, x[:1]).total(), flop_counter(cgnl_block, x).total()
    assert two == pytest.approx(2 * one, rel=1e-5)  # (fvcore's einsum count is off by a FLOP or two)


@pytest.mark.parametrize("name", ["i3d_tiny_nl", "i3d_tiny_gc", "slowfast_tiny_nl"])
def test_model_card_block_costs_add_up(name: str) -> None:
    card, base = model_card(name, num_classes=10), model_card(name.rsplit("_", 1)[0], num_classes=10)
    model = create_model(name, num_classes=10)
    assert card.params == sum(p.numel() for p in model.parameters())
    assert card.params - base.params == sum(b.params for b in card.blocks)
    assert card.flops - base.flops == sum(b.flops for b in card.blocks)
    assert card.blocks and all(b.flops > 0 and b.params > 0 for b in card.blocks)
    assert card.input_shape == ("8x112x112 + 32x112x112" if "slowfast" in name else "8x112x112")


def test_model_inputs_follow_the_recipe() -> None:
    assert model_inputs("i3d_r50").shape == (1, 3, 8, 224, 224)
    slow, fast = model_inputs("slowfast_r50", batch=2)
    assert slow.shape == (2, 3, 8, 224, 224) and fast.shape == (2, 3, 32, 224, 224)
    assert model_inputs("i3d_tiny", frames=(4,), crop_size=64).shape == (1, 3, 4, 64, 64)


def test_models_tool_lists_models(capsys) -> None:
    assert models_tool.main([]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in list_models())
    assert models_tool.main(["tiny_n"]) == 0
    assert capsys.readouterr().out.split("\n")[0].startswith("i3d_tiny_nl ")
    assert models_tool.main(["r34"]) == 1


def test_flops_tool_prints_model_and_block_costs(capsys) -> None:
    assert flops_tool.main(["i3d_tiny_gc", "--frames", "4", "--crop-size", "64"]) == 0
    lines = capsys.readouterr().out.strip().split("\n")
    params = sum(p.numel() for p in create_model("i3d_tiny_gc").parameters())
    assert lines[0].startswith(f"i3d_tiny_gc: input 4x64x64, {params / 1e6:.2f} M parameters, ")
    assert lines[0].endswith("GFLOPs per view")
    assert lines[1].startswith("inserted blocks (3):")
    assert [line.split()[0] for line in lines[2:]] == [f"blocks.{i}.res_blocks.0" for i in (3, 4, 5)]  # GC after each block (presets)
    assert flops_tool.main(["i3d_r34"]) == 2
    assert "valid names" in capsys.readouterr().out


def _flops_without_norms(block: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad():
        counter = flop_counter(block.eval(), x)
        by_op = counter.by_operator()
        return counter.total() - sum(by_op.get(op, 0) for op in ("batch_norm", "layer_norm"))


def test_local_relation_flops() -> None:
    """1x1 convs by fvcore; the op: per output position, head and neighbour, the composability
    over the head's key channels and the aggregation of its C / heads channels."""
    block = LocalRelationBlock3d(32, kernel_size=(3, 3, 3), heads=8)
    length, k, heads = 4 * 8 * 8, 27, 8
    convs = length * 32 * 8 * 2 + length * 32 * 32  # query, key (8 channels), conv_out
    geometry = k * (3 * 8 + 8 * heads)  # the prior's two linear layers on the 27 offsets
    op = length * heads * k * (1 + 32 // heads)
    assert _flops_without_norms(block, torch.zeros(1, 32, 4, 8, 8)) == convs + geometry + op


@pytest.mark.parametrize("impl", ["matmul", "chunked", "sdpa"])
def test_relation_module_flops_whatever_the_implementation(impl: str) -> None:
    block = RelationModule3d(32, heads=4, key_channels=16, geometry_channels=64, impl=impl)
    length, pooled = 4 * 8 * 8, 4 * 4 * 4
    convs = length * 32 * 16 + pooled * 32 * 16 + pooled * 32 * 32  # query on L; key, linear_out on Np
    attention = length * pooled * (16 + 32)  # 4 heads x (4 key + 8 value channels)
    table = 7 * 14 * 14  # distinct offsets: dt in -3..3; dy, dx = 2 j + 0.5 - i, 14 values each
    geometry = table * 64 * 4
    assert _flops_without_norms(block, torch.zeros(1, 32, 4, 8, 8)) == convs + attention + geometry


@pytest.mark.parametrize("pool_size", [None, (1, 2, 2)])
def test_transformer_encoder_flops(pool_size) -> None:
    block = TransformerEncoder3d(32, heads=4, inner_channels=16, ffn_channels=24, pool_size=pool_size)
    length = 4 * 8 * 8
    keys = length if pool_size is None else 4 * 4 * 4
    projections = length * 32 * 16 * 2  # input_proj, conv_out
    in_proj = length * 16 * 16 + keys * 16 * 16 * 2  # q on L tokens, k and v on the keys
    attention = length * keys * (16 + 16)
    out_and_ffn = length * 16 * 16 + length * 16 * 24 * 2
    expected = projections + in_proj + attention + out_and_ffn
    assert _flops_without_norms(block, torch.zeros(1, 32, 4, 8, 8)) == expected


def test_inserted_relation_blocks_are_counted_in_a_model() -> None:
    """The three blocks inserted into a model (their custom ops traced inside it): each is counted,
    and the block costs add up to the difference to the model without them."""
    x = torch.zeros(1, 3, 4, 64, 64)
    base = create_model("i3d_tiny", num_classes=10).eval()
    model = create_model("i3d_tiny", num_classes=10).eval()
    for block, stage in (("lr", 3), ("relation", 4), ("transformer", 5)):
        insert_blocks(model, block, f"blocks.{stage}.res_blocks.0")
    with torch.no_grad():
        counter, total_base = flop_counter(model, x), flop_counter(base, x).total()
        by_module = counter.by_module()
    costs = [by_module[f"blocks.{stage}.res_blocks.0.block"] for stage in (3, 4, 5)]
    assert all(c > 0 for c in costs)
    assert counter.total() - total_base == sum(costs)
