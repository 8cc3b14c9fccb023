"""The LightningModule: a backbone, the loss, the steps, the metrics and the optimizer.

Cross-entropy with label smoothing; SGD or AdamW without weight decay on norm and bias and a
per-step warm-up + cosine LR (torch's LambdaLR); clip top-1/top-5 (torchmetrics) in training
and validation; in test, clip top-1 and per-video top-1/top-5 after aggregating the multi-view
scores (torchmetrics sums the counts over DDP processes, and the data module gives every video
to exactly one process). Run behaviour lives in callbacks (videoattn.callbacks): the options
``freeze_backbone``, ``precise_bn_batches`` and ``predictions_csv`` switch theirs on, and the
non-finite-loss stop and the unreadable-video report are always on. Devices and precision
belong to the Trainer.
"""
from __future__ import annotations

import math
import os
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torchmetrics import SumMetric
from torchmetrics.classification import MulticlassAccuracy

from videoattn.aggregate import aggregate_views
from videoattn.checkpoints import CheckpointError, load_checkpoint
from videoattn.callbacks import FreezeBackbone, NonFiniteLossError, PreciseBN, PredictionsCSV, StopOnNonFiniteLoss, VideoReport
from videoattn.models.classifier import find_classifier
from videoattn.optim import WarmupCosineLR, build_optimizer

__all__ = ["NonFiniteLossError", "RUN_OPTIONS", "Video", "VideoClassifier"]

Video = torch.Tensor | list[torch.Tensor]  # [B, C, T, H, W], or [slow, fast] for SlowFast
# options of a run, not of the trained model: a checkpoint never overrides what a run asks for
RUN_OPTIONS = ("predictions_csv", "test_aggregate", "precise_bn_batches", "freeze_backbone")


