"""KineticsDataModule: Kinetics-style video classification data for Lightning.

A stage reads only its own data: ``fit`` the train list (and val if given), ``validate`` val,
``test`` the test list, ``predict`` its input (a video file, a folder, a glob or a list; no
labels needed). Class names come from ``classes`` (a list or a class-list file; the CLI passes
a checkpoint's names here) or, when not given, from the train annotations (else the first
annotation source given), read on first use so that ``num_classes`` can be linked to the model.
The data module builds its own samplers (the CLI sets ``use_distributed_sampler=False``):
shuffled per-epoch train shares, unpadded eval shares (every video exactly once under DDP).
"""
from __future__ import annotations

import logging
import os
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from videoattn.data.annotations import VIDEO_EXTENSIONS, VideoRecord, infer_classes, read_predict_source, read_raw_annotations, resolve_classes, to_records
from videoattn.data.clip import ClipSettings
from videoattn.data.collate import VideoCollate
from videoattn.data.datasets import VideoClipDataset
from videoattn.data.decode import BACKENDS
from videoattn.data.samplers import ShardedEvalSampler, dist_rank_and_world, train_sampler

__all__ = ["KineticsDataModule", "STAGE_SPLITS"]

log = logging.getLogger("videoattn.data")
SPLITS = ("train", "val", "test", "predict")
# Lightning stage -> (splits it needs, splits it uses when given)
STAGE_SPLITS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "fit": (("train",), ("val",)),
    "validate": (("val",), ()),
    "test": (("test",), ()),
    "predict": (("predict",), ()),
}


def _is_list_file(source: str) -> bool:
    path = os.path.expanduser(source)
    return os.path.isfile(path) and os.path.splitext(path)[1].lower() not in VIDEO_EXTENSIONS


