"""Single-pathway 3D ResNets (C2D, I3D, Slow) written with torch only, in pytorchvideo's
module tree: the stem, the bottleneck, the residual block, the stage, the head, the network
container ``VideoNet``, pytorchvideo's initialisation, and ``build_resnet``.

Deep Residual Learning for Image Recognition (He et al., 2016, https://arxiv.org/abs/1512.03385);
the video variants of Non-local Neural Networks (Wang et al., 2018, https://arxiv.org/abs/1711.07971)
and SlowFast Networks (Feichtenhofer et al., 2019, https://arxiv.org/abs/1812.03982).

Every module, parameter and buffer has the name it has in pytorchvideo 0.1.5 (``blocks.{i}``,
``res_blocks.{j}``, ``branch1_conv``, ``branch2.conv_a``, head ``proj``, ...), so pytorchvideo hub
checkpoints and every checkpoint videoattn wrote load unchanged; modules are built and initialised
in pytorchvideo's order, so the same ``torch.manual_seed`` gives the same weights, bit for bit.
Architectures differ only by data: the kernel tables that ``build_resnet`` takes.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn

__all__ = [
    "Kernel", "STAGE_DEPTHS", "BasicStem", "Bottleneck", "ResBlock", "ResStage", "BasicHead", "VideoNet",
    "init_weights", "res_stage_paths", "build_resnet",
]

Kernel = tuple[int, int, int]  # (T, H, W)
# Residual blocks per stage res2..res5 for a model depth.
STAGE_DEPTHS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def _same_padding(kernel: Sequence[int]) -> tuple[int, ...]:
    return tuple(k // 2 for k in kernel)


class BasicStem(nn.Module):
    """conv (stride 1x2x2, same padding) -> BatchNorm -> ReLU -> max-pool 1x3x3 (stride 1x2x2).

    Args:
        in_channels: input channels (3 for RGB).
        out_channels: channels of the stem's output.
        kernel_size: the conv's kernel.
        conv_layer: ``conv_layer(in_channels, out_channels, kernel_size=, stride=, padding=, bias=)``;
            nn.Conv3d, or a stand-in (LR-Net's 1x1 conv and local relation layer).
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: Kernel,
                 conv_layer: Callable[..., nn.Module] = nn.Conv3d) -> None:
        super().__init__()
        self.conv = conv_layer(in_channels, out_channels, kernel_size=tuple(kernel_size), stride=(1, 2, 2),
                               padding=_same_padding(kernel_size), bias=False)
        self.norm = nn.BatchNorm3d(out_channels)
        self.activation = nn.ReLU()
        self.pool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.activation(self.norm(self.conv(x))))


class Bottleneck(nn.Module):
    """The residual branch: conv_a (Tx1x1, to ``dim_inner``) -> BN -> ReLU -> conv_b (spatial,
    strided) -> BN -> ReLU -> conv_c (1x1x1, to ``dim_out``) -> BN. Its last norm starts at zero
    (``block_final_bn``, read by ``init_weights``), so that every residual block starts as the
    identity of its shortcut.

    Args:
        dim_in: input channels.
        dim_inner: channels of conv_a and conv_b.
        dim_out: output channels.
        conv_a_kernel: kernel of conv_a (temporal in I3D / Slow, 1x1x1 in C2D).
        conv_b_kernel: kernel of conv_b.
        spatial_stride: stride of conv_b in H and W.
        conv_b_layer: builds conv_b, called as nn.Conv3d (``kernel_size``, ``stride``, ``padding``,
            ``bias``); LR-Nets put a local relation layer here.
    """

    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, *, conv_a_kernel: Kernel, conv_b_kernel: Kernel,
                 spatial_stride: int = 1, conv_b_layer: Callable[..., nn.Module] = nn.Conv3d) -> None:
        super().__init__()
        self.conv_a = nn.Conv3d(dim_in, dim_inner, kernel_size=tuple(conv_a_kernel), padding=_same_padding(conv_a_kernel),
                                bias=False)
        self.norm_a = nn.BatchNorm3d(dim_inner)
        self.act_a = nn.ReLU()
        self.conv_b = conv_b_layer(dim_inner, dim_inner, kernel_size=tuple(conv_b_kernel),
                                   stride=(1, spatial_stride, spatial_stride), padding=_same_padding(conv_b_kernel), bias=False)
        self.norm_b = nn.BatchNorm3d(dim_inner)
        self.act_b = nn.ReLU()
        self.conv_c = nn.Conv3d(dim_inner, dim_out, kernel_size=1, bias=False)
        self.norm_c = nn.BatchNorm3d(dim_out)
        self.norm_c.block_final_bn = True  # pytorchvideo's flag: init_weights sets this norm's weight to 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act_a(self.norm_a(self.conv_a(x)))
        x = self.act_b(self.norm_b(self.conv_b(x)))
        return self.norm_c(self.conv_c(x))


