"""PreciseBN: recompute BatchNorm statistics on training batches before each validation during
fit (PySlowFast's BN.USE_PRECISE_STATS; the estimation is :func:`videoattn.precise_bn.update_precise_bn`).
The batches go through what Lightning applies to training batches: moved to the module's
device, then the data module's ``on_after_batch_transfer`` (KineticsDataModule normalises its
uint8 clips there), or the module's when there is no data module.
"""
from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import move_data_to_device, rank_zero_info

from videoattn.precise_bn import update_precise_bn

__all__ = ["PreciseBN"]


class PreciseBN(Callback):
    """Population BatchNorm statistics from ``num_batches`` training batches (a fresh pass of the
    data module's train loader) before every validation of a fit, averaged over DDP processes.
    BatchNorms whose statistics are frozen (:class:`~videoattn.callbacks.FreezeBackbone`) keep them."""

    def __init__(self, num_batches: int = 200) -> None:
        if num_batches < 1:
            raise ValueError(f"PreciseBN: num_batches must be >= 1, got {num_batches}")
        self.num_batches = num_batches

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn != "fit" or trainer.sanity_checking:
            return
        dm = trainer.datamodule
        loader = dm.train_dataloader() if dm is not None else trainer.train_dataloader
        hooks = dm if dm is not None else pl_module

        def to_input(batch: Any) -> Any:
            return hooks.on_after_batch_transfer(move_data_to_device(batch, pl_module.device), 0)["video"]

        with torch.inference_mode(False), torch.no_grad(), trainer.precision_plugin.train_step_context():
            used = update_precise_bn(pl_module, loader, self.num_batches, to_input=to_input)
        rank_zero_info(f"precise BN: statistics recomputed on {used} training batches")
