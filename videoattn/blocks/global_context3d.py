"""Global Context block in space-time (3D).
Paper: Cao, Xu, Lin, Wei, Hu, "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond",
ICCVW 2019. https://arxiv.org/abs/1904.11492
Parameter names follow GCNet's ContextBlock (mmcv `cnn/bricks/context_block.py`):
conv_mask, channel_add_conv, channel_mul_conv.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from videoattn.blocks._checks import bottleneck_channels, check_choice, check_input, check_positive

POOLINGS = ("att", "avg")
FUSIONS = ("add", "mul")


class ContextLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a (N, C, 1, 1, 1) context, weight of shape (C,).

    Equal to GCNet's ``nn.LayerNorm([C, 1, 1])`` (2D) or ``nn.LayerNorm([C, 1, 1, 1])`` (3D port);
    a 1-d weight keeps ``model.to(memory_format=torch.channels_last_3d)`` working (it rejects 4-d
    parameters). State dicts with GCNet's shapes, ``[C, 1, 1]`` or ``[C, 1, 1, 1]``, load as they are.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, C, 1, 1, 1) -> (N, C) -> (N, C, 1, 1, 1)
        return super().forward(x.flatten(1)).view_as(x)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        for name in ("weight", "bias"):
            value = state_dict.get(prefix + name)
            # GCNet's [C, 1, 1] / [C, 1, 1, 1] -> [C]; anything else is left for the usual size check
            if value is not None and value.dim() > 1 and value.shape[0] == self.normalized_shape[0] and value[0].numel() == 1:
                state_dict[prefix + name] = value.reshape(-1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _transform(in_channels: int, planes: int) -> nn.Sequential:
    """Bottleneck transform C -> planes -> C with LayerNorm and ReLU; last conv zero-initialised."""
    seq = nn.Sequential(
        nn.Conv3d(in_channels, planes, kernel_size=1),
        ContextLayerNorm(planes),
        nn.ReLU(inplace=True),
        nn.Conv3d(planes, in_channels, kernel_size=1),
    )
    nn.init.zeros_(seq[-1].weight)
    nn.init.zeros_(seq[-1].bias)
    return seq


class GlobalContext3d(nn.Module):
    """Global context block: ``out = x * sigmoid(mul(ctx)) + add(ctx)``, ctx pooled over T*H*W.

    Args:
        in_channels: channels C of the input.
        ratio: bottleneck width of the transforms is ``max(1, int(C * ratio))`` (paper: 1/16, 1/4).
            A width of 1 makes the LayerNorm output constant (no gradient reaches conv_mask or the
            first conv): keep ``C * ratio >= 2``.
        pooling: context modelling, ``"att"`` (conv_mask C->1, softmax over all T*H*W positions,
            weighted sum) or ``"avg"`` (global average pooling).
        fusions: any non-empty subset of ``("add", "mul")``. The last conv of each transform is
            zero-initialised, so ``"add"`` alone is the identity at initialisation; ``"mul"`` starts
            at ``x * sigmoid(0) = x / 2``, as in the reference.

    Where to insert it. GCNet's default place is inside each bottleneck, after the last norm of the
    residual branch (``insert_blocks(..., position="inside")``): right for a pretrained backbone.
    In a network trained from scratch whose branches end in a zero-initialised norm (pytorchvideo's
    and videoattn's ResNets; torchvision's with ``zero_init_residual=True``), use GCNet's "after
    add" place instead, after the residual block (``insert_blocks(model, "gc",
    "blocks.3.res_blocks.*", position="after")``; the ``i3d_tiny_gc`` and ``i3d_probe_gc`` presets
    do). After the zero-initialised norm, the branch it pools starts at zero, so the add term starts
    as the same vector for every clip, a per-channel bias added before the residual ReLU; and its
    LayerNorm keeps the hidden units at unit scale whatever the input's, so one Adam step can move
    it by lr times the sum of those units where a bias moves by lr. Measured with AdamW (lr 5e-3,
    the actions recipe, 3 seeds): by step 200 the add term at res5 was 26-28x the rms of the branch
    it is added to and the same for every clip to within 1%, 94-97% of res5's outputs were zero
    after the residual ReLU (99% later; 85-90% without GC), and training stayed at chance
    (docs/gc_collapse.md). After the addition, the block pools a signal that is there from the first
    step, and in these backbones what follows it is a BatchNorm (the next stage's projection
    shortcut and branch) or the classifier's average pool. The block is the same in every place and
    loads GCNet's weights either way.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        ratio: float = 1 / 16,
        pooling: str = "att",
        fusions: Sequence[str] = ("add",),
    ) -> None:
        super().__init__()
        check_positive("in_channels", in_channels, "GlobalContext3d")
        self.in_channels = in_channels
        self.planes = bottleneck_channels(in_channels, ratio, "GlobalContext3d")
        self.pooling = check_choice("pooling", pooling, POOLINGS, "GlobalContext3d")
        fusions = (fusions,) if isinstance(fusions, str) else tuple(fusions)
        if not fusions:
            raise ValueError("GlobalContext3d: fusions must name at least one of 'add', 'mul'")
        for f in fusions:
            check_choice("fusion", f, FUSIONS, "GlobalContext3d")
        self.fusions = fusions

        if pooling == "att":
            self.conv_mask = nn.Conv3d(in_channels, 1, kernel_size=1)
            nn.init.kaiming_normal_(self.conv_mask.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(self.conv_mask.bias)
        self.channel_add_conv = _transform(in_channels, self.planes) if "add" in fusions else None
        self.channel_mul_conv = _transform(in_channels, self.planes) if "mul" in fusions else None

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The context weights over the positions of ``x``: (N, C, T, H, W) -> (N, T, H, W), summing
        to 1 over T*H*W for each clip (softmax of conv_mask; uniform for ``pooling="avg"``)."""
        check_input(x, self.in_channels, "GlobalContext3d")
        n, _, t, h, w = x.shape
        if self.pooling == "avg":
            return x.new_full((n, t, h, w), 1.0 / (t * h * w))
        # (N, 1, T, H, W) -> (N, THW) softmax -> (N, T, H, W)
        return self.conv_mask(x).flatten(1).softmax(dim=-1).view(n, t, h, w)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) -> (N, C, 1, 1, 1) global context."""
        n, c = x.shape[:2]
        if self.pooling == "avg":
            return x.mean(dim=(2, 3, 4), keepdim=True)
        mask = self.conv_mask(x).flatten(2).softmax(dim=-1)  # (N, 1, THW), softmax over all positions
        # (N, C, THW) x (N, THW, 1) => (N, C, 1)
        ctx = torch.bmm(x.flatten(2), mask.transpose(1, 2))
        return ctx.view(n, c, 1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, "GlobalContext3d")
        ctx = self.context(x)
        out = x
        if self.channel_mul_conv is not None:
            out = out * torch.sigmoid(self.channel_mul_conv(ctx))
        if self.channel_add_conv is not None:
            out = out + self.channel_add_conv(ctx)
        return out

    def extra_repr(self) -> str:
        return f"planes={self.planes}, pooling={self.pooling!r}, fusions={self.fusions!r}"
