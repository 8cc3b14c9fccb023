"""PredictionsCSV: one CSV row per test or predict video, ``video_index, video, label, pred`` and
the top-k classes with their scores, written once on rank 0 from rows every process streamed
to its own file (bounded memory; each video once under DDP).
"""
from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Any, Iterable, Sequence

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from videoattn.callbacks.rank_files import RankFiles

__all__ = ["PredictionsCSV", "video_rows", "write_predictions_csv"]


def video_rows(outputs: dict[str, Any] | None, top_k: int = 5) -> list[dict[str, Any]]:
    """Rows of the per-video outputs of ``VideoClassifier.test_step`` / ``predict_step``:
    ``scores`` [B, K] (views aggregated), ``label``, ``video_index`` and ``path``."""
    if not outputs or outputs.get("scores") is None or len(outputs["scores"]) == 0:
        return []
    scores = outputs["scores"].float()
    top_scores, top_classes = scores.topk(min(top_k, scores.shape[-1]), dim=-1)
    labels = outputs["label"].tolist()
    return [
        {"video_index": int(i), "video": str(p), "label": int(y), "top_classes": c, "top_scores": [round(v, 6) for v in s]}
        for i, p, y, c, s in zip(outputs["video_index"].tolist(), outputs["path"], labels, top_classes.tolist(), top_scores.tolist())
    ]


class PredictionsCSV(BasePredictionWriter):
    """Write the per-video predictions of ``test`` and ``predict`` to ``path``.

    Args:
        path: the CSV file (its folder is created).
        top_k: classes and scores per row.
    """

    def __init__(self, path: str | Path, top_k: int = 5) -> None:
        super().__init__(write_interval="batch")
        self.path = Path(path)
        self.top_k = top_k
        self._files: RankFiles | None = None

    # -------------------------------------------------------------------- streaming
    def _start(self, trainer: Trainer) -> None:
        self._files = RankFiles(self.path.parent / f".{self.path.name}.parts", trainer.global_rank)

    def _write(self, outputs: dict[str, Any] | None) -> None:
        assert self._files is not None
        for row in video_rows(outputs, self.top_k):
            self._files.write(row)

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(trainer)

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(trainer)

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._write(outputs)

    def write_on_batch_end(self, trainer: Trainer, pl_module: LightningModule, prediction: Any, batch_indices: Sequence[int] | None,
                           batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        self._write(prediction)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._finish(trainer, pl_module)

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._finish(trainer, pl_module)

    # ------------------------------------------------------------------------ merge
    def _finish(self, trainer: Trainer, pl_module: LightningModule) -> None:
        assert self._files is not None
        self._files.close()
        trainer.strategy.barrier("predictions_csv")
        if trainer.is_global_zero:
            write_predictions_csv(self._files.merged(), self.path, getattr(pl_module, "classes", None))
            self._files.remove()
        trainer.strategy.barrier("predictions_csv_written")


def write_predictions_csv(rows: Iterable[dict[str, Any]], path: Path, class_names: Sequence[str] | None = None) -> Path:
    """``video_index, video, label, pred, class_1, score_1, ...``; labels and classes by name.
    ``rows`` is consumed as a stream (the header's k comes from the first row)."""

    def name(index: int) -> str:
        if index < 0:
            return ""
        return class_names[index] if class_names is not None else str(index)

    path.parent.mkdir(parents=True, exist_ok=True)
    rows = iter(rows)
    first = next(rows, None)
    k = len(first["top_classes"]) if first is not None else 0
    header = ["video_index", "video", "label", "pred"] + [f"{c}_{i + 1}" for i in range(k) for c in ("class", "score")]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in itertools.chain([first] if first is not None else [], rows):
            row = [r["video_index"], r["video"], name(r["label"]), name(r["top_classes"][0])]
            for c, s in zip(r["top_classes"], r["top_scores"]):
                row += [name(c), f"{s:.6f}"]
            writer.writerow(row)
    tmp.replace(path)  # a crash never leaves a half-written file under the final name
    return path


