"""GlobalContext3d: equal to GCNet's ContextBlock (ported to 3D below) with the same weights,
for both poolings and all fusions; bottleneck width; initial state; bad arguments.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from videoattn.blocks import GlobalContext3d


class ReferenceContextBlock3d(nn.Module):
    """GCNet's ContextBlock (mmcv/cnn/bricks/context_block.py, xvjiarui/GCNet), forward kept line by
    line, with Conv2d -> Conv3d and H*W -> T*H*W. Reference for the test only."""

    def __init__(self, in_channels: int, ratio: float, pooling_type: str = "att", fusion_types=("channel_add",)):
        super().__init__()
        self.in_channels = in_channels
        self.planes = int(in_channels * ratio)
        self.pooling_type = pooling_type
        if pooling_type == "att":
            self.conv_mask = nn.Conv3d(in_channels, 1, kernel_size=1)
            self.softmax = nn.Softmax(dim=2)
        else:
            self.avg_pool = nn.AdaptiveAvgPool3d(1)

        def transform() -> nn.Sequential:
            return nn.Sequential(
                nn.Conv3d(self.in_channels, self.planes, kernel_size=1),
                nn.LayerNorm([self.planes, 1, 1, 1]),
                nn.ReLU(inplace=True),
                nn.Conv3d(self.planes, self.in_channels, kernel_size=1),
            )

        self.channel_add_conv = transform() if "channel_add" in fusion_types else None
        self.channel_mul_conv = transform() if "channel_mul" in fusion_types else None

    def spatial_pool(self, x: torch.Tensor) -> torch.Tensor:
        batch, channel, t, height, width = x.size()
        if self.pooling_type == "att":
            input_x = x
            input_x = input_x.view(batch, channel, t * height * width)  # [N, C, THW]
            input_x = input_x.unsqueeze(1)  # [N, 1, C, THW]
            context_mask = self.conv_mask(x)  # [N, 1, T, H, W]
            context_mask = context_mask.view(batch, 1, t * height * width)  # [N, 1, THW]
            context_mask = self.softmax(context_mask)
            context_mask = context_mask.unsqueeze(-1)  # [N, 1, THW, 1]
            context = torch.matmul(input_x, context_mask)  # [N, 1, C, 1]
            context = context.view(batch, channel, 1, 1, 1)
        else:
            context = self.avg_pool(x)
        return context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.spatial_pool(x)
        out = x
        if self.channel_mul_conv is not None:
            channel_mul_term = torch.sigmoid(self.channel_mul_conv(context))
            out = out * channel_mul_term
        if self.channel_add_conv is not None:
            channel_add_term = self.channel_add_conv(context)
            out = out + channel_add_term
        return out


def _randomise(module: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)


def _to_reference_state(block: GlobalContext3d) -> dict[str, torch.Tensor]:
    # Our LayerNorm weights are (planes,), the reference's (planes, 1, 1, 1).
    return {k: (v.view(-1, 1, 1, 1) if ".1." in k else v) for k, v in block.state_dict().items()}


@pytest.mark.parametrize("fusions", [("add",), ("mul",), ("add", "mul")])
@pytest.mark.parametrize("pooling", ["att", "avg"])
def test_equals_reference_context_block(pooling: str, fusions: tuple[str, ...]) -> None:
    block = GlobalContext3d(32, ratio=1 / 4, pooling=pooling, fusions=fusions)
    _randomise(block, seed=0)
    ref = ReferenceContextBlock3d(32, 1 / 4, pooling, tuple(f"channel_{f}" for f in fusions))
    ref.load_state_dict(_to_reference_state(block))  # strict: same parameter names
    x = torch.randn(2, 32, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    expected = ref(x)
    assert (expected - x).abs().max() > 0.1
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


def test_attention_pools_over_all_space_time_positions() -> None:
    block = GlobalContext3d(8, ratio=1 / 4)
    with torch.no_grad():
        block.conv_mask.weight.zero_()  # uniform attention over T*H*W: context = mean
    x = torch.randn(2, 8, 3, 4, 5)
    torch.testing.assert_close(block.context(x), x.mean(dim=(2, 3, 4), keepdim=True))


@pytest.mark.parametrize("channels, ratio, planes", [(256, 1 / 16, 16), (256, 1 / 4, 64), (40, 1 / 16, 2), (8, 1 / 16, 1)])
def test_bottleneck_width(channels: int, ratio: float, planes: int) -> None:
    block = GlobalContext3d(channels, ratio=ratio, fusions=("add", "mul"))
    assert block.planes == planes
    assert block.channel_add_conv[0].out_channels == planes
    assert block.channel_mul_conv[3].in_channels == planes


def test_initial_state_as_reference() -> None:
    x = torch.randn(1, 32, 2, 3, 3)
    torch.testing.assert_close(GlobalContext3d(32)(x), x, rtol=0, atol=0)  # add: identity
    torch.testing.assert_close(GlobalContext3d(32, fusions=("mul",))(x), x * 0.5)  # sigmoid(0)
    block = GlobalContext3d(32, fusions=("add", "mul"))
    for transform in (block.channel_add_conv, block.channel_mul_conv):
        assert transform[-1].weight.abs().sum() == 0 and transform[-1].bias.abs().sum() == 0
    assert not hasattr(GlobalContext3d(32, pooling="avg"), "conv_mask")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(pooling="max"), r"unknown pooling 'max'; expected one of 'att', 'avg'"),
        (dict(fusions=("add", "concat")), r"unknown fusion 'concat'; expected one of 'add', 'mul'"),
        (dict(fusions=()), r"fusions must name at least one"),
        (dict(ratio=0), r"ratio must be a number in \(0, 1\]"),
        (dict(ratio=2.0), r"ratio must be a number in \(0, 1\]"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GlobalContext3d(32, **kwargs)


@pytest.mark.parametrize("pooling", ["att", "avg"])
def test_attention_is_the_weighting_of_the_context(pooling: str) -> None:
    block = GlobalContext3d(16, ratio=1 / 4, pooling=pooling)
    _randomise(block, seed=2)
    x = torch.randn(2, 16, 3, 4, 5, generator=torch.Generator().manual_seed(3))
    att = block.attention(x)
    assert att.shape == (2, 3, 4, 5)
    torch.testing.assert_close(att.flatten(1).sum(-1), torch.ones(2))
    if pooling == "avg":
        torch.testing.assert_close(att, torch.full((2, 3, 4, 5), 1 / 60))
    else:
        assert att.flatten(1).std(-1).min() > 0  # a learned mask is not uniform
    ctx = (x * att.unsqueeze(1)).sum(dim=(2, 3, 4)).view(2, 16, 1, 1, 1)  # the weighted sum over T*H*W
    torch.testing.assert_close(block.context(x), ctx, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, C=16, T, H, W\)"):
        block.attention(torch.randn(2, 16, 4, 5))


@pytest.mark.parametrize("trailing", [(1, 1, 1), (1, 1)], ids=["3d [P,1,1,1]", "gcnet 2d [P,1,1]"])
def test_loads_gcnet_shaped_state_dicts_as_they_are(trailing: tuple[int, ...]) -> None:
    """GCNet's LayerNorm([P, 1, 1]) (2D ContextBlock) and a 3D port's LayerNorm([P, 1, 1, 1]) store
    their weight and bias as [P, 1, 1] / [P, 1, 1, 1]: a plain (strict) load_state_dict takes them."""
    source = GlobalContext3d(32, ratio=1 / 4, fusions=("add", "mul"))
    _randomise(source, seed=5)
    reference_state = {k: (v.view(-1, *trailing) if ".1." in k else v) for k, v in source.state_dict().items()}
    assert reference_state["channel_add_conv.1.weight"].shape == (8, *trailing)
    block = GlobalContext3d(32, ratio=1 / 4, fusions=("add", "mul"))
    block.load_state_dict(reference_state)
    for name, value in source.state_dict().items():
        torch.testing.assert_close(block.state_dict()[name], value, rtol=0, atol=0)
    assert block.channel_add_conv[1].weight.shape == (8,)  # stays 1-d (channels_last_3d)
    wrong = {**reference_state, "channel_add_conv.1.weight": torch.ones(4, 1, 1, 1)}
    with pytest.raises(RuntimeError, match="size mismatch for channel_add_conv.1.weight"):
        block.load_state_dict(wrong)


def _res5_dead_after_adamw(model: nn.Module, steps: int = 80) -> float:
    """Train ``model`` with the recipes' optimizer (AdamW, lr 5e-3, label smoothing 0.1) on clips
    with no learnable signal (noise, random labels: what a run from scratch sees in its first
    hundreds of steps) and return the fraction of zeros after res5's residual ReLU (the output of
    its residual block, before a GC placed after it)."""
    import torch.nn.functional as F
    from videoattn.models.resnet import ResBlock
    from videoattn.optim import build_optimizer

    g = torch.Generator().manual_seed(100)
    optimizer = build_optimizer(model, "adamw", lr=5e-3, weight_decay=1e-4)
    out: dict[str, torch.Tensor] = {}
    last = [m for m in model.modules() if isinstance(m, ResBlock)][-1]
    last.register_forward_hook(lambda m, a, o: out.__setitem__("res5", o))
    for _ in range(steps):
        x, y = torch.randn(8, 3, 4, 16, 16, generator=g), torch.randint(0, 4, (8,), generator=g)
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return float((out["res5"] <= 0).float().mean())


def test_gc_preset_trains_from_scratch_with_adamw(one_thread: None) -> None:
    """i3d_tiny_gc puts GC after each res3-res5 bottleneck's addition (GCNet's "after add"): res5
    stays alive as in i3d_tiny without blocks (0.54-0.56 of zeros here over seeds 0-2 of the model,
    0.57-0.58 without GC). With GC after the branch's last norm (GCNet's default, the next test:
    0.88-0.90) its add term drives res5 towards all zeros: the collapse of docs/gc_collapse.md, where 200 steps of a real run reached 0.99."""
    from videoattn.models import create_model

    torch.manual_seed(0)
    assert _res5_dead_after_adamw(create_model("i3d_tiny_gc", num_classes=4, dropout=0.2)) < 0.7


def test_gc_after_a_zero_initialised_norm_collapses_with_adamw(one_thread: None) -> None:
    from videoattn.models import create_model
    from videoattn.models.presets import ALL, Placement, apply_placement

    torch.manual_seed(0)
    model = create_model("i3d_tiny", num_classes=4, dropout=0.2)
    apply_placement(model, Placement("gc", {3: ALL, 4: ALL, 5: ALL}, "inside", {"ratio": 1 / 16}))
    assert _res5_dead_after_adamw(model) > 0.8