class KineticsDataModule(L.LightningDataModule):
    """Kinetics-style data: clips for training, the centre clip for validation, multi-view
    (``clip.test_views`` = temporal clips x spatial crops, one decode per video) for test/predict.

    Args:
        root: folder that annotation paths and video paths are relative to.
        train, val, test: an annotation file (``path label`` / ``path,label`` lines or an
            official Kinetics CSV) or a folder with one sub-folder per class; relative to
            ``root`` or absolute.
        predict: a video file, a folder (searched recursively), a glob pattern, or an
            annotation list; labels are optional.
        classes: class names in index order, or a class-list file (one name per line). Default:
            the sorted names found in the train annotations (``0..max`` for integer labels).
            Labels of val/test outside these classes are an error naming them.
        clip: how videos become clips (frames, stride, sizes, views, normalisation), see
            :class:`~videoattn.data.clip.ClipSettings`.
        batch_size: videos per train/val batch (train: each gives ``clip.clips_per_video`` rows).
        test_batch_size: videos per test/predict batch, each carrying ``clip.views_per_video``
            views. Default ``max(1, batch_size // views)``: about as many clips per forward pass
            as in training (1 video for 10 x 3 views and batch_size 8).
        num_workers: DataLoader worker processes. backend: first decoder to try, "pyav"
            (default) or "decord"; the other is the fallback. decode_threads: decoder threads
            per worker. seed: shuffling and augmentation seed.
        pin_memory: default: when CUDA is available. persistent_workers: keep workers between
            epochs (only with num_workers > 0).
    """

    def __init__(
        self,
        root: str = ".",
        train: str | None = None,
        val: str | None = None,
        test: str | None = None,
        predict: str | None = None,
        *,
        classes: list[str] | str | None = None,
        clip: ClipSettings = ClipSettings(),
        batch_size: int = 8,
        test_batch_size: int | None = None,
        num_workers: int = 4,
        backend: str | None = None,
        decode_threads: int = 1,
        seed: int = 0,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if not isinstance(clip, ClipSettings):
            raise ValueError(f"clip must be a ClipSettings, got {type(clip).__name__}")
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
        if batch_size < 1 or (test_batch_size is not None and test_batch_size < 1):
            raise ValueError(f"batch_size and test_batch_size must be >= 1, got {batch_size} and {test_batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.root = root
        self.sources = {"train": train, "val": val, "test": test, "predict": predict}
        if not any(self.sources.values()):
            raise ValueError("give at least one of train, val, test or predict")
        self.clip = clip
        self.batch_size = batch_size
        self.test_batch_size = test_batch_size or max(1, batch_size // clip.views_per_video)
        self.num_workers, self.seed = num_workers, seed
        self.backend, self.decode_threads = backend, decode_threads
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self._given_classes = classes
        self._classes: list[str] | None = None
        self.records: dict[str, list[VideoRecord]] = {}
        self.datasets: dict[str, VideoClipDataset] = {}

    # ------------------------------------------------------------------------------ classes

    @property
    def classes(self) -> list[str]:
        """Class names in index order (see ``classes`` in the class docstring)."""
        if self._classes is None:
            names = resolve_classes(self._given_classes, self.root)
            if names is None:
                split = next((s for s in ("train", "val", "test", "predict") if self.sources[s]), None)
                raw = self._raw(split) if split else []
                names = infer_classes([raw])
                if not names:
                    raise ValueError(f"no class names found in the {split} annotations (unlabelled): pass `classes` or a checkpoint")
            self._classes = names
        return self._classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    # -------------------------------------------------------------------------------- setup

    def setup(self, stage: str | None = None) -> None:
        """Read the annotations of ``stage`` (fit, validate, test, predict; None: every source
        given) and build their datasets. Nothing else is opened."""
        if stage is None:
            needed, optional = (), tuple(s for s in SPLITS if self.sources[s])
        elif stage in STAGE_SPLITS:
            needed, optional = STAGE_SPLITS[stage]
        else:
            raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGE_SPLITS)}")
        for split in needed:
            if not self.sources[split]:
                raise ValueError(f"the {stage} stage needs `{split}=` (data.{split}): none was given")
        for split in needed + optional:
            if self.sources[split]:
                self._dataset(split)

    def _raw(self, split: str) -> list[Any]:
        source = self.sources[split]
        # root is where lists and their videos are found; an absolute video, folder or glob to
        # predict on needs none (`videoattn predict --data.predict /x/y.mp4` with any config)
        absolute_videos = split == "predict" and os.path.isabs(os.path.expanduser(source)) and not _is_list_file(source)
        if not os.path.isdir(self.root) and not absolute_videos:
            raise ValueError(f"root {self.root!r} is not a directory (the {split} source {source!r} and its videos are read relative to it)")
        if split == "predict":
            return read_predict_source(source, self.root)
        return read_raw_annotations(source, self.root)

    def _dataset(self, split: str) -> VideoClipDataset:
        if split not in self.datasets:
            if not self.sources.get(split):
                raise ValueError(f"no {split} annotations: pass `{split}=` to {type(self).__name__}")
            raw = self._raw(split)
            # predict: labels are optional information; one outside the classes is reported, not fatal
            unknown = "unlabelled" if split == "predict" else "raise"
            records = to_records(raw, self.classes, self.sources[split] or "", unknown=unknown)
            dropped = sum(1 for r, rec in zip(raw, records) if r.label is not None and rec.label < 0)
            if dropped:
                log.warning("predict: %d videos have labels outside the %d classes; they are predicted without a label", dropped, self.num_classes)
            self.records[split] = records
            self.datasets[split] = VideoClipDataset(records, split, self.clip, backend=self.backend, decode_threads=self.decode_threads)
        return self.datasets[split]

    # ------------------------------------------------------------------------ dataloaders

    def _loader(self, split: str, sampler: Any, batch_size: int, drop_last: bool = False) -> DataLoader:
        rank, _ = dist_rank_and_world()
        return DataLoader(
            self._dataset(split),
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=VideoCollate(split),
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            drop_last=drop_last,
            generator=torch.Generator().manual_seed(self.seed + 1000 * rank),
        )

    def train_dataloader(self) -> DataLoader:
        ds = self._dataset("train")
        sampler = train_sampler(len(ds), seed=self.seed)
        return self._loader("train", sampler, self.batch_size, drop_last=len(sampler) > self.batch_size)

    def val_dataloader(self) -> DataLoader | list:
        if not self.sources["val"]:  # fit without validation data: Lightning skips the loop
            return []
        return self._loader("val", ShardedEvalSampler(len(self._dataset("val"))), self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", ShardedEvalSampler(len(self._dataset("test"))), self.test_batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", ShardedEvalSampler(len(self._dataset("predict"))), self.test_batch_size)

    # ------------------------------------------------------------- class order in checkpoints

    def state_dict(self) -> dict[str, Any]:
        return {"classes": list(self.classes)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("classes")
        if saved is not None and list(saved) != self.classes:
            raise ValueError(
                f"the checkpoint was trained with other classes ({len(saved)}) or another class order than this data ({self.num_classes}); "
                "pass the checkpoint's class list as `classes` (first differences: "
                f"{[(i, a, b) for i, (a, b) in enumerate(zip(saved, self.classes)) if a != b][:3]})"
            )
