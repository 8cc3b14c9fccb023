"""Tests for videoattn.models.backbones and the registry: pytorchvideo hub architectures
(parameter counts, state-dict keys, equal logits with the same weights), tiny models,
head behaviour, input checks.
"""
from __future__ import annotations

import pytest
import torch
from conftest import pretend_pretrained
from pytorchvideo.models import hub
from torch import nn

from videoattn.models import create_model, get_model_entry, list_models, register_model

BACKBONES = {"c2d_r50": 24_327_632, "i3d_r50": 28_043_472, "slow_r50": 32_454_096,
             "slowfast_r50": 34_566_488, "slowfast_r101": 62_826_968}


def clip(name: str, size: int, frames: tuple[int, ...] | None = None, batch: int = 1, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    frames = frames or get_model_entry(name).frames
    clips = [torch.randn(batch, 3, t, size, size, generator=g) for t in frames]
    return clips[0] if len(clips) == 1 else clips


def make_hub_head_adaptive(model: nn.Module) -> None:
    last = model.blocks[-1]
    if getattr(last, "pool", None) is not None:
        last.pool = nn.AdaptiveAvgPool3d(1)
    else:
        model.blocks[-2].pool = nn.ModuleList([nn.AdaptiveAvgPool3d(1), nn.AdaptiveAvgPool3d(1)])


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_matches_pytorchvideo_hub(name: str, tmp_path) -> None:
    reference = pretend_pretrained(getattr(hub, name)(pretrained=False)).eval()
    ours = create_model(name)
    assert sum(p.numel() for p in ours.parameters()) == BACKBONES[name]
    ref_shapes = {k: v.shape for k, v in reference.state_dict().items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == ref_shapes

    path = tmp_path / "hub.pyth"
    torch.save({"model_state": reference.state_dict()}, path)
    ours = create_model(name, weights=path).eval()
    make_hub_head_adaptive(reference)  # the hub head's fixed pool needs 224 crops; ours is adaptive
    x = clip(name, 32, tuple(t // 2 for t in get_model_entry(name).frames))
    with torch.no_grad():
        expected = reference([t.clone() for t in x] if isinstance(x, list) else x)
        got = ours(x)
    assert got.shape == (1, 400)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["i3d_r50", "slowfast_r50"])
def test_adaptive_head_equals_hub_fixed_pool_at_recipe_input(name: str) -> None:
    """At 8x224x224 (res5 maps 4x7x7 for I3D, 8x7x7 + 32x7x7 for SlowFast) the adaptive head
    computes what the hub's fixed-size average pool computes."""
    reference, ours = getattr(hub, name)(pretrained=False).eval(), create_model(name).eval()
    ours.load_state_dict(reference.state_dict())
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        if name == "i3d_r50":
            features = torch.randn(2, 2048, 4, 7, 7, generator=g)
            expected, got = reference.blocks[-1](features), ours.blocks[-1](features)
        else:
            features = [torch.randn(2, 2048, 8, 7, 7, generator=g), torch.randn(2, 256, 32, 7, 7, generator=g)]
            expected = reference.blocks[-1](reference.blocks[-2](list(features)))
            got = ours.blocks[-1](ours.blocks[-2](list(features)))
    assert got.shape == (2, 400)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["i3d_tiny", "slowfast_tiny"])
def test_tiny_models_are_small_and_take_any_size(name: str) -> None:
    model = create_model(name, num_classes=7).eval()
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    sizes = [(4, 32), (8, 112), (6, 50)]
    for t, s in sizes:
        frames = (t,) if name == "i3d_tiny" else (t, 4 * t)
        with torch.no_grad():
            assert model(clip(name, s, frames, batch=2)).shape == (2, 7)


def test_tiny_keeps_the_r50_module_layout() -> None:
    tiny, r50 = create_model("i3d_tiny"), create_model("i3d_r50")
    names = lambda m: {n.split(".res_blocks.")[0] for n, _ in m.named_modules()}
    assert names(tiny) == names(r50)
    assert len(tiny.blocks[4].res_blocks) == 1 and len(r50.blocks[4].res_blocks) == 6


@pytest.mark.parametrize("name", ["i3d_tiny", "slowfast_tiny"])
def test_eval_mode_returns_logits_not_probabilities(name: str) -> None:
    model = pretend_pretrained(create_model(name, num_classes=5)).eval()
    with torch.no_grad():
        nn.init.normal_(model.blocks[-1].proj.weight, std=1.0)
        out = model(clip(name, 32, (4,) if name == "i3d_tiny" else (4, 16), batch=3))
    assert (out < 0).any() and not torch.allclose(out.sum(1), torch.ones(3))
    model.train()
    model.blocks[-1].dropout = None
    torch.testing.assert_close(model(clip(name, 32, (4,) if name == "i3d_tiny" else (4, 16), batch=3)).shape, out.shape)


def test_dropout_override() -> None:
    assert create_model("i3d_tiny", dropout=0.2).blocks[-1].dropout.p == 0.2
    assert create_model("i3d_tiny", dropout=0.0).blocks[-1].dropout is None
    assert create_model("i3d_tiny_nl", num_classes=3, dropout=0.3).blocks[-1].dropout.p == 0.3


def test_slowfast_takes_a_list_and_leaves_it_alone() -> None:
    model = create_model("slowfast_tiny", num_classes=3).eval()
    x = clip("slowfast_tiny", 32, (4, 16))
    before = [t for t in x]
    with torch.no_grad():
        model(x)
    assert all(a is b for a, b in zip(x, before)) and x[0].shape[2] == 4


@pytest.mark.parametrize("bad", [torch.zeros(1, 3, 32, 32), [torch.zeros(1, 3, 4, 32, 32)], "video"])
def test_bad_input_is_a_value_error(bad) -> None:
    model = create_model("slowfast_tiny") if isinstance(bad, list) else create_model("i3d_tiny")
    with pytest.raises(ValueError, match=r"expected .*\(N, C, T, H, W\)"):
        model(bad)


def test_registry_errors() -> None:
    with pytest.raises(ValueError, match="valid names: .*i3d_r50"):
        create_model("i3d_r51")
    with pytest.raises(ValueError, match="already registered"):
        register_model("i3d_r50", frames=(8,), crop_size=224, description="again")(lambda **kw: None)
    with pytest.raises(ValueError, match="unknown override.*widht.*accepted: dropout"):
        create_model("i3d_tiny", widht=3)
    with pytest.raises(ValueError, match="num_classes"):
        create_model("i3d_tiny", num_classes=0)
    assert {"i3d_r50_nl", "slowfast_r50_gc", "i3d_tiny_cgnl", *BACKBONES} <= set(list_models())
