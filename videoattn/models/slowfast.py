"""SlowFast networks written with torch only, in pytorchvideo's module tree: the two-pathway
stage with its fast-to-slow fusion, the pool-and-concatenate before the head, and
``build_slowfast`` (alpha 4, beta 1/8, the hub models' settings).

SlowFast Networks for Video Recognition (Feichtenhofer, Fan, Malik, He, ICCV 2019,
https://arxiv.org/abs/1812.03982).

Parameter names are pytorchvideo 0.1.5's (``blocks.{i}.multipathway_blocks.{0: slow, 1: fast}``,
``blocks.{i}.multipathway_fusion.conv_fast_to_slow``, ``blocks.6.proj``), and modules are built and
initialised in its order, so hub checkpoints load and a seed gives pytorchvideo's weights.
Unlike pytorchvideo's, no module writes into the list it is given.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from videoattn.models.resnet import (
    BasicHead,
    BasicStem,
    Kernel,
    ResStage,
    VideoNet,
    check_stage_depths,
    init_weights,
    keep_first_blocks,
    stage_depths_for,
)

__all__ = ["MultiPathway", "FuseFastToSlow", "PoolConcat", "build_slowfast"]

ALPHA = 4  # frame rate ratio fast / slow
BETA_INV = 8  # channel ratio slow / fast
FUSION_CHANNEL_RATIO = 2  # the lateral connection's outputs per fast channel
# Per pathway (slow, fast): the stem's kernel, and conv_a's kernel per stage res2..res5.
STEM_KERNELS: tuple[Kernel, Kernel] = ((1, 7, 7), (5, 7, 7))
CONV_A_KERNELS: tuple[tuple[Kernel, ...], tuple[Kernel, ...]] = (
    ((1, 1, 1), (1, 1, 1), (3, 1, 1), (3, 1, 1)),
    ((3, 1, 1), (3, 1, 1), (3, 1, 1), (3, 1, 1)),
)
CONV_B_KERNEL: Kernel = (1, 3, 3)
SPATIAL_STRIDES = (1, 2, 2, 2)


class MultiPathway(nn.Module):
    """One module per pathway (``multipathway_blocks``), then the fusion of their outputs
    (``multipathway_fusion``): ``[slow, fast] -> fusion([slow_block(slow), fast_block(fast)])``."""

    def __init__(self, pathways: Sequence[nn.Module], fusion: nn.Module) -> None:
        super().__init__()
        self.multipathway_blocks = nn.ModuleList(pathways)
        self.multipathway_fusion = fusion

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.multipathway_fusion([block(t) for block, t in zip(self.multipathway_blocks, x)])


class FuseFastToSlow(nn.Module):
    """The lateral connection: a time-strided conv of the fast pathway (``alpha`` frames to one,
    ``FUSION_CHANNEL_RATIO`` outputs per channel), BN and ReLU, concatenated to the slow pathway's
    channels: ``[slow, fast] -> [cat(slow, fuse(fast)), fast]``.

    Args:
        fast_channels: channels of the fast pathway here.
        kernel_time: temporal kernel of the conv (7 in SlowFast-R50, 5 in R101).
    """

    def __init__(self, fast_channels: int, *, kernel_time: int) -> None:
        super().__init__()
        self.conv_fast_to_slow = nn.Conv3d(fast_channels, fast_channels * FUSION_CHANNEL_RATIO, kernel_size=(kernel_time, 1, 1),
                                           stride=(ALPHA, 1, 1), padding=(kernel_time // 2, 0, 0), bias=False)
        self.norm = nn.BatchNorm3d(fast_channels * FUSION_CHANNEL_RATIO)
        self.activation = nn.ReLU()

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        slow, fast = x
        fuse = self.activation(self.norm(self.conv_fast_to_slow(fast)))
        return [torch.cat([slow, fuse], 1), fast]


class PoolConcat(nn.Module):
    """Global average pool of each pathway, concatenated along channels:
    ``[(N, Cs, Ts, H, W), (N, Cf, Tf, H, W)] -> (N, Cs + Cf, 1, 1, 1)``."""

    def __init__(self, num_pathways: int = 2) -> None:
        super().__init__()
        self.pool = nn.ModuleList(nn.AdaptiveAvgPool3d(1) for _ in range(num_pathways))

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([pool(t) for pool, t in zip(self.pool, x)], 1)


def build_slowfast(
    *,
    depth: int = 50,
    fusion_kernel: int = 7,
    stem_channels: tuple[int, int] = (64, 8),
    stage_depths: Sequence[int] | None = None,
    num_classes: int = 400,
    dropout: float = 0.5,
) -> VideoNet:
    """SlowFast (alpha 4, beta 1/8; pytorchvideo ``create_slowfast`` with the hub settings): two
    stems, four two-pathway stages with a fast-to-slow fusion after the stems and after res2-res4,
    pool-and-concatenate, head. Takes ``[slow (N, 3, T, H, W), fast (N, 3, 4T, H, W)]``.

    Args:
        depth: 50, 101 or 152.
        fusion_kernel: temporal kernel of the fusion convs.
        stem_channels: (slow, fast) stem outputs; the fast one is 1/8 of the slow one.
        stage_depths: keep only this many blocks per stage in both pathways (tiny models); None
            keeps ``depth``'s. The dropped blocks are built and initialised first, so a seed gives
            the weights it gave with pytorchvideo's builder.
        num_classes: outputs of the head.
        dropout: dropout rate before the head's linear layer.
    """
    depths = stage_depths_for(depth)
    check_stage_depths(stage_depths, depths)
    slow_channels, fast_channels = stem_channels
    if slow_channels % BETA_INV or fast_channels != slow_channels // BETA_INV:
        raise ValueError(f"stem_channels: the fast pathway has 1/{BETA_INV} of the slow one's channels, got {tuple(stem_channels)}")
    stems = [BasicStem(3, c, kernel_size=k) for c, k in zip(stem_channels, STEM_KERNELS)]
    blocks: list[nn.Module] = [MultiPathway(stems, FuseFastToSlow(fast_channels, kernel_time=fusion_kernel))]
    dim_in = slow_channels  # slow pathway, before the fusion's channels are added
    for i, n in enumerate(depths):
        width = slow_channels * 2**i
        fused_in = dim_in + dim_in * FUSION_CHANNEL_RATIO // BETA_INV
        pathways = [
            ResStage(d_in, d_inner, d_out, conv_a_kernels=[CONV_A_KERNELS[p][i]] * n, conv_b_kernels=[CONV_B_KERNEL] * n,
                     spatial_stride=SPATIAL_STRIDES[i])
            for p, (d_in, d_inner, d_out) in enumerate([
                (fused_in, width, 4 * width),
                (dim_in // BETA_INV, width // BETA_INV, 4 * width // BETA_INV),
            ])
        ]
        last = i == len(depths) - 1
        fusion = nn.Identity() if last else FuseFastToSlow(4 * width // BETA_INV, kernel_time=fusion_kernel)
        blocks.append(MultiPathway(pathways, fusion))
        dim_in = 4 * width
    blocks.append(PoolConcat())
    blocks.append(BasicHead(dim_in + dim_in // BETA_INV, num_classes, dropout=dropout, pool=False))
    model = init_weights(VideoNet(nn.ModuleList(blocks), num_pathways=2))
    if stage_depths is not None:
        keep_first_blocks(model, stage_depths)
    return model
