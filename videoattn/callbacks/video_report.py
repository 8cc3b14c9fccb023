"""VideoReport: what happened to the videos of a run. A video that fails to decode never stops a
run (the dataset replaces it in training and drops it from evaluation batches, each time naming
it in the batch's ``skipped`` list); this callback makes sure none is lost silently: a warning
once per replaced training video and ``train/skipped`` per epoch, ``val/skipped``, and at the end
of test and predict the number of videos evaluated, every skipped video with its reason, the
videos shorter than a clip (whose clips were completed by repeating their last frame, or looping
them), and (test) the per-video top-1 / top-5, or (predict) the top-3 classes of the first
videos, gathered over DDP processes and printed once, after the progress bar.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from videoattn.callbacks.predictions import video_rows
from videoattn.callbacks.rank_files import all_gather_objects

__all__ = ["VideoReport"]


def _skipped(batch: Any, key: str = "skipped") -> list[dict[str, Any]]:
    return list(batch.get(key) or []) if isinstance(batch, Mapping) else []


class VideoReport(Callback):
    """Count, warn about and report unreadable videos; print the evaluation summary.

    After ``test`` / ``predict``, ``videos`` (evaluated, all processes), ``skipped`` (their
    ``path`` and ``reason``, in video order) and ``short`` (videos shorter than a clip: ``path``,
    ``frames``, ``span``) hold the run's figures on every process.
    """

    def __init__(self, show_predictions: int = 20) -> None:
        self.show_predictions = show_predictions
        self._shown: list[dict[str, Any]] = []
        self._warned: set[str] = set()
        self._train_skipped = 0
        self._val_skipped = 0
        self._local_videos = 0
        self._local_skipped: list[dict[str, Any]] = []
        self._local_short: list[dict[str, Any]] = []
        self.videos = 0
        self.skipped: list[dict[str, Any]] = []
        self.short: list[dict[str, Any]] = []
        self._lines: list[str] = []  # the report, printed at teardown

    # ------------------------------------------------------------------- training
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._train_skipped = 0

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        for entry in _skipped(batch):
            self._train_skipped += 1
            path = str(entry.get("path"))
            if path not in self._warned:
                self._warned.add(path)
                warnings.warn(f"unreadable training video replaced by another: {path} ({entry.get('reason', '')})", stacklevel=2)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pl_module.log("train/skipped", float(self._train_skipped), reduce_fx="sum", sync_dist=True)

    # ----------------------------------------------------------------- validation
    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._val_skipped = 0

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._val_skipped += len(_skipped(batch))

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            pl_module.log("val/skipped", float(self._val_skipped), reduce_fx="sum", sync_dist=True)

    # ----------------------------------------------------------- test and predict
    def _start(self) -> None:
        self._local_videos, self._local_skipped, self._local_short, self._shown = 0, [], [], []

    def _batch(self, outputs: Any, batch: Any, stage: str) -> None:
        self._local_skipped += _skipped(batch)
        self._local_short += _skipped(batch, "short")
        if isinstance(outputs, Mapping) and outputs.get("video_index") is not None:
            self._local_videos += len(outputs["video_index"])
            if stage == "predict" and len(self._shown) < self.show_predictions:
                self._shown += video_rows(dict(outputs), top_k=3)[: self.show_predictions - len(self._shown)]

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start()

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start()

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._batch(outputs, batch, "test")

    def on_predict_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._batch(outputs, batch, "predict")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._report(trainer, "test")

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._report(trainer, "predict")

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # printed last: after the progress bar has stopped (Lightning stops it in its own teardown,
        # which comes first), so that the results are not drawn above the bar's last frame
        if self._lines:
            print("\n".join(self._lines), flush=True)
            self._lines = []

    def _report(self, trainer: Trainer, stage: str) -> None:
        everyone = all_gather_objects((self._local_videos, self._local_skipped, self._shown, self._local_short))
        self.videos = sum(videos for videos, _, _, _ in everyone)
        by_video = {(s.get("video_index", -1), str(s.get("path"))): s for _, skipped, _, _ in everyone for s in skipped}
        shown = sorted((r for _, _, rows, _ in everyone for r in rows), key=lambda r: r["video_index"])[: self.show_predictions]
        self.skipped = [by_video[k] for k in sorted(by_video)]
        short = {(s.get("video_index", -1), str(s.get("path"))): s for _, _, _, entries in everyone for s in entries}
        self.short = [short[k] for k in sorted(short)]
        if not trainer.is_global_zero:
            return
        clip = getattr(getattr(trainer, "datamodule", None), "clip", None)
        completed = "looped" if getattr(clip, "short_video", "clamp") == "loop" else "their last frame repeated"
        lines = [f"{stage}: {self.videos} videos evaluated, {len(self.skipped)} skipped as unreadable"
                 + (f", {len(self.short)} shorter than a clip ({completed})" if self.short else "")]
        metrics = trainer.callback_metrics
        if stage == "test" and "test/video_top1" in metrics:
            how = getattr(trainer.lightning_module.hparams, "test_aggregate", "mean")
            lines.append(f"  per-video top-1 {100 * float(metrics['test/video_top1']):.2f}%  "
                         f"top-5 {100 * float(metrics['test/video_top5']):.2f}%  ({how} of the views)")
        names = getattr(trainer.lightning_module, "classes", None)
        for r in shown:
            top = ", ".join(f"{names[c] if names else c} {s:.3f}" for c, s in zip(r["top_classes"], r["top_scores"]))
            lines.append(f"  {r['video']}: {top}")
        if stage == "predict" and self.videos > len(shown):
            lines.append(f"  ... {self.videos - len(shown)} more: pass --model.predictions_csv FILE for every video")
        lines += [f"  skipped {s.get('path')}: {s.get('reason', '')}" for s in self.skipped]
        lines += [f"  short {s.get('path')}: {s.get('frames')} frames, a clip spans {s.get('span')}" for s in self.short]
        self._lines = lines
