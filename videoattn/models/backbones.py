"""Backbones: the registry of named models, C2D, I3D, Slow and SlowFast ResNets with exactly
the layers (and the state-dict keys) of pytorchvideo's hub models of the same name (built by
videoattn.models.resnet and .slowfast, with torch only), plus tiny variants for tests and CPU demos.

Two changes from the hub models, neither with parameters: the head pools adaptively (global
average), so any input size works and at the recipe's input it computes what the fixed-size pool
computes; and SlowFast does not overwrite the caller's [slow, fast] list.
"""
from __future__ import annotations

from videoattn.models.registry import register_model
from videoattn.models.resnet import VideoNet, build_resnet, res_stage_paths
from videoattn.models.slowfast import build_slowfast

__all__ = ["VideoNet", "res_stage_paths", "build_resnet", "build_slowfast"]

# Temporal kernel of conv_a per stage (res2..res5), as pytorchvideo's hub models.
_C2D_CONV_A = ((1, 1, 1),) * 4
_I3D_CONV_A = ((3, 1, 1), [(3, 1, 1), (1, 1, 1)], [(3, 1, 1), (1, 1, 1)], [(1, 1, 1), (3, 1, 1)])
_SLOW_CONV_A = ((1, 1, 1), (1, 1, 1), (3, 1, 1), (3, 1, 1))

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
