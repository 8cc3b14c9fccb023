"""LR-Net-50 video backbones: ``c2d_lr50`` and ``i3d_lr50``, the ResNet-50 of Local Relation
Networks (Hu, Zhang, Xie, Lin, ICCV 2019, https://arxiv.org/abs/1904.11491, Table 1) in the layout
of our C2D / I3D ResNets (videoattn.models.resnet's ``VideoNet``, ``ResStage``, ``ResBlock``,
``Bottleneck``: pytorchvideo's module tree, so that presets, ``insert_blocks`` and ``res_stage_paths``
work on them as on ``c2d_r50``).

The paper's table: every 3x3 conv of ResNet-50 becomes a 7x7 local relation layer with m = 8
(channels sharing one aggregation weight); bottleneck widths 100, 200, 400, 800 (outputs 256,
512, 1024, 2048 as ResNet-50); the stem is a 1x1 conv (64) and a 7x7 LR layer with stride 2;
23.3M parameters and 4.3 GFLOPs at 1000 classes and 224x224 (ResNet-50: 25.5M).

What the paper leaves open, and the choice made here:
- The LR layer: key and query maps of C / m channels (one scalar per group, the paper's channel
  sharing), aggregation per group, then a 1x1 conv C -> C (the channel transform after the
  aggregation; without it the parameters would be 20.3M, not 23.3M). With it we count 23.40M
  parameters (+0.4%). The geometry prior's hidden width is the number of groups.
- res2 has 100 channels, which 8 does not divide: it uses 10 groups of 10 channels (the divisor
  of 100 closest to 100 / 8); the stem (64) and res3-res5 have groups of 8 channels.
- The stem has BatchNorm + ReLU between the 1x1 conv and the LR layer, as between every two
  layers of a ResNet; it keeps ResNet's 3x3 max-pool with stride 2. Downsampling is in the LR layer
  of the first block of res3-res5 (where ResNet-50 v1.5 strides its 3x3 conv).
- FLOPs: counted as everywhere in videoattn (torch's FlopCounterMode, one multiply-add = one FLOP,
  norms not counted; the LR op: its composability and aggregation multiply-adds, softmax not
  counted) LR-Net-50 has 4.03 GFLOPs per 224x224 frame and torchvision's ResNet-50 4.09: equal
  within 2%, as in the paper's table, but 6% below the paper's absolute 4.3. LR-Net-26 (depths
  2, 2, 2, 2) counts 14.62M parameters and 2.38 GFLOPs here against the paper's 14.7M and 2.6: the
  paper's FLOPs are 0.2-0.27 G above this counting at both depths, while the parameters agree
  within 0.6%. No choice left open by the paper adds 0.25 GFLOPs without also changing the
  parameters (docs/models.md).
- Video: ``c2d_lr50`` runs the 2D network on every frame (LR kernels 1x7x7) with c2d_r50's
  temporal max-pool after res2; ``i3d_lr50`` gives the LR layer a temporal extent where i3d_r50 has
  one: 3x7x7 in the blocks whose conv_a i3d_r50 inflates to 3x1x1 (conv_a stays 1x1x1 here) and
  5x7x7 in the stem (i3d_r50's stem is 5x7x7). ``temporal_pool=False`` drops the temporal
  max-pool (the plain per-frame 2D network).
"""
from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from videoattn.blocks import LocalRelation3d
from videoattn.models.registry import register_model
from videoattn.models.resnet import BasicHead, BasicStem, Kernel, ResStage, VideoNet, init_weights

__all__ = ["build_lr_resnet", "lr_groups"]

WIDTHS = (100, 200, 400, 800)  # bottleneck widths of LR-Net-50 (ResNet-50: 64, 128, 256, 512)
DEPTHS = (3, 4, 6, 3)
CHANNELS_PER_GROUP = 8  # m
STEM_CHANNELS = 64
# Temporal extent of the LR layer per block (res2..res5): where i3d_r50 inflates conv_a to 3x1x1.
_C2D_TEMPORAL = ((1,) * 3, (1,) * 4, (1,) * 6, (1,) * 3)
_I3D_TEMPORAL = ((3, 3, 3), (3, 1, 3, 1), (3, 1, 3, 1, 3, 1), (1, 3, 1))


