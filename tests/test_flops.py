"""Tests for videoattn.models.flops and the `videoattn models` / `videoattn flops` tools:
FLOPs as multiply-adds counted by torch's FlopCounterMode, the formulas registered for the
operations it does not know, a block's count whatever its path, the backbones against the
fvcore figures of the docs, per-block costs of a preset, and the model table script.
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from videoattn.blocks import BLOCKS, LocalRelation3d, LocalRelationBlock3d, NonLocal3d, RelationModule3d, TransformerEncoder3d, list_blocks
from videoattn.blocks.nonlocal3d import INSTANTIATIONS
from videoattn.models import create_model, insert_blocks, list_models
from videoattn.models.flops import COUNTED_IMPL, FLOP_FORMULAS, flop_counter, model_card, model_inputs
from videoattn.tools import flops as flops_tool
from videoattn.tools import models as models_tool

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "model_table.py"


def _dispatched(module: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of the path that ``module`` runs, as FlopCounterMode sees them with our formulas."""
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS) as counter:
        module(x)
    return counter.get_total_flops() // 2


def _impls(block: type[nn.Module]) -> tuple[str | None, ...]:
    """The values of a block's ``impl`` argument (its module's IMPLS), or (None,) without one."""
    if "impl" not in inspect.signature(block).parameters:
        return (None,)
    return tuple(sys.modules[block.__module__].IMPLS)


def test_conv_flops_are_multiply_adds() -> None:
    conv = nn.Conv3d(3, 4, kernel_size=(1, 3, 3), padding=(0, 1, 1), bias=False)
    # 4 x 2 x 8 x 8 outputs, each 3 x 1 x 3 x 3 multiply-adds
    assert flop_counter(conv, torch.zeros(1, 3, 2, 8, 8)).total() == 4 * 2 * 8 * 8 * 27


def test_norms_softmax_and_element_wise_ops_are_not_counted() -> None:
    model = nn.Sequential(nn.BatchNorm3d(3), nn.GroupNorm(1, 3), nn.Softmax(dim=1), nn.ReLU(), nn.MaxPool3d(2)).eval()
    assert flop_counter(model, torch.randn(2, 3, 4, 4, 4)).total() == 0


@pytest.mark.parametrize("name", list_blocks())
def test_a_block_counts_its_mathematics_whatever_the_path(name: str) -> None:
    """Every impl of every block counts the same. Blocks not in COUNTED_IMPL dispatch the same
    multiply-adds on every path (chunked attention, fused SDPA with a formula, the dense or windowed
    Local Relation op); NonLocal3d's folded and reordered paths do fewer and are counted on matmul."""
    x = torch.randn(1, 32, 4, 8, 8)
    variants = [{"instantiation": i} for i in INSTANTIATIONS] if name == "nl" else [{}]
    for kwargs in variants:
        counts = {}
        for impl in _impls(BLOCKS[name]):
            block = BLOCKS[name](32, **kwargs, **({} if impl is None else {"impl": impl})).eval()
            counts[impl] = flop_counter(block, x).total()
            if not isinstance(block, tuple(COUNTED_IMPL)):
                assert _dispatched(block, x) == counts[impl], (kwargs, impl)
        assert len(set(counts.values())) == 1 and counts[impl] > 0, (kwargs, counts)


@pytest.mark.parametrize("instantiation", INSTANTIATIONS)
@pytest.mark.parametrize("impl", ["auto", "matmul", "folded", "chunked", "sdpa"])
def test_non_local_counts_the_published_formula(instantiation: str, impl: str) -> None:
    """The published block (pytorchvideo's NonLocal): theta, phi, g and out convs, the (L x Np)
    affinity and its product with g; the norm not counted."""
    c, ci, length, pooled = 64, 32, 4 * 4 * 4, 4 * 2 * 2
    block = NonLocal3d(c, instantiation=instantiation, impl=impl).eval()
    convs = length * c * ci * (1 if instantiation == "gaussian" else 2) + pooled * c * ci * (1 if instantiation == "gaussian" else 2)
    affinity = {"softmax": ci, "dot_product": ci, "gaussian": c, "concatenation": 0}[instantiation] * length * pooled
    project = (length + pooled) * ci if instantiation == "concatenation" else 0  # w . [theta_i, phi_j], split
    assert flop_counter(block, torch.randn(1, c, 4, 4, 4)).total() == convs + affinity + project + ci * pooled * length
    assert block.impl == impl  # the counted path was set for the count only


