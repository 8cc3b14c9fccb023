"""Tests for videoattn.models.presets: where every preset puts which block with which
settings, that NL, GC and CGNL leave a pretrained backbone's logits unchanged, and that a preset
is its blocks placed in pytorchvideo's backbone (same initial weights, same logits).
"""
from __future__ import annotations

import pytest
import torch
from conftest import logits, pretend_pretrained
from reference_backbones import pytorchvideo_backbone
from torch import nn

from videoattn.blocks import (
    BLOCKS,
    CGNL3d,
    GlobalContext3d,
    LocalRelationBlock3d,
    NonLocal3d,
    RelationModule3d,
    SqueezeExcite3d,
    TransformerEncoder3d,
    list_blocks,
)
from videoattn.models import PRESETS, Inserted, apply_placement, create_model, list_models, load_weights

# Residual stages res2..res5 of each backbone, spelled out (SlowFast: the slow pathway).
STAGES = {
    "i3d_r50": ["blocks.1", "blocks.3", "blocks.4", "blocks.5"],  # blocks.2 is the temporal max-pool
    "slow_r50": ["blocks.1", "blocks.2", "blocks.3", "blocks.4"],
    "slowfast_r50": [f"blocks.{i}.multipathway_blocks.0" for i in (1, 2, 3, 4)],
}
DEPTHS = (3, 4, 6, 3)
INSIDE = "branch2.norm_c"  # last norm of the residual branch, before the addition


def after(backbone: str, stage: int, blocks: tuple[int, ...]) -> list[str]:
    return [f"{STAGES[backbone][stage - 2]}.res_blocks.{i}" for i in blocks]


def inside(backbone: str, stages: tuple[int, ...]) -> list[str]:
    return [f"{p}.{INSIDE}" for s in stages for p in after(backbone, s, tuple(range(DEPTHS[s - 2])))]


def expected_r50(backbone: str) -> dict[str, tuple[type, list[str]]]:
    nl_places = after(backbone, 3, (1, 3)) + after(backbone, 4, (1, 3, 5))
    return {
        f"{backbone}_nl": (NonLocal3d, nl_places),
        f"{backbone}_gc": (GlobalContext3d, inside(backbone, (3, 4, 5))),
        f"{backbone}_se": (SqueezeExcite3d, inside(backbone, (2, 3, 4, 5))),
        f"{backbone}_cgnl": (CGNL3d, after(backbone, 4, (4,))),  # res4 has 6 blocks: before the last
        f"{backbone}_cgnl5": (CGNL3d, nl_places),
        f"{backbone}_lr": (LocalRelationBlock3d, nl_places),
        f"{backbone}_relation": (RelationModule3d, nl_places),
        f"{backbone}_transformer": (TransformerEncoder3d, nl_places),
    }


def expected_tiny(backbone: str) -> dict[str, tuple[type, list[str]]]:
    """One preset per block of the registry: after res3 and res4 block 0 (the tiny NL places) unless
    the block's paper puts it elsewhere; GC after every res3-res5 block (GCNet's "after add")."""
    nl_places = ["blocks.3.res_blocks.0", "blocks.4.res_blocks.0"]
    out = {f"{backbone}_{name}": (BLOCKS[name], nl_places) for name in list_blocks()}
    out.update({
        f"{backbone}_gc": (GlobalContext3d, [f"blocks.{i}.res_blocks.0" for i in (3, 4, 5)]),
        f"{backbone}_se": (SqueezeExcite3d, [f"blocks.{i}.res_blocks.0.{INSIDE}" for i in (1, 3, 4, 5)]),
        f"{backbone}_cgnl": (CGNL3d, ["blocks.4.res_blocks.0"]),
    })
    return out


EXPECTED = {
    **expected_r50("i3d_r50"), **expected_r50("slow_r50"), **expected_r50("slowfast_r50"),
    **expected_tiny("i3d_tiny"), **expected_tiny("i3d_probe"),
    "slowfast_tiny_nl": (NonLocal3d, [f"blocks.{i}.multipathway_blocks.0.res_blocks.0" for i in (2, 3)]),
}


def test_every_preset_is_checked() -> None:
    presets = {f"{b}_{s}" for b, ps in PRESETS.items() for s in ps}
    assert presets == set(EXPECTED) and presets <= set(list_models())


