"""Squeeze-and-Excitation block in space-time (3D).
Paper: Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018. https://arxiv.org/abs/1709.01507
Parameter names follow torchvision's `ops.misc.SqueezeExcitation` (fc1, fc2, here 1x1x1 Conv3d):
a 2D checkpoint loads after `weight[..., None]` on fc1/fc2 weights, and with T=1 the outputs match.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from videoattn.blocks._checks import bottleneck_channels, check_input, check_positive


class SqueezeExcite3d(nn.Module):
    """``out = x * gate(fc2(act(fc1(mean_{T,H,W}(x)))))``.

    Args:
        in_channels: channels C of the input.
        ratio: squeeze width is ``max(1, int(C * ratio))`` (paper: 1/16).
        squeeze_channels: explicit squeeze width, overrides ``ratio``.
        act_layer: activation between fc1 and fc2 (ReLU).
        gate_layer: gating activation (Sigmoid).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        ratio: float = 1 / 16,
        squeeze_channels: int | None = None,
        act_layer: Callable[[], nn.Module] = nn.ReLU,
        gate_layer: Callable[[], nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        check_positive("in_channels", in_channels, "SqueezeExcite3d")
        if squeeze_channels is None:
            squeeze_channels = bottleneck_channels(in_channels, ratio, "SqueezeExcite3d")
        check_positive("squeeze_channels", squeeze_channels, "SqueezeExcite3d")
        self.in_channels = in_channels
        self.fc1 = nn.Conv3d(in_channels, squeeze_channels, kernel_size=1)
        self.fc2 = nn.Conv3d(squeeze_channels, in_channels, kernel_size=1)
        self.activation = act_layer()
        self.scale_activation = gate_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, "SqueezeExcite3d")
        s = x.mean(dim=(2, 3, 4), keepdim=True)  # (N, C, 1, 1, 1)
        s = self.scale_activation(self.fc2(self.activation(self.fc1(s))))
        return x * s
