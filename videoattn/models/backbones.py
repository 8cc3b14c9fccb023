"""Backbones: C2D, I3D, Slow and SlowFast ResNets with exactly the layers (and the
state-dict keys) of pytorchvideo's hub models of the same name, built with
pytorchvideo's own builders, plus tiny variants for tests and CPU demos.

Two changes from the hub models, neither with parameters: the head pools
adaptively (global average), so any input size works and at the recipe's input
it computes what the fixed-size pool computes; and SlowFast does not overwrite
the caller's [slow, fast] list.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import torch
import torch.nn as nn

with warnings.catch_warnings():  # fvcore (imported by pytorchvideo) scripts a loss with torch.jit.script at import
    warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated", category=FutureWarning)
    from pytorchvideo.models.resnet import ResStage, create_resnet
    from pytorchvideo.models.slowfast import create_slowfast

from videoattn.models.registry import register_model

__all__ = ["VideoNet", "res_stage_paths", "build_resnet", "build_slowfast"]

# Temporal kernel of conv_a per stage (res2..res5), as pytorchvideo's hub models.
_C2D_CONV_A = ((1, 1, 1),) * 4
_I3D_CONV_A = ((3, 1, 1), [(3, 1, 1), (1, 1, 1)], [(3, 1, 1), (1, 1, 1)], [(1, 1, 1), (3, 1, 1)])
_SLOW_CONV_A = ((1, 1, 1), (1, 1, 1), (3, 1, 1), (3, 1, 1))


class VideoNet(nn.Module):
    """A stem, residual stages and a head run in sequence (pytorchvideo's ``Net`` layout,
    so ``blocks.{i}`` keys match its checkpoints), with its input checked.

    Takes ``(N, 3, T, H, W)``, or ``[slow, fast]`` when ``num_pathways == 2``; returns
    logits ``(N, num_classes)`` in train and eval mode alike.
    """

    def __init__(self, blocks: nn.ModuleList, *, num_pathways: int = 1) -> None:
        super().__init__()
        self.blocks = blocks
        self.num_pathways = num_pathways

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        if self.num_pathways == 1:
            if not isinstance(x, torch.Tensor) or x.dim() != 5:
                raise ValueError(f"expected a tensor (N, C, T, H, W), got {_describe(x)}")
        else:
            if isinstance(x, torch.Tensor) or len(x) != self.num_pathways or any(
                not isinstance(t, torch.Tensor) or t.dim() != 5 for t in x
            ):
                raise ValueError(f"expected a list of {self.num_pathways} tensors (N, C, T, H, W) [slow, fast], got {_describe(x)}")
            x = list(x)  # pytorchvideo's first fusion block writes into the list it is given
        for block in self.blocks:
            x = block(x)
        return x

    def get_classifier(self) -> nn.Linear:
        """The final linear layer (``blocks[-1].proj``). Its input is the clip's embedding: the
        global average of the last stage (both pathways concatenated for SlowFast)."""
        return self.blocks[-1].proj


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)}"
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_describe(t) for t in x) + "]"
    return type(x).__name__


def res_stage_paths(model: nn.Module) -> list[str]:
    """Paths of the residual stages res2..res5 (the slow pathway's, for SlowFast)."""
    paths = [name for name, m in model.named_modules() if isinstance(m, ResStage)]
    slow = [p for p in paths if ".multipathway_blocks." in p]
    return [p for p in slow if p.endswith(".multipathway_blocks.0")] if slow else paths


def _truncate_stages(model: nn.Module, depths: Sequence[int]) -> None:
    """Keep the first ``depths[i]`` residual blocks of stage i in every pathway."""
    stages = [m for m in model.modules() if isinstance(m, ResStage)]
    per_pathway = len(stages) // len(depths)
    for i, stage in enumerate(stages):
        stage.res_blocks = stage.res_blocks[: depths[i // per_pathway]]


def _finish(net: nn.Module, num_pathways: int) -> VideoNet:
    """Make the head pool global-average (any input size) and wrap in VideoNet."""
    blocks = net.blocks
    if num_pathways == 1:
        blocks[-1].pool = nn.AdaptiveAvgPool3d(1)
    else:
        blocks[-2].pool = nn.ModuleList(nn.AdaptiveAvgPool3d(1) for _ in range(num_pathways))
    return VideoNet(blocks, num_pathways=num_pathways)


def build_resnet(
    *,
    conv_a_kernels: Sequence,
    stem_kernel: tuple[int, int, int],
    stage1_pool: bool,
    depth: int = 50,
    stem_channels: int = 64,
    stage_depths: Sequence[int] | None = None,
    conv_b_kernels: Sequence[tuple[int, int, int]] = ((1, 3, 3),) * 4,
    spatial_strides: Sequence[int] = (1, 2, 2, 2),
    num_classes: int = 400,
    dropout: float = 0.5,
) -> VideoNet:
    """A single-pathway 3D ResNet (pytorchvideo ``create_resnet`` with hub settings).

    stage_depths: keep only this many blocks per stage (tiny models); None keeps ``depth``'s.
    conv_b_kernels: kernel of the middle conv of the bottlenecks, per stage res2..res5.
    spatial_strides: spatial stride of each stage res2..res5.
    """
    net = create_resnet(
        model_depth=depth,
        model_num_class=num_classes,
        dropout_rate=dropout,
        stem_dim_out=stem_channels,
        stem_conv_kernel_size=stem_kernel,
        stage1_pool=nn.MaxPool3d if stage1_pool else None,
        stage_conv_a_kernel_size=conv_a_kernels,
        stage_conv_b_kernel_size=tuple(conv_b_kernels),
        stage_spatial_h_stride=tuple(spatial_strides),
        stage_spatial_w_stride=tuple(spatial_strides),
    )
    if stage_depths is not None:
        _truncate_stages(net, stage_depths)
    return _finish(net, num_pathways=1)


def build_slowfast(
    *,
    depth: int = 50,
    fusion_kernel: int = 7,
    stem_channels: tuple[int, int] = (64, 8),
    stage_depths: Sequence[int] | None = None,
    num_classes: int = 400,
    dropout: float = 0.5,
) -> VideoNet:
    """SlowFast (alpha 4, beta 1/8; pytorchvideo ``create_slowfast`` with hub settings)."""
    net = create_slowfast(
        model_depth=depth,
        model_num_class=num_classes,
        dropout_rate=dropout,
        stem_dim_outs=stem_channels,
        slowfast_fusion_conv_kernel_size=(fusion_kernel, 1, 1),
    )
    if stage_depths is not None:
        _truncate_stages(net, stage_depths)
    return _finish(net, num_pathways=2)


_R50 = dict(frames=(8,), crop_size=224)
_SF = dict(frames=(8, 32), crop_size=224)


@register_model("c2d_r50", **_R50, description="C2D ResNet-50 (2D convs, temporal max-pool after res2), pytorchvideo hub layout")
def c2d_r50(*, num_classes: int = 400, dropout: float = 0.5) -> VideoNet:
    return build_resnet(conv_a_kernels=_C2D_CONV_A, stem_kernel=(1, 7, 7), stage1_pool=True, num_classes=num_classes, dropout=dropout)


@register_model("i3d_r50", **_R50, description="I3D ResNet-50 (inflated 3x1x1 convs, 5x7x7 stem), pytorchvideo hub layout")
def i3d_r50(*, num_classes: int = 400, dropout: float = 0.5) -> VideoNet:
    return build_resnet(conv_a_kernels=_I3D_CONV_A, stem_kernel=(5, 7, 7), stage1_pool=True, num_classes=num_classes, dropout=dropout)


@register_model("slow_r50", **_R50, description="Slow-only ResNet-50 8x8 (temporal convs in res4, res5), pytorchvideo hub layout")
def slow_r50(*, num_classes: int = 400, dropout: float = 0.5) -> VideoNet:
    return build_resnet(conv_a_kernels=_SLOW_CONV_A, stem_kernel=(1, 7, 7), stage1_pool=False, num_classes=num_classes, dropout=dropout)


@register_model("slowfast_r50", **_SF, description="SlowFast ResNet-50 8x8, input [slow 8, fast 32], pytorchvideo hub layout")
def slowfast_r50(*, num_classes: int = 400, dropout: float = 0.5) -> VideoNet:
    return build_slowfast(depth=50, fusion_kernel=7, num_classes=num_classes, dropout=dropout)


@register_model("slowfast_r101", **_SF, description="SlowFast ResNet-101 8x8, input [slow 8, fast 32], pytorchvideo hub layout")
def slowfast_r101(*, num_classes: int = 400, dropout: float = 0.5) -> VideoNet:
    return build_slowfast(depth=101, fusion_kernel=5, num_classes=num_classes, dropout=dropout)


@register_model("i3d_tiny", frames=(8,), crop_size=112, description="tiny I3D (stem 16 ch, one bottleneck per stage) for tests and CPU demos")
def i3d_tiny(*, num_classes: int = 400, dropout: float = 0.5) -> VideoNet:
    return build_resnet(
        conv_a_kernels=_I3D_CONV_A, stem_kernel=(5, 7, 7), stage1_pool=True,
        stem_channels=16, stage_depths=(1, 1, 1, 1), num_classes=num_classes, dropout=dropout,
    )


@register_model("slowfast_tiny", frames=(8, 32), crop_size=112, description="tiny SlowFast (stems 16+2 ch, one bottleneck per stage) for tests and CPU demos")
def slowfast_tiny(*, num_classes: int = 400, dropout: float = 0.5) -> VideoNet:
    return build_slowfast(depth=50, fusion_kernel=7, stem_channels=(16, 2), stage_depths=(1, 1, 1, 1), num_classes=num_classes, dropout=dropout)


# i3d_tiny with 1x1 spatial convs in res4 and res5 and no spatial stride in res5: its spatial
# receptive field stops at 27 px after res3, and with res5 at stride 16 (< 27) every pixel is
# still seen by some position (a stride of 32 would leave pixels no position sees). Nothing but an
# inserted block relates positions farther apart: the relations task of videoattn.synth keeps its
# two objects 28 px apart (tests/test_synth_relations.py checks both on the network).
_PROBE_CONV_B = ((1, 3, 3), (1, 3, 3), (1, 1, 1), (1, 1, 1))
_PROBE_STRIDES = (1, 2, 2, 1)


@register_model("i3d_probe", frames=(8,), crop_size=64,
                description="tiny I3D with a 27 px spatial receptive field (1x1 spatial convs in res4, res5): the relations task's probe")
def i3d_probe(*, num_classes: int = 400, dropout: float = 0.5) -> VideoNet:
    return build_resnet(
        conv_a_kernels=_I3D_CONV_A, stem_kernel=(5, 7, 7), stage1_pool=True, stem_channels=16, stage_depths=(1, 1, 1, 1),
        conv_b_kernels=_PROBE_CONV_B, spatial_strides=_PROBE_STRIDES, num_classes=num_classes, dropout=dropout,
    )