def test_spelled_out_i3d_nl_places() -> None:
    assert EXPECTED["i3d_r50_nl"][1] == ["blocks.3.res_blocks.1", "blocks.3.res_blocks.3",
                                         "blocks.4.res_blocks.1", "blocks.4.res_blocks.3", "blocks.4.res_blocks.5"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_where_each_preset_puts_its_blocks(name: str) -> None:
    cls, paths = EXPECTED[name]
    model = create_model(name)
    found = {path: m.block for path, m in model.named_modules() if isinstance(m, Inserted)}
    assert list(found) == paths
    assert all(type(b) is cls for b in found.values())
    for path, block in found.items():
        channels = model.get_submodule(path).module
        channels = getattr(channels, "num_features", None) or channels.branch2.conv_c.out_channels
        if cls is NonLocal3d:
            slow = name.startswith(("slow_", "slowfast_"))
            assert block.instantiation == ("dot_product" if slow else "softmax")
            assert block.pool.kernel_size == (1, 2, 2) and block.inner_channels == channels // 2
        elif cls is GlobalContext3d:
            assert block.planes == channels // 16 and block.fusions == ("add",) and block.pooling == "att"
        elif cls is SqueezeExcite3d:
            assert block.fc1.out_channels == channels // 16
        elif cls is LocalRelationBlock3d:
            assert block.lr.kernel_size == (3, 7, 7) and block.lr.heads == 8 and block.lr.stride == (1, 1, 1)
        elif cls is RelationModule3d:
            assert block.heads == 16 and block.geometry_channels == 64 and block.pool_size == (1, 2, 2)
            assert block.key_channels == channels // 2
        elif cls is TransformerEncoder3d:
            assert block.heads == 8 and block.pool_size == (1, 2, 2) and block.inner_channels == channels // 4
        elif cls is CGNL3d:
            assert block.groups == 8 and block.kernel == "dot"
        assert block_in_channels(block) == channels


def block_in_channels(block: nn.Module) -> int:
    return getattr(block, "in_channels", None) or block.fc1.in_channels


@pytest.mark.parametrize("name", ["i3d_tiny_nl", "i3d_tiny_gc", "i3d_tiny_cgnl", "i3d_probe_nl", "slowfast_tiny_nl",
                                  "i3d_r50_nl", "slowfast_r50_gc", "slow_r50_cgnl5",
                                  "i3d_r50_lr", "slow_r50_relation", "slowfast_r50_transformer"])
def test_identity_blocks_keep_pretrained_logits(name: str) -> None:
    backbone = name.rsplit("_", 1)[0]
    pretrained = pretend_pretrained(create_model(backbone, num_classes=10), seed=4)
    model = create_model(name, num_classes=10)
    report = load_weights(model, pretrained.state_dict())
    assert report.inserted == EXPECTED[name][1]
    g = torch.Generator().manual_seed(0)
    size = 64 if "tiny" in name else 32  # r50: res3 4x4, res4 2x2 positions, enough for the blocks to act
    x = torch.randn(1, 3, 4, size, size, generator=g)
    x = [x, torch.randn(1, 3, 16, size, size, generator=g)] if "slowfast" in name else x
    expected = logits(pretrained, x)
    torch.testing.assert_close(logits(model, x), expected)
    for m in model.modules():  # the blocks are on the forward path: moved off identity, logits move
        if isinstance(m, Inserted):
            with torch.no_grad():
                for p in m.block.parameters():
                    p.add_(torch.randn_like(p) * 0.5)
    assert not torch.allclose(logits(model, x), expected)


def test_se_is_not_an_identity_and_says_so_in_logits() -> None:
    pretrained = pretend_pretrained(create_model("i3d_tiny", num_classes=10), seed=4)
    model = create_model("i3d_tiny_se", num_classes=10, weights=pretrained.state_dict())
    x = torch.randn(1, 3, 4, 32, 32)
    assert not torch.allclose(logits(model, x), logits(pretrained, x))


def test_block_overrides_reach_the_blocks() -> None:
    model = create_model("i3d_tiny_nl", num_classes=3, instantiation="gaussian")
    assert {m.block.instantiation for m in model.modules() if isinstance(m, Inserted)} == {"gaussian"}
    with pytest.raises(ValueError, match="instantiation"):
        create_model("i3d_tiny_nl", instantiation="cosine")
    with pytest.raises(ValueError, match="i3d_tiny_gc: bad override.*ratoi"):
        create_model("i3d_tiny_gc", ratoi=0.25)


# Every tiny preset, and one R50 preset per backbone and position (after / inside; the slow pathway).
PARITY = sorted(n for n in EXPECTED if "tiny" in n or "probe" in n) + ["i3d_r50_nl", "slow_r50_gc", "slowfast_r50_se"]


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", PARITY)
def test_preset_is_its_blocks_in_pytorchvideos_backbone(name: str) -> None:
    """The preset against its placement applied to pytorchvideo's build of the backbone: from the
    same seed, the same modules and initial weights (backbone and blocks), and the same logits with
    the same pretrained-like weights."""
    backbone, suffix = next((b, s) for b, ps in PRESETS.items() for s in ps if f"{b}_{s}" == name)
    torch.manual_seed(0)
    reference = apply_placement(pytorchvideo_backbone(backbone, num_classes=10), PRESETS[backbone][suffix])[0]
    torch.manual_seed(0)
    ours = create_model(name, num_classes=10)
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in reference.named_modules()]
    mine, theirs = ours.state_dict(), reference.state_dict()
    assert list(mine) == list(theirs) and all(torch.equal(mine[k], theirs[k]) for k in mine)
    ours.load_state_dict(pretend_pretrained(reference, seed=4).state_dict())
    g = torch.Generator().manual_seed(0)
    size = 64 if "tiny" in name or "probe" in name else 32
    x = torch.randn(1, 3, 4, size, size, generator=g)
    x = [x, torch.randn(1, 3, 16, size, size, generator=g)] if "slowfast" in name else x
    expected = logits(reference, [t.clone() for t in x] if isinstance(x, list) else x)
    torch.testing.assert_close(logits(ours, x), expected, rtol=1e-4, atol=1e-5)
