"""KineticsDataModule: Kinetics-style video classification data for Lightning. Reads the"""
# annotation files (no decoding) in __init__ so `classes` / `num_classes` are known at once
# (the CLI links data.num_classes -> model.num_classes); builds its own samplers (the CLI
# sets use_distributed_sampler=False): shuffled per-epoch train shares, unpadded eval shares.
from __future__ import annotations

import os
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from videoattn.data.annotations import VideoRecord, infer_classes, read_raw_annotations, resolve_classes, to_records
from videoattn.data.collate import VideoCollate
from videoattn.data.datasets import VideoClipDataset
from videoattn.data.decode import BACKENDS
from videoattn.data.samplers import ShardedEvalSampler, dist_rank_and_world, train_sampler
from videoattn.data.transforms import KINETICS_MEAN, KINETICS_STD

__all__ = ["KineticsDataModule"]

SPLITS = ("train", "val", "test", "predict")


class KineticsDataModule(L.LightningDataModule):
    """Kinetics-style data: clips for training, the centre clip for validation, multi-view
    (``test_views`` = temporal clips x spatial crops, one decode per video) for test/predict.

    Args:
        root: folder that annotation paths and video paths are relative to.
        train, val, test, predict: an annotation file (``path label`` / ``path,label`` lines or
            an official Kinetics CSV) or a folder with one sub-folder per class; relative to
            ``root`` or absolute. Predict may also be a plain folder of videos (no labels).
        classes: class names in index order, or a class-list file (one name per line). Default:
            the sorted names found in the given annotations (``0..max`` for integer labels).
        num_frames, sampling_rate: clip length T and stride tau in frames (fast pathway for
            SlowFast).
        batch_size: videos per batch (train: each gives ``clips_per_video`` rows).
        test_batch_size: videos per test/predict batch; each carries ``test_views[0] *
            test_views[1]`` views. Default ``max(1, batch_size // views)``, about as many clips
            per forward pass as in training (1 video for 10 x 3 views and batch_size 8).
        test_views: (temporal clips, spatial crops); crops 3 (along the long side) or 1 (centre).
        train_short_side: (min, max) of the random short-side scale; crop_size: train/val crop.
        test_short_side, test_crop_size: short side for val/test; crop size of test views.
        slowfast_alpha: if set, videos are ``[slow, fast]`` with the slow pathway T / alpha.
        clips_per_video: train clips taken from one decode of each video (repeated augmentation).
        backend: first decoder to try, "pyav" (default) or "decord"; the other is the fallback.
        decode_threads: decoder threads per worker. seed: shuffling and augmentation seed.
        pin_memory: default: when CUDA is available. persistent_workers: keep workers between
            epochs (only with num_workers > 0).
        short_video: "clamp" (repeat the last frame, as PySlowFast) or "loop" for videos
            shorter than a clip.
        target_fps: if set, ``sampling_rate`` counts frames at this rate (PySlowFast's
            DATA.TARGET_FPS = 30): a 25 fps video is then sampled every 8 * 25 / 30 frames, so
            clips last the same time whatever the file's frame rate. Default: native frames.
        flip: random horizontal flip in training (turn off when left/right matters).
        mean, std: per-channel normalisation of [0, 1] pixel values.
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
        num_frames: int = 8,
        sampling_rate: int = 8,
        batch_size: int = 8,
        test_batch_size: int | None = None,
        num_workers: int = 4,
        test_views: tuple[int, int] = (10, 3),
        train_short_side: tuple[int, int] = (256, 320),
        crop_size: int = 224,
        test_short_side: int = 256,
        test_crop_size: int = 256,
        slowfast_alpha: int | None = None,
        clips_per_video: int = 1,
        backend: str | None = None,
        decode_threads: int = 1,
        seed: int = 0,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        short_video: str = "clamp",
        target_fps: float | None = None,
        flip: bool = True,
        mean: tuple[float, float, float] = KINETICS_MEAN,
        std: tuple[float, float, float] = KINETICS_STD,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if not os.path.isdir(root):
            raise ValueError(f"root {root!r} is not a directory")
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS} or None, got {backend!r}")
        for name, value in (("batch_size", batch_size), ("num_frames", num_frames), ("sampling_rate", sampling_rate)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.root = root
        self.sources = {"train": train, "val": val, "test": test, "predict": predict}
        if not any(self.sources.values()):
            raise ValueError("give at least one of train, val, test or predict")
        raw = {split: read_raw_annotations(src, root) for split, src in self.sources.items() if src}
        given = resolve_classes(classes, root)
        self.classes: list[str] = given if given is not None else infer_classes(raw.values())
        if not self.classes:
            raise ValueError("no class names found: the annotations are unlabelled, pass `classes`")
        self.records: dict[str, list[VideoRecord]] = {s: to_records(r, self.classes, self.sources[s] or "") for s, r in raw.items()}
        views = int(test_views[0]) * int(test_views[1])
        self.batch_size, self.test_batch_size = batch_size, test_batch_size or max(1, batch_size // views)
        self.num_workers, self.seed = num_workers, seed
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.dataset_kwargs: dict[str, Any] = dict(
            num_frames=num_frames, sampling_rate=sampling_rate, train_short_side=tuple(train_short_side), crop_size=crop_size,
            test_short_side=test_short_side, test_crop_size=test_crop_size, test_views=tuple(test_views),
            clips_per_video=clips_per_video, slowfast_alpha=slowfast_alpha, backend=backend, decode_threads=decode_threads,
            short_video=short_video, target_fps=target_fps, flip=flip, mean=tuple(mean), std=tuple(std),
        )
        self.datasets: dict[str, VideoClipDataset] = {}
        for split in self.records:  # validates sizes and options now, not in a worker later
            self.datasets[split] = VideoClipDataset(self.records[split], split, **self.dataset_kwargs)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    # ------------------------------------------------------------------------ dataloaders

    def _dataset(self, split: str) -> VideoClipDataset:
        if split not in self.datasets:
            raise ValueError(f"no {split} annotations: pass `{split}=` to KineticsDataModule")
        return self.datasets[split]

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
        if "val" not in self.datasets:  # fit without validation data: Lightning skips the loop
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
