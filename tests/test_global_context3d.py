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
