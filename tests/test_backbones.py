"""Tests for videoattn.models.backbones (built by videoattn.models.resnet and .slowfast) and the
registry, against pytorchvideo 0.1.5's builders as the reference: parameter counts, module paths,
state-dict keys, the same initial weights from the same seed, equal logits, outputs and gradients
with the same weights; tiny models, head behaviour, input checks.
"""
from __future__ import annotations

import pytest
import torch
from conftest import pretend_pretrained
from pytorchvideo.models import hub
from reference_backbones import make_head_adaptive, pytorchvideo_backbone
from torch import nn

from videoattn.models import create_model, get_model_entry, list_models, register_model, res_stage_paths
from videoattn.models.resnet import build_resnet
from videoattn.models.slowfast import build_slowfast

BACKBONES = {"c2d_r50": 24_327_632, "i3d_r50": 28_043_472, "slow_r50": 32_454_096,
             "slowfast_r50": 34_566_488, "slowfast_r101": 62_826_968}


def clip(name: str, size: int, frames: tuple[int, ...] | None = None, batch: int = 1, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    frames = frames or get_model_entry(name).frames
    clips = [torch.randn(batch, 3, t, size, size, generator=g) for t in frames]
    return clips[0] if len(clips) == 1 else clips


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def seeded(build, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build()


def assert_same_modules_and_weights(ours: nn.Module, reference: nn.Module) -> None:
    """Same module paths, and the same state dict (keys in order, values bit for bit)."""
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in reference.named_modules()]
    mine, theirs = ours.state_dict(), reference.state_dict()
    assert list(mine) == list(theirs)
    unequal = [k for k in mine if not torch.equal(mine[k], theirs[k])]
    assert not unequal, f"{len(unequal)} tensors differ from pytorchvideo's, e.g. {unequal[:3]}"


def assert_same_outputs_and_gradients(ours: nn.Module, reference: nn.Module, x) -> None:
    """Train mode (batch statistics), no dropout: same output, input gradients, parameter
    gradients and updated running statistics, with the weights of ``reference``."""
    ours.load_state_dict(reference.state_dict())
    for model in (ours, reference):
        model.train()
        model.blocks[-1].dropout = None
    xs = [x] if isinstance(x, torch.Tensor) else x
    mine, theirs = [t.clone().requires_grad_() for t in xs], [t.clone().requires_grad_() for t in xs]
    out = ours(mine[0] if len(xs) == 1 else mine)
    expected = reference(theirs[0] if len(xs) == 1 else list(theirs))  # pytorchvideo writes into its list
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weight).sum().backward()
    (expected * weight).sum().backward()
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)
    theirs_params = dict(reference.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, theirs_params[name].grad, rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}")
    torch.testing.assert_close(dict(ours.named_buffers()), dict(reference.named_buffers()), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_matches_pytorchvideo_hub(name: str, tmp_path) -> None:
    """Parameter count, module paths and, from the same seed, the hub builder's initial weights bit
    for bit; a hub checkpoint loads and gives the hub model's logits."""
    reference = seeded(lambda: getattr(hub, name)(pretrained=False))
    ours = seeded(lambda: create_model(name))
    assert sum(p.numel() for p in ours.parameters()) == BACKBONES[name]
    assert_same_modules_and_weights(ours, reference)

    pretend_pretrained(reference).eval()
    path = tmp_path / "hub.pyth"
    torch.save({"model_state": reference.state_dict()}, path)
    ours = create_model(name, weights=path).eval()
    make_head_adaptive(reference)  # the hub head's fixed pool needs 224 crops; ours is adaptive
    x = clip(name, 32, tuple(t // 2 for t in get_model_entry(name).frames))
    with torch.no_grad():
        expected = reference([t.clone() for t in x] if isinstance(x, list) else x)
        got = ours(x)
    assert got.shape == (1, 400)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, frames", [("i3d_r50", (4,)), ("slowfast_r50", (2, 8))])
def test_outputs_and_gradients_equal_pytorchvideo(name: str, frames: tuple[int, ...]) -> None:
    reference = pretend_pretrained(pytorchvideo_backbone(name))
    assert_same_outputs_and_gradients(create_model(name), reference, clip(name, 32, frames, batch=2))


@pytest.mark.parametrize("name", ["i3d_tiny", "slowfast_tiny", "i3d_probe"])
def test_tiny_backbone_equals_pytorchvideo_built(name: str) -> None:
    """pytorchvideo's hub builder at the tiny settings (stem 16 channels, one block per stage):
    same modules, same initial weights from the same seed, same stages found, same outputs and
    gradients."""
    reference = seeded(lambda: pytorchvideo_backbone(name, num_classes=7))
    ours = seeded(lambda: create_model(name, num_classes=7))
    assert_same_modules_and_weights(ours, reference)
    assert res_stage_paths(ours) == res_stage_paths(reference)
    frames = (4,) if name != "slowfast_tiny" else (4, 16)
    assert_same_outputs_and_gradients(ours, pretend_pretrained(reference), clip(name, 32, frames, batch=2))


def test_initialisation_is_pytorchvideos() -> None:
    """Convs: kaiming normal (fan_out, ReLU gain), no bias; norms weight 1, bias 0, but the last norm
    of every residual branch at weight 0 (each block starts as its shortcut); head normal(0, 0.01)."""
    model = create_model("i3d_r50")
    conv = model.get_submodule("blocks.4.res_blocks.2.branch2.conv_b").weight  # 256 x 256 x 1x3x3
    fan_out = conv.shape[0] * conv[0, 0].numel()
    assert conv.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.02) and abs(conv.mean().item()) < 1e-3
    for path, m in model.named_modules():
        if isinstance(m, nn.BatchNorm3d):
            assert torch.all(m.weight == (0.0 if path.endswith("branch2.norm_c") else 1.0)) and torch.all(m.bias == 0), path
    proj = model.get_classifier()
    assert proj.weight.std().item() == pytest.approx(0.01, rel=0.02) and torch.all(proj.bias == 0)


def test_builders_check_their_arguments() -> None:
    with pytest.raises(ValueError, match="depth must be one of 50, 101, 152"):
        build_resnet(conv_a_kernels=((1, 1, 1),) * 4, stem_kernel=(1, 7, 7), stage1_pool=True, depth=34)
    with pytest.raises(ValueError, match="stage_depths must be 4 ints"):
        build_slowfast(stage_depths=(1, 1, 7, 1))
    with pytest.raises(ValueError, match="stem_channels"):
        build_slowfast(stem_channels=(16, 4))


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
    torch.manual_seed(0)  # the weights drawn below, whatever ran before
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