class ResBlock(nn.Module):
    """``ReLU(shortcut(x) + branch2(x))``; the shortcut is the identity, or a strided 1x1x1 conv and
    a BatchNorm (``branch1_conv``, ``branch1_norm``) where the channels or the size change.

    Args:
        dim_in, dim_inner, dim_out, conv_a_kernel, conv_b_kernel, spatial_stride, conv_b_layer:
            those of the ``Bottleneck`` in ``branch2``.
    """

    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, *, conv_a_kernel: Kernel, conv_b_kernel: Kernel,
                 spatial_stride: int = 1, conv_b_layer: Callable[..., nn.Module] = nn.Conv3d) -> None:
        super().__init__()
        projection = dim_in != dim_out or spatial_stride != 1  # else the shortcut is the identity (both None)
        stride = (1, spatial_stride, spatial_stride)
        self.branch1_conv = nn.Conv3d(dim_in, dim_out, kernel_size=1, stride=stride, bias=False) if projection else None
        self.branch1_norm = nn.BatchNorm3d(dim_out) if projection else None
        self.branch2 = Bottleneck(dim_in, dim_inner, dim_out, conv_a_kernel=conv_a_kernel, conv_b_kernel=conv_b_kernel,
                                  spatial_stride=spatial_stride, conv_b_layer=conv_b_layer)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.branch1_conv is None else self.branch1_norm(self.branch1_conv(x))
        return self.activation(shortcut + self.branch2(x))


