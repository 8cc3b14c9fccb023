"""FeatureWriter: one embedding per video (``videoattn extract``). The embedding is the input of
the classification head (``find_classifier``), averaged over the video's test views; for
SlowFast that is both pathways, concatenated as the head sees them. Each process streams its
rows to its own files; rank 0 merges them in video order into ``features`` float32 [N, D],
``video`` (paths) and ``label`` (class index, -1 where unknown) of one ``.npz``, through a
memory-mapped array, so memory stays bounded whatever the number of videos.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from videoattn.callbacks.rank_files import RankFiles
from videoattn.models.classifier import find_classifier

__all__ = ["FeatureWriter"]


class FeatureWriter(BasePredictionWriter):
    """Write per-video embeddings of a ``predict`` run to ``path`` (``.npz``)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(write_interval="batch")
        self.path = Path(path)
        if self.path.suffix != ".npz":
            raise ValueError(f"--out {str(path)!r}: the features file must end in .npz")
        self._inputs: torch.Tensor | None = None
        self._handle: Any = None
        self._files: RankFiles | None = None
        self._vectors: Any = None  # this process's float32 rows, appended in order
        self._rows = 0

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        _, head = find_classifier(getattr(pl_module, "backbone", pl_module))
        self._handle = head.register_forward_pre_hook(self._capture)
        self._files = RankFiles(self.path.parent / f".{self.path.name}.parts", trainer.global_rank)
        self._vectors = (self._files.folder / f"rank{trainer.global_rank}.f32").open("wb")
        self._rows = 0

    def _capture(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        self._inputs = args[0].detach()

    def write_on_batch_end(self, trainer: Trainer, pl_module: LightningModule, prediction: Any, batch_indices: Sequence[int] | None,
                           batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        if not prediction or prediction.get("scores") is None or len(prediction["video_index"]) == 0:
            return
        if self._inputs is None:
            raise RuntimeError("FeatureWriter: the classifier was not called in predict_step")
        videos = len(prediction["video_index"])
        x = self._inputs.float()
        dim = x.shape[-1]
        x = x.reshape(x.shape[0], -1, dim).mean(1)  # [B*V, ..., D] -> [B*V, D] (any pooled positions)
        x = x.reshape(videos, -1, dim).mean(1)  # [B*V, D] -> [B, D]: the mean over the views
        self._vectors.write(np.ascontiguousarray(x.cpu().numpy(), dtype=np.float32).tobytes())
        for i, path, label in zip(prediction["video_index"].tolist(), prediction["path"], prediction["label"].tolist()):
            assert self._files is not None
            self._files.write({"video_index": int(i), "video": str(path), "label": int(label), "rank": trainer.global_rank, "row": self._rows, "dim": dim})
            self._rows += 1
        self._inputs = None

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        assert self._files is not None
        self._handle.remove()
        self._vectors.close()
        self._files.close()
        trainer.strategy.barrier("features")
        if trainer.is_global_zero:
            n = self._merge()
            rank_zero_info(f"extract: {n} video features written to {self.path}")
        trainer.strategy.barrier("features_written")

    def _merge(self) -> int:
        assert self._files is not None
        folder = self._files.folder
        n, dim = 0, 0
        for row in self._files.merged():  # first pass: how many videos, and the width
            n, dim = n + 1, row["dim"]
        sources = {int(p.stem[4:]): np.memmap(p, dtype=np.float32, mode="r").reshape(-1, dim)
                   for p in folder.glob("rank*.f32") if dim and p.stat().st_size}
        merged = np.lib.format.open_memmap(folder / "features.npy", mode="w+", dtype=np.float32, shape=(n, dim))
        videos, labels = [], np.empty(n, dtype=np.int64)
        for i, row in enumerate(self._files.merged()):  # second pass: vectors in video order
            merged[i] = sources[row["rank"]][row["row"]]
            videos.append(row["video"])
            labels[i] = row["label"]
        merged.flush()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.stem + ".tmp.npz")
        np.savez(tmp, features=merged, video=np.array(videos, dtype=str), label=labels)
        tmp.replace(self.path)
        del merged, sources
        self._files.remove()
        return n
