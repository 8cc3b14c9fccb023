"""SqueezeExcite3d: equal to torchvision's 2D SqueezeExcitation when T=1 (same weights), squeeze over
T, H and W for T>1, squeeze width from ratio, custom layers, bad arguments.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.ops import SqueezeExcitation

from videoattn.blocks import SqueezeExcite3d


def test_equals_torchvision_2d_with_t_equal_1() -> None:
    torch.manual_seed(0)
    ref = SqueezeExcitation(32, 8)
    ours = SqueezeExcite3d(32, ratio=1 / 4)
    # torchvision's 1x1 Conv2d weights (O, I, 1, 1) -> our 1x1x1 Conv3d weights (O, I, 1, 1, 1)
    ours.load_state_dict({k: (v.unsqueeze(-1) if v.dim() == 4 else v) for k, v in ref.state_dict().items()})
    x = torch.randn(2, 32, 1, 5, 7)
    expected = ref(x.squeeze(2)).unsqueeze(2)
    assert (expected - x).abs().max() > 0.1
    torch.testing.assert_close(ours(x), expected, rtol=1e-6, atol=1e-6)


def test_squeezes_over_time_too() -> None:
    block = SqueezeExcite3d(16, ratio=1 / 4)
    x = torch.randn(2, 16, 3, 4, 4)
    x[:, :, 1:] = 0  # only the first frame carries signal: the mean must include the zero frames
    s = torch.sigmoid(block.fc2(torch.relu(block.fc1(x.mean(dim=(2, 3, 4), keepdim=True)))))
    torch.testing.assert_close(block(x), x * s)
    assert not torch.allclose(block(x), block(x[:, :, :1]).expand_as(x) * (x != 0))


@pytest.mark.parametrize("channels, kwargs, squeeze", [(256, {}, 16), (64, dict(ratio=1 / 4), 16), (8, {}, 1), (64, dict(squeeze_channels=5), 5)])
def test_squeeze_width(channels: int, kwargs: dict, squeeze: int) -> None:
    block = SqueezeExcite3d(channels, **kwargs)
    assert block.fc1.out_channels == squeeze and block.fc2.in_channels == squeeze


def test_custom_layers() -> None:
    block = SqueezeExcite3d(16, act_layer=nn.SiLU, gate_layer=nn.Hardsigmoid)
    assert isinstance(block.activation, nn.SiLU) and isinstance(block.scale_activation, nn.Hardsigmoid)
    x = torch.randn(1, 16, 2, 3, 3)
    s = nn.functional.hardsigmoid(block.fc2(nn.functional.silu(block.fc1(x.mean((2, 3, 4), keepdim=True)))))
    torch.testing.assert_close(block(x), x * s)


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(ratio=0.0), r"ratio must be a number in \(0, 1\]"), (dict(squeeze_channels=0), r"squeeze_channels must be a positive int")],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SqueezeExcite3d(16, **kwargs)