@pytest.mark.parametrize("instantiation, impl, channels, size", [
    ("softmax", "auto", 64, (4, 4, 4)), ("softmax", "folded", 64, (4, 4, 4)), ("gaussian", "folded", 64, (4, 4, 4)),
    ("dot_product", "auto", 64, (4, 4, 4)), ("dot_product", "sdpa", 16, (4, 8, 8)), ("dot_product", "chunked", 16, (4, 8, 8)),
])
def test_non_local_paths_with_fewer_multiply_adds_count_as_the_published_block(instantiation: str, impl: str, channels: int, size: tuple) -> None:
    """With more channels than pooled keys (res4 of I3D-R50) NonLocal3d folds theta and conv_out onto
    the keys; for dot_product with fewer inner channels than keys it computes theta (phi^T g) / Np:
    both run fewer multiply-adds than the published block, and count as it all the same."""
    block = NonLocal3d(channels, instantiation=instantiation, impl=impl).eval()
    x = torch.randn(1, channels, *size)
    reference = flop_counter(NonLocal3d(channels, instantiation=instantiation, impl="matmul").eval(), x).total()
    assert _dispatched(block, x) < reference
    assert flop_counter(block, x).total() == reference


def test_formulas_for_the_ops_torch_does_not_count_forward_and_backward() -> None:
    """The CPU flash kernel of SDPA and the Local Relation op: q k^T + (attention) v, and the op's
    composability and aggregation. Backward: SDPA's as torch counts its other kernels' (the scores
    recomputed: 5 products of the forward's 2), the op's twice its forward."""
    q, k, v = (torch.randn(2, 4, n, 8, requires_grad=True) for n in (64, 16, 16))
    with FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS) as counter:
        F.scaled_dot_product_attention(q, k, v).sum().backward()
    counts = counter.get_flop_counts()["Global"]
    assert counts[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu] == 2 * (2 * 4 * 64 * 16 * (8 + 8))
    assert counts[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward] == 5 * 2 * 4 * 64 * 16 * 8 * 2

    layer = LocalRelation3d(16, kernel_size=3, heads=4, key_channels=8)
    with FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS) as counter:
        layer(torch.randn(1, 16, 3, 5, 5, requires_grad=True)).sum().backward()
    counts = counter.get_flop_counts()["Global"]
    # per position (75), head (4) and neighbour (27): 2 key + 4 value channels, 2 FLOPs per multiply-add
    assert counts[torch.ops.videoattn.local_relation] == 2 * 75 * 4 * 27 * (2 + 4)
    assert counts[torch.ops.videoattn.local_relation_backward] == 2 * counts[torch.ops.videoattn.local_relation]


@torch.library.custom_op("videoattn_test::double", mutates_args=())
def _double(x: torch.Tensor) -> torch.Tensor:
    return torch.mm(x, torch.eye(x.shape[1])) * 2