def lr_groups(channels: int, channels_per_group: int = CHANNELS_PER_GROUP) -> int:
    """Aggregation groups of an LR layer: channels / m, or, when m does not divide the channels,
    the divisor of ``channels`` closest to channels / m (100 channels, m = 8: 10 groups)."""
    divisors = [g for g in range(1, channels + 1) if channels % g == 0]
    return min(divisors, key=lambda g: (abs(g - channels / channels_per_group), g))


def _lr_layer(in_channels: int, out_channels: int, *, kernel_size: Kernel, stride: Kernel, **_conv_args) -> LocalRelation3d:
    """Stands in for a conv (the bottleneck's conv_b; padding and bias are the conv's and have no
    meaning here)."""
    return LocalRelation3d(in_channels, out_channels, kernel_size=tuple(kernel_size), stride=tuple(stride),
                           heads=lr_groups(in_channels))


def _stem_layer(in_channels: int, out_channels: int, *, kernel_size: Kernel, stride: Kernel, **_conv_args) -> nn.Sequential:
    """The stem's conv: a 1x1 conv, BN, ReLU and a local relation layer with the stem's kernel and stride."""
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, kernel_size=1, bias=False),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
        _lr_layer(out_channels, out_channels, kernel_size=kernel_size, stride=stride),
    )


def build_lr_resnet(
    *,
    temporal: Sequence[Sequence[int]] = _C2D_TEMPORAL,
    stem_temporal: int = 1,
    temporal_pool: bool = True,
    stage_depths: Sequence[int] | None = None,
    num_classes: int = 400,
    dropout: float = 0.5,
) -> VideoNet:
    """LR-Net-50 in the layout of c2d_r50 (pytorchvideo's): stem, res2, [temporal max-pool], res3, res4, res5, head.

    Args:
        temporal: the LR layers' temporal extent, per stage and block.
        stem_temporal: temporal extent of the stem's LR layer.
        temporal_pool: halve the frames after res2 (temporal max-pool), as c2d_r50 / i3d_r50.
        stage_depths: this many blocks per stage (LR-Net-26: 2, 2, 2, 2); None builds (3, 4, 6, 3).
        num_classes: outputs of the head.
        dropout: dropout rate before the head's linear layer.
    """
    depths = DEPTHS if stage_depths is None else tuple(stage_depths)
    blocks: list[nn.Module] = [BasicStem(3, STEM_CHANNELS, kernel_size=(stem_temporal, 7, 7), conv_layer=_stem_layer)]
    dim_in = STEM_CHANNELS
    for i, (width, depth) in enumerate(zip(WIDTHS, depths)):
        dim_out = 256 * 2**i
        kernels = [(t, 7, 7) for t in temporal[i][:depth]]
        blocks.append(ResStage(dim_in, width, dim_out, conv_a_kernels=[(1, 1, 1)] * len(kernels), conv_b_kernels=kernels,
                               spatial_stride=1 if i == 0 else 2, conv_b_layer=_lr_layer))
        dim_in = dim_out
        if i == 0 and temporal_pool:  # as c2d_r50 / i3d_r50: halve T after res2
            blocks.append(nn.MaxPool3d(kernel_size=(2, 1, 1), stride=(2, 1, 1), padding=(0, 0, 0)))
    blocks.append(BasicHead(dim_in, num_classes, dropout=dropout))
    return init_weights(VideoNet(nn.ModuleList(blocks)))


_R50 = dict(frames=(8,), crop_size=224)


@register_model("c2d_lr50", **_R50, description="C2D LR-Net-50 (7x7 local relation layers instead of 3x3 convs, per frame), c2d_r50's layout")
def c2d_lr50(*, num_classes: int = 400, dropout: float = 0.5, temporal_pool: bool = True) -> VideoNet:
    return build_lr_resnet(temporal=_C2D_TEMPORAL, stem_temporal=1, temporal_pool=temporal_pool,
                           num_classes=num_classes, dropout=dropout)


@register_model("i3d_lr50", **_R50, description="I3D LR-Net-50 (3x7x7 local relation layers where i3d_r50 inflates, 5x7x7 stem)")
def i3d_lr50(*, num_classes: int = 400, dropout: float = 0.5, temporal_pool: bool = True) -> VideoNet:
    return build_lr_resnet(temporal=_I3D_TEMPORAL, stem_temporal=5, temporal_pool=temporal_pool,
                           num_classes=num_classes, dropout=dropout)