class ResStage(nn.Module):
    """A residual stage: ``len(conv_a_kernels)`` residual blocks in ``res_blocks``; the first one
    changes the channels to ``dim_out`` and strides by ``spatial_stride``.

    Args:
        dim_in: input channels.
        dim_inner: bottleneck width.
        dim_out: output channels.
        conv_a_kernels: conv_a's kernel in each block.
        conv_b_kernels: conv_b's kernel in each block (as many as ``conv_a_kernels``).
        spatial_stride: the first block's stride in H and W.
        conv_b_layer: see ``Bottleneck``.
    """

    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, *, conv_a_kernels: Sequence[Kernel],
                 conv_b_kernels: Sequence[Kernel], spatial_stride: int = 1,
                 conv_b_layer: Callable[..., nn.Module] = nn.Conv3d) -> None:
        super().__init__()
        if len(conv_a_kernels) != len(conv_b_kernels):
            raise ValueError(f"ResStage: {len(conv_a_kernels)} conv_a kernels but {len(conv_b_kernels)} conv_b kernels")
        self.res_blocks = nn.ModuleList(
            ResBlock(dim_in if i == 0 else dim_out, dim_inner, dim_out, conv_a_kernel=ka, conv_b_kernel=kb,
                     spatial_stride=spatial_stride if i == 0 else 1, conv_b_layer=conv_b_layer)
            for i, (ka, kb) in enumerate(zip(conv_a_kernels, conv_b_kernels))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.res_blocks:
            x = block(x)
        return x


class BasicHead(nn.Module):
    """Global average pool -> dropout -> linear ``proj`` -> logits ``(N, num_classes)``.

    Args:
        in_features: channels of the features.
        num_classes: outputs.
        dropout: dropout rate before ``proj``; 0 leaves no dropout module (``dropout`` is None).
        pool: pool here (single pathway); False where the features come pooled (SlowFast's
            ``PoolConcat``).
    """

    def __init__(self, in_features: int, num_classes: int, *, dropout: float = 0.5, pool: bool = True) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool3d(1) if pool else None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.proj = nn.Linear(in_features, num_classes)
        self.output_pool = nn.AdaptiveAvgPool3d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = self.pool(x)
        if self.dropout is not None:
            x = self.dropout(x)
        # (N, C, T, H, W) -> (N, T, H, W, C) -> proj -> (N, K, T, H, W), as pytorchvideo (any pool output size)
        x = self.proj(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
        return self.output_pool(x).flatten(1)  # (N, K, 1, 1, 1) -> (N, K)


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
            x = list(x)
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


@torch.no_grad()
def init_weights(model: nn.Module, *, fc_std: float = 0.01) -> nn.Module:
    """pytorchvideo's ResNet initialisation, module by module in ``model.modules()`` order:
    convs ``kaiming_normal_`` (fan_out, ReLU gain; Caffe2's MSRAFill) with zero bias; norms weight 1,
    bias 0, except a norm flagged ``block_final_bn`` (a bottleneck's last) whose weight is 0;
    linear layers normal(0, ``fc_std``) with zero bias. Returns ``model``."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.modules.batchnorm._NormBase):
            if m.weight is not None:
                m.weight.fill_(0.0 if getattr(m, "block_final_bn", False) else 1.0)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.Linear):
            m.weight.normal_(0.0, fc_std)
            if m.bias is not None:
                m.bias.zero_()
    return model


def res_stage_paths(model: nn.Module) -> list[str]:
    """Paths of the residual stages res2..res5 (the slow pathway's, for SlowFast): the modules with
    a ``res_blocks`` list, so videoattn's backbones and pytorchvideo-built models alike."""
    paths = [name for name, m in model.named_modules() if isinstance(getattr(m, "res_blocks", None), nn.ModuleList)]
    slow = [p for p in paths if ".multipathway_blocks." in p]
    return [p for p in slow if p.endswith(".multipathway_blocks.0")] if slow else paths


def stage_depths_for(depth: int) -> tuple[int, int, int, int]:
    """Residual blocks per stage for a model ``depth`` (50, 101, 152)."""
    if depth not in STAGE_DEPTHS:
        raise ValueError(f"depth must be one of {', '.join(map(str, STAGE_DEPTHS))}, got {depth!r}")
    return STAGE_DEPTHS[depth]


def per_block(kernels: Kernel | Sequence[Kernel], depth: int) -> list[Kernel]:
    """One kernel per block of a stage: a kernel for every block, or a list repeated in turn
    (I3D's res3 ``[(3, 1, 1), (1, 1, 1)]`` inflates every other block)."""
    kernels = [kernels] if isinstance(kernels[0], int) else list(kernels)
    return [tuple(kernels[i % len(kernels)]) for i in range(depth)]


def check_stage_depths(stage_depths: Sequence[int] | None, depths: Sequence[int]) -> None:
    """Raise ValueError unless ``stage_depths`` is None or 4 ints from 1 to ``depths``' own."""
    if stage_depths is None:
        return
    if len(stage_depths) != len(depths) or any(
        isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= full for d, full in zip(stage_depths, depths)
    ):
        raise ValueError(f"stage_depths must be {len(depths)} ints, each from 1 to {tuple(depths)} (res2..res5), "
                         f"got {tuple(stage_depths)!r}")


def keep_first_blocks(model: nn.Module, stage_depths: Sequence[int]) -> None:
    """Keep the first ``stage_depths[i]`` residual blocks of stage i, in every pathway."""
    stages = [m for m in model.modules() if isinstance(m, ResStage)]
    per_pathway = len(stages) // len(stage_depths)
    for i, stage in enumerate(stages):
        stage.res_blocks = stage.res_blocks[: stage_depths[i // per_pathway]]


def build_resnet(
    *,
    conv_a_kernels: Sequence,
    stem_kernel: Kernel,
    stage1_pool: bool,
    depth: int = 50,
    stem_channels: int = 64,
    stage_depths: Sequence[int] | None = None,
    conv_b_kernels: Sequence[Kernel] = ((1, 3, 3),) * 4,
    spatial_strides: Sequence[int] = (1, 2, 2, 2),
    num_classes: int = 400,
    dropout: float = 0.5,
) -> VideoNet:
    """A single-pathway 3D ResNet: stem, res2, [temporal max-pool 2x1x1], res3, res4, res5, head
    (pytorchvideo's ``create_resnet`` with the hub models' settings).

    Args:
        conv_a_kernels: conv_a's kernel per stage res2..res5: one kernel, or a list repeated over
            the stage's blocks.
        stem_kernel: the stem conv's kernel.
        stage1_pool: halve the frames after res2 (temporal max-pool), as C2D and I3D.
        depth: 50, 101 or 152.
        stem_channels: the stem's output channels; stage i is ``stem_channels * 2**i`` wide
            and has 4 times that many outputs.
        stage_depths: keep only this many blocks per stage (tiny models); None keeps ``depth``'s.
            The dropped blocks are built and initialised first, so a seed gives the weights it
            gave with pytorchvideo's builder.
        conv_b_kernels: kernel of the middle conv of the bottlenecks, per stage res2..res5.
        spatial_strides: spatial stride of each stage res2..res5.
        num_classes: outputs of the head.
        dropout: dropout rate before the head's linear layer.
    """
    depths = stage_depths_for(depth)
    check_stage_depths(stage_depths, depths)
    blocks: list[nn.Module] = [BasicStem(3, stem_channels, kernel_size=stem_kernel)]
    dim_in = stem_channels
    for i, n in enumerate(depths):
        width = stem_channels * 2**i
        blocks.append(ResStage(dim_in, width, 4 * width, conv_a_kernels=per_block(conv_a_kernels[i], n),
                               conv_b_kernels=per_block(conv_b_kernels[i], n), spatial_stride=spatial_strides[i]))
        dim_in = 4 * width
        if i == 0 and stage1_pool:
            blocks.append(nn.MaxPool3d(kernel_size=(2, 1, 1), stride=(2, 1, 1), padding=(0, 0, 0)))
    blocks.append(BasicHead(dim_in, num_classes, dropout=dropout))
    model = init_weights(VideoNet(nn.ModuleList(blocks)))
    if stage_depths is not None:
        keep_first_blocks(model, stage_depths)
    return model