def test_an_uncounted_custom_op_is_loud() -> None:
    """A custom op is opaque to the counter (what it computes inside is not seen): without a formula
    it counts 0, said in a warning. Autograd Functions are not opaque: their ops are counted."""
    class Model(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.ops.videoattn_test.double(x)

    with pytest.warns(UserWarning, match=r"undercounted: no formula for the custom ops videoattn_test\.double"):
        assert flop_counter(Model(), torch.zeros(2, 3)).total() == 0

    class Square(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
            return torch.mm(x, x)

    class Function(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return Square.apply(x)

    assert flop_counter(Function(), torch.zeros(3, 3)).total() == 27


def test_grouped_matmul_counts_every_batch_item() -> None:
    class Grouped(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # (4, 3, 5) x (N, 4, 5, 7) => (N, 4, 3, 7)
            return torch.matmul(torch.ones(4, 3, 5), x)

    assert flop_counter(Grouped(), torch.zeros(2, 4, 5, 7)).total() == 2 * 4 * 3 * 5 * 7
    cgnl_block = create_model("i3d_tiny_cgnl").blocks[4].res_blocks[0].block
    x = torch.zeros(2, cgnl_block.in_channels, 2, 4, 4)
    assert flop_counter(cgnl_block, x).total() == 2 * flop_counter(cgnl_block, x[:1]).total()


@pytest.mark.parametrize("name, fvcore_gflops, fvcore_batch_norm", [
    ("i3d_r50", 28.54, 130_658_304), ("slowfast_r50", 50.58, 273_158_144), ("c2d_r50", 19.62, 130_658_304),
])
def test_backbones_count_within_one_percent_of_the_fvcore_figures(name: str, fvcore_gflops: float, fvcore_batch_norm: int) -> None:
    """The docs' figures until the move to FlopCounterMode (fvcore, the recipe input): within 1%.
    fvcore counted one FLOP per BatchNorm element, which it adds to its convolutions and linear
    layers (measured at e427ce3: 28_538_318_848 for i3d_r50, of which batch_norm 130_658_304);
    FlopCounterMode counts no norms, and the rest is the same to the multiply-add."""
    gflops = model_card(name).flops / 1e9
    assert gflops == pytest.approx(fvcore_gflops, rel=0.01)
    assert gflops == pytest.approx(fvcore_gflops - fvcore_batch_norm / 1e9, abs=0.005)


@pytest.mark.parametrize("name", ["i3d_tiny_nl", "i3d_tiny_cgnl", "i3d_tiny_lr",
                                  "i3d_tiny_relation", "i3d_tiny_transformer", "slowfast_tiny_nl"])
def test_model_card_on_the_meta_device_is_the_cpu_count(name: str) -> None:
    """model_card counts shapes on the meta device, where blocks take other paths than on the CPU
    (every path counts the same): the totals and per-block costs of a CPU forward pass (at 64x64,
    where the CPU folds NL at res4 and computes LR densely)."""
    frames = (4, 16) if "slowfast" in name else (4,)
    card = model_card(name, frames=frames, crop_size=64)
    model = create_model(name).eval()
    count = flop_counter(model, model_inputs(name, frames=frames, crop_size=64))
    assert card.flops == count.total()
    assert [b.flops for b in card.blocks] == [count.by_module()[f"{b.path}.block"] for b in card.blocks]


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
    card = model_card("i3d_tiny_gc", frames=(4,), crop_size=64)
    assert lines[0] == f"i3d_tiny_gc: input 4x64x64, {params / 1e6:.2f} M parameters, {card.flops / 1e9:.2f} GFLOPs per view"
    assert lines[1].startswith("inserted blocks (3):")
    assert [line.split()[0] for line in lines[2:]] == [f"blocks.{i}.res_blocks.0" for i in (3, 4, 5)]  # GC after each block (presets)
    assert flops_tool.main(["i3d_r34"]) == 2
    assert "valid names" in capsys.readouterr().out


def test_model_table_script_writes_one_json_line_per_model(tmp_path: Path, capsys) -> None:
    spec = importlib.util.spec_from_file_location("model_table_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "models.jsonl"
    assert script.main(["i3d_tiny", "i3d_tiny_nl", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    card = model_card("i3d_tiny_nl")
    assert [r["model"] for r in rows] == ["i3d_tiny", "i3d_tiny_nl"]
    assert rows[1]["params"] == card.params and rows[1]["gflops"] == round(card.flops / 1e9, 4) and rows[1]["input"] == "8x112x112"
    assert (rows[1]["blocks"], rows[1]["block"], rows[0]["blocks"]) == (2, "NonLocal3d", 0)
    assert rows[1]["flops"] == card.flops and rows[1]["block_flops"] == sum(b.flops for b in card.blocks)
    assert rows[1]["block_gflops"] == round(rows[1]["block_flops"] / 1e9, 4)
    assert all(r["commit"] and r["machine"] and len(r["date"]) == 10 for r in rows)
    with pytest.raises(SystemExit):
        script.main(["i3d_r34", "--out", str(out)])
    assert "unknown model(s) i3d_r34" in capsys.readouterr().err


def test_local_relation_flops() -> None:
    """1x1 convs; the op: per output position, head and neighbour, the composability over the
    head's key channels and the aggregation of its C / heads channels."""
    block = LocalRelationBlock3d(32, kernel_size=(3, 3, 3), heads=8)
    length, k, heads = 4 * 8 * 8, 27, 8
    convs = length * 32 * 8 * 2 + length * 32 * 32  # query, key (8 channels), conv_out
    geometry = k * (3 * 8 + 8 * heads)  # the prior's two linear layers on the 27 offsets
    op = length * heads * k * (1 + 32 // heads)
    assert flop_counter(block.eval(), torch.zeros(1, 32, 4, 8, 8)).total() == convs + geometry + op


@pytest.mark.parametrize("impl", ["matmul", "chunked", "sdpa"])
def test_relation_module_flops_whatever_the_implementation(impl: str) -> None:
    block = RelationModule3d(32, heads=4, key_channels=16, geometry_channels=64, impl=impl)
    length, pooled = 4 * 8 * 8, 4 * 4 * 4
    convs = length * 32 * 16 + pooled * 32 * 16 + pooled * 32 * 32  # query on L; key, linear_out on Np
    attention = length * pooled * (16 + 32)  # 4 heads x (4 key + 8 value channels)
    table = 7 * 14 * 14  # distinct offsets: dt in -3..3; dy, dx = 2 j + 0.5 - i, 14 values each
    geometry = table * 64 * 4
    assert flop_counter(block.eval(), torch.zeros(1, 32, 4, 8, 8)).total() == convs + attention + geometry


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
    assert flop_counter(block.eval(), torch.zeros(1, 32, 4, 8, 8)).total() == expected


def test_inserted_relation_blocks_are_counted_in_a_model() -> None:
    """The three blocks inserted into a model (their custom ops run inside it): each is counted,
    and the block costs add up to the difference to the model without them."""
    x = torch.zeros(1, 3, 4, 64, 64)
    base = create_model("i3d_tiny", num_classes=10).eval()
    model = create_model("i3d_tiny", num_classes=10).eval()
    for block, stage in (("lr", 3), ("relation", 4), ("transformer", 5)):
        insert_blocks(model, block, f"blocks.{stage}.res_blocks.0")
    counter, total_base = flop_counter(model, x), flop_counter(base, x).total()
    by_module = counter.by_module()
    costs = [by_module[f"blocks.{stage}.res_blocks.0.block"] for stage in (3, 4, 5)]
    assert all(c > 0 for c in costs)
    assert counter.total() - total_base == sum(costs)
