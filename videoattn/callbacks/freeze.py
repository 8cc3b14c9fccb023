"""FreezeBackbone: train only the classification head (linear probing / the first phase of a
fine-tuning), the frozen BatchNorms kept in eval mode so that their statistics stay as loaded.
"""
from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from videoattn.models.classifier import find_classifier

__all__ = ["FreezeBackbone"]


def _backbone(pl_module: LightningModule) -> nn.Module:
    return getattr(pl_module, "backbone", pl_module)


class FreezeBackbone(Callback):
    """Freeze every parameter but the classifier's (``find_classifier``) before the optimizer is
    built, and keep the frozen BatchNorms in eval mode during training epochs."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        backbone = _backbone(pl_module)
        path, head = find_classifier(backbone)
        backbone.requires_grad_(False)
        head.requires_grad_(True)
        rank_zero_info(f"FreezeBackbone: training only the classifier {path!r}")

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning puts the module in train mode for each epoch (and restores the modes captured
        # before each validation): frozen BatchNorms go back to eval here
        for module in _backbone(pl_module).modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in module.parameters()):
                module.eval()
