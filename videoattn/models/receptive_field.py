"""Receptive fields of a backbone's residual stages, measured on the network itself: the extent
(frames, rows, columns) of the input that can change one output position of each stage.

Measured by back-propagating from the centre position of each stage's output through a copy of
the model made "all-pass": every conv and linear weight positive, BatchNorm the identity, every
max-pool replaced by the average pool of the same window (same field, gradient to every input),
so that no ReLU or pooling hides part of the theoretical field. The input must be large enough
for the field not to reach its borders (checked).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from videoattn.models.backbones import res_stage_paths

__all__ = ["receptive_fields"]


def _all_pass(model: nn.Module) -> nn.Module:
    model = copy.deepcopy(model).eval()
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.MaxPool3d):
            parent, _, child = name.rpartition(".")
            pool = nn.AvgPool3d(module.kernel_size, module.stride, module.padding, ceil_mode=module.ceil_mode)
            model.get_submodule(parent).register_module(child, pool)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv3d, nn.Linear)):
                module.weight.uniform_(0.5, 1.0)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.zero_()
                module.running_var.fill_(1.0)
                module.eps = 0.0
                module.weight.fill_(1.0)
                module.bias.zero_()
    return model


def receptive_fields(model: nn.Module, *, input_size: tuple[int, int, int] = (32, 224, 224)) -> dict[str, tuple[int, int, int]]:
    """``{"res2": (frames, rows, columns), ..., "res5": ...}`` for a single-pathway backbone whose
    residual stages videoattn.models.res_stage_paths finds."""
    net = _all_pass(model)
    paths = res_stage_paths(net)
    if len(paths) != 4:
        raise ValueError(f"expected 4 residual stages (res2..res5), found {len(paths)}: {paths}")
    fields = {}
    for k, path in enumerate(paths):
        captured: list[torch.Tensor] = []
        handle = net.get_submodule(path).register_forward_hook(lambda m, a, out: captured.append(out))
        x = torch.ones(1, 3, *input_size, requires_grad=True)
        try:
            net(x)
        finally:
            handle.remove()
        out = captured[0]  # (1, C, T, H, W)
        t, h, w = (s // 2 for s in out.shape[2:])
        out[0, :, t, h, w].sum().backward()
        hit = x.grad[0].abs().sum(dim=0) > 0  # (T, H, W): inputs that reach the centre output
        extent = []
        for dim in range(3):
            idx = hit.any(dim=tuple(d for d in range(3) if d != dim)).nonzero().flatten()
            if idx.numel() and (idx[0] == 0 or idx[-1] == hit.shape[dim] - 1):
                raise ValueError(f"res{k + 2}: the receptive field reaches the border of the {tuple(input_size)} input; use a larger input_size")
            extent.append(int(idx[-1] - idx[0] + 1) if idx.numel() else 0)
        fields[f"res{k + 2}"] = tuple(extent)
    return fields
