"""The reference for the backbone parity tests: every videoattn backbone built with pytorchvideo
0.1.5's own builders, as videoattn built them until it wrote its own (hub settings; the head's
pool made adaptive; tiny models built at full depth, then cut to one block per stage; LR-Nets
on pytorchvideo's ``Net``, ``ResStage`` and block builders). Used by tests only.
"""
from __future__ import annotations

from typing import Sequence

import torch.nn as nn
from pytorchvideo.models import hub
from pytorchvideo.models.head import create_res_basic_head
from pytorchvideo.models.net import Net
from pytorchvideo.models.resnet import ResStage, create_bottleneck_block, create_res_block
from pytorchvideo.models.stem import ResNetBasicStem

from videoattn.blocks import LocalRelation3d
from videoattn.models.lr_resnet import DEPTHS, STEM_CHANNELS, WIDTHS, lr_groups

_TINY = (1, 1, 1, 1)
_PROBE = dict(stage_conv_b_kernel_size=((1, 3, 3), (1, 3, 3), (1, 1, 1), (1, 1, 1)),
              stage_spatial_h_stride=(1, 2, 2, 1), stage_spatial_w_stride=(1, 2, 2, 1))


def make_head_adaptive(model: nn.Module) -> nn.Module:
    """Replace the hub head's fixed-size average pool by a global one (as videoattn's heads)."""
    last = model.blocks[-1]
    if getattr(last, "pool", None) is not None:
        last.pool = nn.AdaptiveAvgPool3d(1)
    else:
        model.blocks[-2].pool = nn.ModuleList([nn.AdaptiveAvgPool3d(1), nn.AdaptiveAvgPool3d(1)])
    return model


def _cut(model: nn.Module, depths: Sequence[int]) -> nn.Module:
    stages = [m for m in model.modules() if isinstance(m, ResStage)]
    per_pathway = len(stages) // len(depths)
    for i, stage in enumerate(stages):
        stage.res_blocks = stage.res_blocks[: depths[i // per_pathway]]
    return model


def pytorchvideo_backbone(name: str, *, num_classes: int = 400, dropout: float = 0.5) -> nn.Module:
    """Backbone ``name`` (one of videoattn's plain backbones) built by pytorchvideo."""
    kw = dict(pretrained=False, model_num_class=num_classes, dropout_rate=dropout)
    if name in ("c2d_r50", "i3d_r50", "slow_r50", "slowfast_r50", "slowfast_r101"):
        model = getattr(hub, name)(**kw)
    elif name == "i3d_tiny":
        model = _cut(hub.i3d_r50(**kw, stem_dim_out=16), _TINY)
    elif name == "i3d_probe":
        model = _cut(hub.i3d_r50(**kw, stem_dim_out=16, **_PROBE), _TINY)
    elif name == "slowfast_tiny":
        model = _cut(hub.slowfast_r50(**kw, stem_dim_outs=(16, 2)), _TINY)
    else:
        raise ValueError(f"no pytorchvideo reference for {name!r}")
    return make_head_adaptive(model)


def _lr_layer(in_channels, out_channels, kernel_size, stride, **_conv_args) -> LocalRelation3d:
    return LocalRelation3d(in_channels, out_channels, kernel_size=tuple(kernel_size), stride=tuple(stride), heads=lr_groups(in_channels))


def pytorchvideo_lr_resnet(*, temporal: Sequence[Sequence[int]], stem_temporal: int, temporal_pool: bool = True,
                           stage_depths: Sequence[int] = DEPTHS, num_classes: int = 400, dropout: float = 0.5) -> nn.Module:
    """LR-Net-50 on pytorchvideo's pieces (videoattn's lr_resnet.py until it had its own)."""
    conv = nn.Sequential(nn.Conv3d(3, STEM_CHANNELS, kernel_size=1, bias=False), nn.BatchNorm3d(STEM_CHANNELS), nn.ReLU(inplace=True),
                         _lr_layer(STEM_CHANNELS, STEM_CHANNELS, (stem_temporal, 7, 7), (1, 2, 2)))
    blocks: list[nn.Module] = [ResNetBasicStem(conv=conv, norm=nn.BatchNorm3d(STEM_CHANNELS), activation=nn.ReLU(inplace=True),
                                               pool=nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))]
    dim_in = STEM_CHANNELS
    for i, (width, depth) in enumerate(zip(WIDTHS, stage_depths)):
        dim_out, stride = 256 * 2**i, 1 if i == 0 else 2
        blocks.append(ResStage(res_blocks=nn.ModuleList(
            create_res_block(
                dim_in=dim_in if j == 0 else dim_out, dim_inner=width, dim_out=dim_out, bottleneck=create_bottleneck_block,
                conv_a_kernel_size=(1, 1, 1), conv_a_stride=(1, 1, 1), conv_a_padding=(0, 0, 0),
                conv_b_kernel_size=(t, 7, 7), conv_b_stride=(1, stride, stride) if j == 0 else (1, 1, 1),
                conv_b_padding=(t // 2, 3, 3), conv_b=_lr_layer,
            )
            for j, t in enumerate(temporal[i][:depth])
        )))
        dim_in = dim_out
        if i == 0 and temporal_pool:
            blocks.append(nn.MaxPool3d(kernel_size=(2, 1, 1), stride=(2, 1, 1)))
    blocks.append(create_res_basic_head(in_features=dim_in, out_features=num_classes, pool=nn.AdaptiveAvgPool3d,
                                        output_size=(1, 1, 1), dropout_rate=dropout))
    return Net(blocks=nn.ModuleList(blocks))
