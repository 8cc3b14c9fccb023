"""The LightningModule: training logic only around an injected backbone. Loss with label
smoothing, SGD/AdamW without weight decay on norm and bias, per-step warm-up + cosine LR,
clip top-1/top-5 (torchmetrics), multi-view per-video test accuracy gathered over DDP
processes (every video counted once), predictions CSV, precise BN, backbone freezing, and
a hard stop on a non-finite loss. Devices and precision belong to the Trainer.
"""
from __future__ import annotations

import math

import csv
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import move_data_to_device, rank_zero_info
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from videoattn.aggregate import aggregate_views
from videoattn.optim import WarmupCosineLR, build_optimizer
from videoattn.precise_bn import update_precise_bn

__all__ = ["NonFiniteLossError", "Video", "VideoClassifier"]

Video = torch.Tensor | list[torch.Tensor]  # [B, C, T, H, W], or [slow, fast] for SlowFast


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the run stops instead of training on it."""


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
        weight_decay: on weights only; norm parameters and biases get none unless
            ``decay_norm_and_bias``.
        warmup_epochs: linear warm-up length (may be fractional), from
            ``warmup_start_factor * lr``; then half-cosine to ``end_lr_factor * lr`` at the
            last step (PySlowFast ``LR_POLICY: cosine``).
        label_smoothing: of the cross-entropy.
        freeze_backbone: train only the classification head (the backbone's last
            ``nn.Linear``), with the frozen BatchNorms kept in eval mode.
        precise_bn_batches: if > 0, recompute BatchNorm statistics on that many training
            batches before each validation during fit (PySlowFast ``BN.USE_PRECISE_STATS``).
        test_aggregate: how the views of a test video are combined (see
            :func:`videoattn.aggregate.aggregate_views`).
        predictions_csv: write one row per test/predict video: ``video_index, video, label,
            pred`` and the top-5 classes with their scores.
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
        freeze_backbone: bool = False,
        precise_bn_batches: int = 0,
        test_aggregate: Literal["mean", "max", "mean_logits"] = "mean",
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
        self.save_hyperparameters(ignore=["backbone"] if isinstance(backbone, nn.Module) else None)
        if isinstance(backbone, str):
            from videoattn.models import create_model

            backbone = create_model(backbone, num_classes=num_classes, weights=weights, **(backbone_kwargs or {}))
        elif weights is not None or backbone_kwargs:
            raise ValueError("weights and backbone_kwargs apply to a named backbone; give them to your module instead")
        self.backbone = backbone
        self.classes = list(class_names) if class_names is not None else None
        if freeze_backbone:
            self._freeze_all_but_head()

        k = min(5, num_classes)
        self.train_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.train_top5 = MulticlassAccuracy(num_classes, top_k=k, average="micro")
        self.val_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_top5 = MulticlassAccuracy(num_classes, top_k=k, average="micro")
        self.test_clip_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self._records: list[dict[str, Any]] = []  # per-video results of test/predict on this process
        self._skipped: list[dict[str, Any]] = []
        self._warned_paths: set[str] = set()
        self._train_skipped = 0  # replaced (unreadable) training videos in this epoch

    # ----------------------------------------------------------------- model
    def forward(self, video: Video) -> torch.Tensor:
        return self.backbone(video)

    def _freeze_all_but_head(self) -> None:
        linears = [(name, m) for name, m in self.backbone.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("freeze_backbone: the backbone has no nn.Linear head to keep trainable")
        head_name, head = linears[-1]
        self.backbone.requires_grad_(False)
        head.requires_grad_(True)
        rank_zero_info(f"freeze_backbone: training only the head {head_name!r}")

    def train(self, mode: bool = True) -> VideoClassifier:
        super().train(mode)
        if mode and self.hparams.freeze_backbone:  # frozen BatchNorms keep their statistics and eval mode
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def on_train_epoch_start(self) -> None:
        self.train()  # Lightning does not call train() itself; this applies the frozen-BN rule

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
        total = int(self.trainer.estimated_stepping_batches)  # also loads the train dataloader
        epochs = self.trainer.max_epochs
        if epochs and epochs > 0:
            steps_per_epoch = total / epochs
        else:  # max_steps without max_epochs: the epoch length comes from the train dataloader
            self.trainer.fit_loop.setup_data()  # what estimated_stepping_batches does with max_epochs
            steps_per_epoch = self.trainer.num_training_batches / self.trainer.accumulate_grad_batches
        if hp.warmup_epochs and not math.isfinite(steps_per_epoch):
            raise ValueError("model.warmup_epochs needs a train dataloader with a length; set warmup_epochs 0")
        warmup = min(total, round(hp.warmup_epochs * steps_per_epoch)) if hp.warmup_epochs else 0
        scheduler = WarmupCosineLR(
            optimizer,
            total_steps=max(1, total),
            warmup_steps=warmup,
            warmup_start_factor=hp.warmup_start_factor,
            end_factor=hp.end_lr_factor,
        )
        rank_zero_info(f"optimizer {hp.optimizer}: lr {lr:g}, {total} steps, {warmup} warm-up steps")
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _batch_scale(self) -> float:
        base = self.hparams.base_batch_size
        if base is None:
            return 1.0
        dm = self.trainer.datamodule
        per_device = getattr(dm, "batch_size", None)
        if per_device is None and dm is not None:
            per_device = dm.hparams.get("batch_size")
        if per_device is None:
            raise ValueError("base_batch_size is set but the data module has no batch_size to scale the lr with")
        global_batch = per_device * self.trainer.world_size * self.trainer.accumulate_grad_batches
        return global_batch / base

    # -------------------------------------------------------------- training
    # Each self.log() call costs Lightning ~1-3 ms of Python on a CPU, so a step logs only its
    # loss (and the lr when the logger will write it); accuracies and skip counts are logged
    # once per epoch.
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self.global_step % max(1, self.trainer.log_every_n_steps) == 0:
            self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=1)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        video, labels = _unpack(batch)
        self._note_skipped(batch, "train")
        logits = self._logits(video)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        if not _finite_everywhere(loss):  # all processes stop together under DDP, none hangs
            paths = list(batch.get("path", []))[:8]
            raise NonFiniteLossError(
                f"training loss is {loss.item()} (on this process or another) at global step {self.global_step} "
                f"(epoch {self.current_epoch}, batch {batch_idx}); videos in the batch: {paths}. "
                "Stopping instead of training on it: lower the learning rate, lengthen the warm-up, "
                "or check these videos."
            )
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
        self.log("train/skipped", float(self._train_skipped), reduce_fx="sum", sync_dist=True)
        self._train_skipped = 0

    # ------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        n = self.hparams.precise_bn_batches
        if n > 0 and self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            dm = self.trainer.datamodule
            loader = dm.train_dataloader() if dm is not None else self.trainer.train_dataloader
            with torch.inference_mode(False), torch.no_grad(), self.trainer.precision_plugin.train_step_context():
                used = update_precise_bn(self, loader, n, to_input=lambda b: move_data_to_device(b["video"], self.device))
            rank_zero_info(f"precise BN: statistics recomputed on {used} training batches")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._note_skipped(batch, "val")
        if batch.get("video") is None:
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
    def on_test_epoch_start(self) -> None:
        self._records, self._skipped = [], []

    on_predict_epoch_start = on_test_epoch_start

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._note_skipped(batch, "test")
        if batch.get("video") is None:
            return
        video, labels = _unpack(batch)
        logits = self._multiview_logits(video)  # [B, V, K]
        views = logits.shape[1]
        self.test_clip_top1.update(logits.flatten(0, 1), labels.repeat_interleave(views))
        self.log("test/clip_top1", self.test_clip_top1, batch_size=len(labels))
        self._records += self._video_records(batch, logits)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        self._note_skipped(batch, "predict")
        if batch.get("video") is None:
            return []
        records = self._video_records(batch, self._multiview_logits(batch["video"]))
        self._records += records
        return records

    def on_test_epoch_end(self) -> None:
        records, skipped = self._gather()
        if records:
            top1 = sum(r["correct1"] for r in records) / len(records)
            top5 = sum(r["correct5"] for r in records) / len(records)
            self.log("test/video_top1", top1)
            self.log("test/video_top5", top5)
            self.log("test/videos", float(len(records)))
        self._finish(records, skipped, "test")

    def on_predict_epoch_end(self) -> None:
        records, skipped = self._gather()
        self._finish(records, skipped, "predict")

    def _multiview_logits(self, video: Video) -> torch.Tensor:
        """Logits ``[B, V, K]`` of the V views of each video of a test batch."""
        pathways = list(video) if isinstance(video, (list, tuple)) else [video]
        if pathways[0].ndim == 5:  # one view per video: [B, C, T, H, W]
            pathways = [p.unsqueeze(1) for p in pathways]
        if pathways[0].ndim != 6:
            raise ValueError(f"test video must be [B, V, C, T, H, W] (or [B, C, T, H, W]), got {tuple(pathways[0].shape)}")
        b, v = pathways[0].shape[:2]
        flat = [p.flatten(0, 1) for p in pathways]  # [B, V, C, T, H, W] -> [B*V, C, T, H, W]
        logits = self._logits(flat if len(flat) > 1 or isinstance(video, (list, tuple)) else flat[0])
        return logits.reshape(b, v, -1)  # [B*V, K] -> [B, V, K]

    def _video_records(self, batch: dict[str, Any], logits: torch.Tensor) -> list[dict[str, Any]]:
        scores = aggregate_views(logits, self.hparams.test_aggregate)  # [B, K]
        top_scores, top_classes = scores.topk(min(5, scores.shape[-1]), dim=-1)
        labels = batch.get("label")
        indices = batch.get("video_index")
        paths = batch.get("path") or [""] * len(scores)
        records = []
        for i in range(len(scores)):
            label = int(labels[i]) if labels is not None and len(labels) else -1
            classes = top_classes[i].tolist()
            records.append(
                {
                    "video_index": int(indices[i]) if indices is not None else i,
                    "video": str(paths[i]),
                    "label": label,
                    "top_classes": classes,
                    "top_scores": [round(float(s), 6) for s in top_scores[i]],
                    "correct1": classes[0] == label,
                    "correct5": label in classes,
                }
            )
        return records

    def _gather(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Per-video records and skipped videos of all processes, each video once, by index."""
        mine = (self._records, self._skipped)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            everyone: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(everyone, mine)
        else:
            everyone = [mine]
        records = {r["video_index"]: r for recs, _ in everyone for r in recs}
        skipped = {s.get("video_index", s.get("path")): s for _, skips in everyone for s in skips}
        return [records[k] for k in sorted(records)], [skipped[k] for k in sorted(skipped, key=str)]

    def _finish(self, records: list[dict[str, Any]], skipped: list[dict[str, Any]], stage: str) -> None:
        if self.trainer.is_global_zero:
            if self.hparams.predictions_csv:
                self.write_predictions(records, self.hparams.predictions_csv)
            lines = [f"{stage}: {len(records)} videos evaluated, {len(skipped)} skipped as unreadable"]
            lines += [f"  skipped {s.get('path')}: {s.get('reason', '')}" for s in skipped]
            if stage == "test" and records:
                top1 = 100 * sum(r["correct1"] for r in records) / len(records)
                top5 = 100 * sum(r["correct5"] for r in records) / len(records)
                lines.insert(1, f"  per-video top-1 {top1:.2f}%  top-5 {top5:.2f}%  ({self.hparams.test_aggregate} of the views)")
            print("\n".join(lines), flush=True)
        self._records, self._skipped = [], []
        self.last_results = records  # kept for programmatic use (and the tests)
        self.last_skipped = skipped

    def write_predictions(self, records: Sequence[dict[str, Any]], path: str | Path) -> Path:
        """One CSV row per video: ``video_index, video, label, pred, class_1, score_1, ...``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        k = max((len(r["top_classes"]) for r in records), default=0)
        header = ["video_index", "video", "label", "pred"] + [f"{c}_{i + 1}" for i in range(k) for c in ("class", "score")]
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for r in records:
                row = [r["video_index"], r["video"], self._name(r["label"]), self._name(r["top_classes"][0])]
                for c, s in zip(r["top_classes"], r["top_scores"]):
                    row += [self._name(c), f"{s:.6f}"]
                writer.writerow(row)
        return path

    def _name(self, index: int) -> str:
        if index < 0:
            return ""
        return self.classes[index] if self.classes is not None else str(index)

    # --------------------------------------------------------------- helpers
    def _logits(self, video: Video) -> torch.Tensor:
        logits = self(video)
        if logits.ndim != 2 or logits.shape[1] != self.hparams.num_classes:
            raise ValueError(
                f"the backbone returned logits of shape {tuple(logits.shape)}, expected [N, num_classes={self.hparams.num_classes}]"
            )
        return logits

    def _note_skipped(self, batch: dict[str, Any], stage: str) -> None:
        skipped = batch.get("skipped") or []
        if stage == "train":
            self._train_skipped += len(skipped)
            for s in skipped:
                path = str(s.get("path"))
                if path not in self._warned_paths:
                    self._warned_paths.add(path)
                    warnings.warn(f"unreadable training video replaced by another: {path} ({s.get('reason', '')})", stacklevel=2)
        elif stage in ("test", "predict"):
            self._skipped += list(skipped)
        elif skipped:
            self.log(f"{stage}/skipped", float(len(skipped)), on_step=False, on_epoch=True, reduce_fx="sum", sync_dist=True, batch_size=1)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["classes"] = self.classes  # also in hyper_parameters; kept at the top for tools


def _finite_everywhere(loss: torch.Tensor) -> bool:
    finite = torch.isfinite(loss.detach()).to(torch.int32).reshape(1)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item())


def _unpack(batch: Any) -> tuple[Video, torch.Tensor]:
    if not isinstance(batch, dict) or "video" not in batch or "label" not in batch:
        got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"a batch must be a dict with 'video' and 'label' (videoattn.data format), got {got}")
    return batch["video"], batch["label"]