class VideoClassifier(LightningModule):
    """Video classification around a backbone.

    Args:
        backbone: a model name of ``videoattn.models`` (built with ``num_classes``,
            ``weights`` and ``backbone_kwargs``), or any ``nn.Module`` mapping a video to
            ``[N, num_classes]`` logits (``class_path``/``init_args`` in YAML).
        num_classes: classes of the head; linked from ``data.num_classes`` by the CLI.
        backbone_kwargs: overrides for the named model, e.g. ``{"dropout": 0.5}``.
        weights: checkpoint to start from (pytorchvideo, videoattn or Lightning); a
            different class count re-initialises the head (fine-tuning).
        class_names: class names in index order (linked from ``data.classes``); saved in the
            checkpoint and used in the predictions CSV.
        optimizer: ``"sgd"`` (``momentum``, ``nesterov``) or ``"adamw"``.
        lr: learning rate for a global batch of ``base_batch_size`` videos (if set, the rate
            is scaled linearly to the actual global batch: per-device batch x devices x
            nodes x gradient accumulation), else used as is.
        base_batch_size: the global batch ``lr`` is given for (PySlowFast's recipes: 64); None
            uses ``lr`` as is.
        momentum: SGD's momentum.
        nesterov: SGD with Nesterov momentum.
        weight_decay: on weights only; norm parameters and biases get none unless
            ``decay_norm_and_bias``.
        decay_norm_and_bias: apply ``weight_decay`` to norm parameters and biases too.
        warmup_epochs: linear warm-up length (may be fractional), from
            ``warmup_start_factor * lr``; then half-cosine to ``end_lr_factor * lr`` at the
            last step (PySlowFast ``LR_POLICY: cosine``).
        warmup_start_factor: the learning rate at the start of the warm-up, as a fraction of ``lr``.
        end_lr_factor: the learning rate at the last step, as a fraction of ``lr``.
        label_smoothing: of the cross-entropy.
        test_aggregate: how the views of a test video are combined (see
            :func:`videoattn.aggregate.aggregate_views`).
        freeze_backbone: train only the classifier (:class:`~videoattn.callbacks.FreezeBackbone`).
        precise_bn_batches: if > 0, recompute BatchNorm statistics on that many training
            batches before each validation during fit (:class:`~videoattn.callbacks.PreciseBN`).
        predictions_csv: write one row per test/predict video
            (:class:`~videoattn.callbacks.PredictionsCSV`).
    """

    def __init__(
        self,
        backbone: str | nn.Module = "i3d_r50",
        num_classes: int = 400,
        backbone_kwargs: dict[str, Any] | None = None,
        weights: str | None = None,
        class_names: list[str] | None = None,
        optimizer: Literal["sgd", "adamw"] = "sgd",
        lr: float = 0.1,
        base_batch_size: int | None = None,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 1e-4,
        decay_norm_and_bias: bool = False,
        warmup_epochs: float = 0.0,
        warmup_start_factor: float = 0.1,
        end_lr_factor: float = 0.0,
        label_smoothing: float = 0.0,
        test_aggregate: Literal["mean", "max", "mean_logits"] = "mean",
        freeze_backbone: bool = False,
        precise_bn_batches: int = 0,
        predictions_csv: str | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for num_classes={num_classes}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if optimizer not in ("sgd", "adamw"):
            raise ValueError(f"unknown optimizer {optimizer!r}; valid: sgd, adamw")
        if precise_bn_batches < 0:
            raise ValueError(f"precise_bn_batches must be >= 0, got {precise_bn_batches}")
        # the output file of one run is not a property of the model: not saved with it
        self.save_hyperparameters(ignore=["predictions_csv", "backbone"] if isinstance(backbone, nn.Module) else ["predictions_csv"])
        self.predictions_csv = predictions_csv
        if isinstance(backbone, str):
            from videoattn.models import create_model

            backbone = create_model(backbone, num_classes=num_classes, weights=weights, **(backbone_kwargs or {}))
        elif weights is not None or backbone_kwargs:
            raise ValueError("weights and backbone_kwargs apply to a named backbone; give them to your module instead")
        self.backbone = backbone
        self.classes = list(class_names) if class_names is not None else None
        if freeze_backbone:
            find_classifier(backbone)  # a model without a classifier to keep trainable fails here, not mid-run

        k = min(5, num_classes)
        self.train_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.train_top5 = MulticlassAccuracy(num_classes, top_k=k, average="micro")
        self.val_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_top5 = MulticlassAccuracy(num_classes, top_k=k, average="micro")
        # test lists may hold unlabelled rows (label -1): not counted in the accuracies
        self.test_clip_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro", ignore_index=-1)
        self.test_video_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro", ignore_index=-1)
        self.test_video_top5 = MulticlassAccuracy(num_classes, top_k=k, average="micro", ignore_index=-1)
        self.test_videos = SumMetric()

    # ----------------------------------------------------------------- model
    def forward(self, video: Video) -> torch.Tensor:
        return self.backbone(video)

    def configure_callbacks(self) -> list[Callback]:
        """The run behaviour this module's options ask for, plus the non-finite-loss stop and the
        video report; a callback of the same type already in ``trainer.callbacks`` (configured by
        the user) is kept instead."""
        callbacks: list[Callback] = [StopOnNonFiniteLoss(), VideoReport()]
        if self.hparams.freeze_backbone:
            callbacks.append(FreezeBackbone())
        if self.hparams.precise_bn_batches:
            callbacks.append(PreciseBN(self.hparams.precise_bn_batches))
        if self.predictions_csv:
            callbacks.append(PredictionsCSV(self.predictions_csv))
        present = {type(c) for c in self.trainer.callbacks}
        return [c for c in callbacks if type(c) not in present]

    # ------------------------------------------------------------- optimizer
    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        lr = hp.lr * self._batch_scale()
        optimizer = build_optimizer(
            self,
            hp.optimizer,
            lr=lr,
            weight_decay=hp.weight_decay,
            momentum=hp.momentum,
            nesterov=hp.nesterov,
            decay_norm_and_bias=hp.decay_norm_and_bias,
        )
        total = self.trainer.estimated_stepping_batches  # loads the train dataloader when max_epochs is set
        warmup = 0
        if hp.warmup_epochs:
            steps_per_epoch = self._steps_per_epoch()
            warmup = min(int(total), round(hp.warmup_epochs * steps_per_epoch))
        if not math.isfinite(total):
            raise ValueError("the schedule needs a finite run: set trainer.max_epochs or trainer.max_steps")
        total = int(total)
        scheduler = WarmupCosineLR(
            optimizer,
            total_steps=max(1, total),
            warmup_steps=warmup,
            warmup_start_factor=hp.warmup_start_factor,
            end_factor=hp.end_lr_factor,
        )
        rank_zero_info(f"optimizer {hp.optimizer}: lr {lr:g}, {total} steps, {warmup} warm-up steps")
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "train/lr"}}

    def _steps_per_epoch(self) -> float:
        """Optimizer steps per epoch, for warm-up given in epochs."""
        trainer = self.trainer
        if trainer.train_dataloader is not None:
            batches = trainer.num_training_batches
        elif trainer.datamodule is not None:  # max_steps without max_epochs: Lightning has not loaded it yet
            batches = len(trainer.datamodule.train_dataloader())
        else:
            batches = float("inf")
        if not math.isfinite(batches):
            raise ValueError("model.warmup_epochs needs a train dataloader with a length; set warmup_epochs 0")
        return math.ceil(batches / trainer.accumulate_grad_batches)

    def _batch_scale(self) -> float:
        base = self.hparams.base_batch_size
        if base is None:
            return 1.0
        per_device = getattr(self.trainer.datamodule, "batch_size", None)
        if per_device is None:
            raise ValueError("base_batch_size is set but the data module has no batch_size to scale the lr with")
        global_batch = per_device * self.trainer.world_size * self.trainer.accumulate_grad_batches
        return global_batch / base

    # -------------------------------------------------------------- training
    # Each self.log() call costs Lightning ~1-3 ms of Python on a CPU, so a step logs only its
    # loss; accuracies are logged once per epoch.
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        video, labels = _unpack(batch)
        logits = self._logits(video)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        self.train_top1.update(logits.detach(), labels)
        self.train_top5.update(logits.detach(), labels)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(labels))
        return loss

    def on_train_epoch_end(self) -> None:
        # compute() gathers the counts over DDP processes
        self.log("train/top1", self.train_top1.compute(), prog_bar=True)
        self.log("train/top5", self.train_top5.compute())
        self.train_top1.reset()
        self.train_top5.reset()

    # ------------------------------------------------------------ validation
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if batch.get("video") is None:  # every video of the batch was unreadable (VideoReport counts them)
            return
        video, labels = _unpack(batch)
        logits = self._logits(video)
        self.val_top1.update(logits, labels)
        self.val_top5.update(logits, labels)
        n = len(labels)
        self.log("val/loss", F.cross_entropy(logits, labels), sync_dist=True, batch_size=n)
        self.log("val/top1", self.val_top1, prog_bar=True, batch_size=n)
        self.log("val/top5", self.val_top5, batch_size=n)

    # ------------------------------------------------------ test and predict
    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any] | None:
        """Per-video outputs ``scores`` [B, K] (the views aggregated), ``label``, ``video_index``,
        ``path``, for the callbacks (predictions CSV, report); None if the whole batch failed."""
        if batch.get("video") is None:
            return None
        video, labels = _unpack(batch)
        logits = self.multiview_logits(video)  # [B, V, K]
        scores = aggregate_views(logits, self.hparams.test_aggregate)  # [B, K]
        b, views = logits.shape[:2]
        self.test_clip_top1.update(logits.flatten(0, 1), labels.repeat_interleave(views))
        self.test_video_top1.update(scores, labels)
        self.test_video_top5.update(scores, labels)
        self.test_videos.update(torch.tensor(float(b), device=scores.device))
        self.log("test/clip_top1", self.test_clip_top1, batch_size=b)
        self.log("test/video_top1", self.test_video_top1, batch_size=b)
        self.log("test/video_top5", self.test_video_top5, batch_size=b)
        self.log("test/videos", self.test_videos, batch_size=b)
        return _video_outputs(batch, scores)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any] | None:
        """Per-video outputs as :meth:`test_step`; labels are -1 where unknown."""
        if batch.get("video") is None:
            return None
        scores = aggregate_views(self.multiview_logits(batch["video"]), self.hparams.test_aggregate)
        return _video_outputs(batch, scores)

    def multiview_logits(self, video: Video) -> torch.Tensor:
        """Logits ``[B, V, K]`` of the V views of each video of a test batch (one forward pass)."""
        pathways = list(video) if isinstance(video, (list, tuple)) else [video]
        if pathways[0].ndim == 5:  # one view per video: [B, C, T, H, W]
            pathways = [p.unsqueeze(1) for p in pathways]
        if pathways[0].ndim != 6:
            raise ValueError(f"test video must be [B, V, C, T, H, W] (or [B, C, T, H, W]), got {tuple(pathways[0].shape)}")
        b, v = pathways[0].shape[:2]
        flat = [p.flatten(0, 1) for p in pathways]  # [B, V, C, T, H, W] -> [B*V, C, T, H, W]
        logits = self._logits(flat if isinstance(video, (list, tuple)) else flat[0])
        return logits.reshape(b, v, -1)  # [B*V, K] -> [B, V, K]

    # --------------------------------------------------------------- helpers
    def _logits(self, video: Video) -> torch.Tensor:
        logits = self(video)
        if logits.ndim != 2 or logits.shape[1] != self.hparams.num_classes:
            raise ValueError(
                f"the backbone returned logits of shape {tuple(logits.shape)}, expected [N, num_classes={self.hparams.num_classes}]"
            )
        return logits

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> VideoClassifier:  # type: ignore[override]
        """Lightning's ``load_from_checkpoint``; a file that is not a checkpoint, is damaged, or would
        run code when unpickled is refused with one :class:`~videoattn.checkpoints.CheckpointError`
        line naming it and saying which."""
        try:
            return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
        except Exception:
            if isinstance(checkpoint_path, (str, os.PathLike)) and os.path.isfile(checkpoint_path):
                load_checkpoint(checkpoint_path, what="load_from_checkpoint")  # raises CheckpointError if the file is at fault
            raise

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["classes"] = self.classes  # also in hyper_parameters; kept at the top for tools


def _video_outputs(batch: dict[str, Any], scores: torch.Tensor) -> dict[str, Any]:
    labels = batch.get("label")
    if labels is None or len(labels) != len(scores):
        labels = torch.full((len(scores),), -1, dtype=torch.long)
    return {"scores": scores.detach(), "label": labels, "video_index": batch["video_index"], "path": list(batch.get("path") or [])}


def _unpack(batch: Any) -> tuple[Video, torch.Tensor]:
    if not isinstance(batch, dict) or "video" not in batch or "label" not in batch:
        got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"a batch must be a dict with 'video' and 'label' (videoattn.data format), got {got}")
    return batch["video"], batch["label"]
