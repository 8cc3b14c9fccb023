"""FreezeBackbone: train only the classification head (linear probing / the first phase of a
fine-tuning), the frozen BatchNorms' statistics kept as loaded: marked as not tracking running
statistics (``track_running_stats=False``, as Lightning's ``BaseFinetuning.freeze`` does), so that
nothing run in training mode updates them (PreciseBN included), and kept in eval mode, so that
they normalise with those statistics.
"""
from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from videoattn.models.classifier import find_classifier

__all__ = ["FreezeBackbone"]


def _backbone(pl_module: LightningModule) -> nn.Module:
    return getattr(pl_module, "backbone", pl_module)


def _frozen_batchnorms(backbone: nn.Module) -> list[nn.Module]:
    return [m for m in backbone.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters())]


class FreezeBackbone(Callback):
    """Freeze every parameter but the classifier's (``find_classifier``) before the optimizer is
    built; the frozen BatchNorms stop tracking running statistics (their buffers keep the loaded
    ones, which :func:`~videoattn.precise_bn.update_precise_bn` leaves alone) and stay in eval mode
    during training epochs."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        backbone = _backbone(pl_module)
        path, head = find_classifier(backbone)
        backbone.requires_grad_(False)
        head.requires_grad_(True)
        for module in _frozen_batchnorms(backbone):
            module.track_running_stats = False
        rank_zero_info(f"FreezeBackbone: training only the classifier {path!r}")

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning puts the module in train mode for each epoch (and restores the modes captured
        # before each validation): frozen BatchNorms go back to eval here, to normalise with their statistics
        for module in _frozen_batchnorms(_backbone(pl_module)):
            module.eval()
