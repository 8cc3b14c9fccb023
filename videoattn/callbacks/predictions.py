"""PredictionsCSV: one CSV row per test or predict video, ``video_index, video, label, pred``, the
top-k classes with their scores and a ``note``: the reason of a video that could not be read (its
row has no prediction), or that a video is shorter than a clip. Written once on rank 0 from rows
every process streamed to its own file (bounded memory; each video once under DDP).
"""
from __future__ import annotations

import csv
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterable, Sequence

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter

from videoattn.callbacks.rank_files import RankFiles

__all__ = ["PredictionsCSV", "batch_rows", "short_note", "video_rows", "write_predictions_csv"]


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


def short_note(entry: Mapping[str, Any], short_video: str = "clamp") -> str:
    """The note of a video shorter than a clip (a batch's ``short`` entry)."""
    how = "its frames looped" if short_video == "loop" else "its last frame repeated"
    return f"short: {entry['frames']} frames, a clip spans {entry['span']} ({how})"


def batch_rows(outputs: dict[str, Any] | None, batch: Any, top_k: int = 5, short_video: str = "clamp") -> list[dict[str, Any]]:
    """Every video of a test/predict batch, in video order: the predicted ones (:func:`video_rows`,
    with a ``note`` if shorter than a clip) and those that could not be read (no prediction, the
    reason as ``note``)."""
    rows = video_rows(outputs, top_k)
    if isinstance(batch, Mapping):
        notes = {int(e["video_index"]): short_note(e, short_video) for e in batch.get("short") or []}
        for row in rows:
            row["note"] = notes.get(row["video_index"], "")
        rows += [{"video_index": int(e.get("video_index", -1)), "video": str(e.get("path")), "label": int(e.get("label", -1)),
                  "top_classes": [], "top_scores": [], "note": f"unreadable: {e.get('reason', '')}"} for e in batch.get("skipped") or []]
    return sorted(rows, key=lambda r: r["video_index"])


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

    def _write(self, trainer: Trainer, outputs: dict[str, Any] | None, batch: Any) -> None:
        assert self._files is not None
        clip = getattr(getattr(trainer, "datamodule", None), "clip", None)
        for row in batch_rows(outputs, batch, self.top_k, getattr(clip, "short_video", "clamp")):
            self._files.write(row)

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(trainer)

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(trainer)

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._write(trainer, outputs, batch)

    def write_on_batch_end(self, trainer: Trainer, pl_module: LightningModule, prediction: Any, batch_indices: Sequence[int] | None,
                           batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        self._write(trainer, prediction, batch)

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
            num_classes = getattr(pl_module.hparams, "num_classes", None) if hasattr(pl_module, "hparams") else None
            k = min(self.top_k, num_classes) if num_classes else None
            write_predictions_csv(self._files.merged(), self.path, getattr(pl_module, "classes", None), top_k=k)
            self._files.remove()
        trainer.strategy.barrier("predictions_csv_written")


def write_predictions_csv(rows: Iterable[dict[str, Any]], path: Path, class_names: Sequence[str] | None = None, *, top_k: int | None = None) -> Path:
    """``video_index, video, label, pred, class_1, score_1, ..., class_k, score_k, note``; labels and
    classes by name; a row without a prediction (a video that could not be read) leaves ``pred``
    and the classes empty. ``rows`` is consumed as a stream; ``top_k`` (default: the first
    predicted row's) sets how many class/score columns there are."""

    def name(index: int) -> str:
        if index < 0:
            return ""
        return class_names[index] if class_names is not None else str(index)

    path.parent.mkdir(parents=True, exist_ok=True)
    rows = iter(rows)
    head: list[dict[str, Any]] = []
    if top_k is None:  # read ahead to the first predicted row
        for row in rows:
            head.append(row)
            if row["top_classes"]:
                break
        top_k = next((len(r["top_classes"]) for r in head if r["top_classes"]), 0)
    header = ["video_index", "video", "label", "pred"] + [f"{c}_{i + 1}" for i in range(top_k) for c in ("class", "score")] + ["note"]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in itertools.chain(head, rows):
            classes = r["top_classes"]
            row = [r["video_index"], r["video"], name(r["label"]), name(classes[0]) if classes else ""]
            for i in range(top_k):
                row += [name(classes[i]), f"{r['top_scores'][i]:.6f}"] if i < len(classes) else ["", ""]
            writer.writerow(row + [r.get("note", "")])
    tmp.replace(path)  # a crash never leaves a half-written file under the final name
    return path
