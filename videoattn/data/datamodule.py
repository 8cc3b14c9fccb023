"""KineticsDataModule: Kinetics-style video classification data for Lightning.

A stage reads only its own data: ``fit`` the train list (and val if given), ``validate`` val,
``test`` the test list, ``predict`` its input (a video file, a folder, a glob or a list; no
labels needed). Any of them may instead be a shard location (``videoattn shard``'s output: a
local folder, or a URL LitData reads), decoded from memory by the same clip code. Class names
come from ``classes`` (a list or a class-list file; the CLI passes a checkpoint's names here)
or, when not given, from the train annotations or shards (else the first source given), read on
first use so that ``num_classes`` can be linked to the model.

The data module builds its own samplers (the CLI sets ``use_distributed_sampler=False``):
shuffled per-epoch train shares, unpadded eval shares (every video exactly once under DDP).
Batches carry uint8 clips; ``on_after_batch_transfer`` normalises them on the device, and on an
accelerator first finishes the train clips (resize, flip, layout; ``finish_on_device``). Workers
send train batches in reused shared-memory slots (``pool_slots``). The train loader is stateful (torchdata's ``StatefulDataLoader`` for files, LitData's
``StreamingDataLoader`` for shards): Lightning saves its position in checkpoints, and a run
resumed mid-epoch continues with the next batch, the augmentation included (each sample's
random draws are seeded by (seed, epoch, video), see :mod:`videoattn.data.samplers`).
"""
from __future__ import annotations

import glob
import logging
import os
import warnings
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from videoattn.data.annotations import VIDEO_EXTENSIONS, RawAnnotations, VideoRecords, infer_classes, read_predict_source, read_raw_annotations, resolve_classes, to_records
from videoattn.data.clip import ClipSettings
from videoattn.data.collate import VideoCollate
from videoattn.data.datasets import ShardSamples, VideoClipDataset, VideoClips
from videoattn.data.decode import BACKENDS
from videoattn.data.formats import check_format
from videoattn.data.samplers import ShardedEvalSampler, TrainSampler, dist_rank_and_world, train_sampler
from videoattn.data.shards import INDEX_FILE, REMOTE_PREFIXES, shard_classes
from videoattn.data.transforms import finish_clips, normalize_video, pack_pathways

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


def _position(loader: Any) -> dict[str, Any]:
    """Where a train loader stands: ``{"sampler": {"epoch", "yielded"}}`` for files (the
    TrainSampler's state as torchdata's StatefulDataLoader snapshots it when the last batch
    handed out was asked for: what workers prefetched since is not counted), ``{"loader": ...}``
    (its whole state) otherwise."""
    state = loader.state_dict()
    if isinstance(getattr(loader, "sampler", None), TrainSampler):
        main = state.get("_snapshot", {}).get("_main_snapshot", state) if state.get("_steps_since_snapshot", 0) == 0 else {}
        sampler = (main.get("_sampler_iter_state") or {}).get("sampler_state")
        if sampler is not None:
            return {"sampler": dict(sampler)}
    return {"loader": state}


def _under_root(root: str, source: str) -> str:
    path = os.path.expanduser(source)
    return path if os.path.isabs(path) else os.path.join(root, path)


def _is_list_file(source: str) -> bool:
    path = os.path.expanduser(source)
    return os.path.isfile(path) and os.path.splitext(path)[1].lower() not in VIDEO_EXTENSIONS


class KineticsDataModule(L.LightningDataModule):
    """Kinetics-style data: clips for training, the centre clip for validation, multi-view
    (``clip.test_views`` = temporal clips x spatial crops, one decode per video) for test/predict.

    Args:
        root: folder that annotation paths and video paths are relative to.
        train: the training videos: an annotation source in any format of ``format``, or shards
            written by ``videoattn shard`` (their folder, or a URL LitData reads: ``s3://``,
            ``gs://``, ``local:/path`` or ``file:///path``...); relative to ``root`` or absolute.
            A dataset's annotation folder (UCF101's ucfTrainTestlist, HMDB51's split files,
            SSv2's labels folder) gives train its train videos.
        val: the validation videos, in any form ``train`` takes; a dataset's annotation folder
            gives its test videos (SSv2: validation).
        test: the test videos, in any form ``val`` takes.
        predict: a video file, a folder (searched recursively), a glob pattern, an
            annotation source (its format detected), or shards; labels are optional.
        format: the annotation format of train/val/test, one of ``list`` (``path label`` /
            ``path,label`` lines), ``kinetics`` (the official Kinetics-400/600/700 CSVs),
            ``folders`` (a folder per class), ``ucf101``, ``hmdb51``, ``ssv2`` (as
            downloaded, see docs/datasets.md); default: detected per source.
        split: the official train/test split of UCF101 and HMDB51 (1, 2 or 3); default: the
            one in the list's file name (trainlist02.txt), else 1.
        classes: class names in index order, or a class-list file (one name per line). Default:
            the format's own class list (UCF101's classInd.txt, SSv2's labels.json, HMDB51's
            51 classes), else the sorted names found in the train annotations (``0..max`` for
            integer labels), or the shards' ``classes.txt``. Labels of val/test outside these
            classes are an error naming them and the first one's file and line (shards written
            with other class lists are mapped by name).
        clip: how videos become clips (frames, stride, sizes, views, normalisation), see
            :class:`~videoattn.data.clip.ClipSettings`.
        batch_size: videos per train/val batch (train: each gives ``clip.clips_per_video`` rows).
        test_batch_size: videos per test/predict batch, each carrying ``clip.views_per_video``
            views. Default ``max(1, batch_size // views)``: about as many clips per forward pass
            as in training (1 video for 10 x 3 views and batch_size 8).
        num_workers: DataLoader worker processes.
        backend: first decoder to try, "pyav" (default) or "decord"; the other is the fallback.
        decode_threads: decoder threads per worker.
        seed: shuffling and augmentation seed.
        pin_memory: pinned host memory for the batches; default: when CUDA is available.
        persistent_workers: keep workers between epochs (only with num_workers > 0).
        shard_cache_dir: where LitData keeps the chunks it streams from a URL (default: its
            own, under ``~/.lightning``); a node-local disk on clusters.
        pool_slots: each worker sends its train batches in this many reused shared-memory
            slots (:mod:`videoattn.data.transport`; 4 batches of shared memory per worker, held
            while the loader lives); 0: a new segment per batch, as torch's DataLoader does.
        finish_on_device: where train clips are finished (their crop window resized, flipped
            and laid out [3, T, H, W]): True, on the device in ``on_after_batch_transfer``
            (workers ship each clip's window as decoded, ``transforms.finish_clips`` makes the
            same clips there); False, in the workers. Default: on the device when the trainer
            runs on an accelerator.
    """

    def __init__(
        self,
        root: str = ".",
        train: str | None = None,
        val: str | None = None,
        test: str | None = None,
        predict: str | None = None,
        *,
        format: str | None = None,
        split: int | None = None,
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
        shard_cache_dir: str | None = None,
        pool_slots: int = 4,
        finish_on_device: bool | None = None,
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
        if pool_slots < 0:
            raise ValueError(f"pool_slots must be >= 0, got {pool_slots}")
        check_format(format)
        if split is not None and split not in (1, 2, 3):
            raise ValueError(f"split must be 1, 2 or 3 (UCF101's and HMDB51's official splits), got {split}")
        self.root = root
        self.format, self.split = format, split
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
        self.shard_cache_dir = shard_cache_dir
        self.pool_slots = pool_slots
        self.finish_on_device = finish_on_device
        self._given_classes = classes
        self._classes: list[str] | None = None
        self.records: dict[str, VideoRecords] = {}
        self._raws: dict[str, RawAnnotations] = {}  # read for the class names, kept until the split's records are made
        self.datasets: dict[str, VideoClipDataset] = {}
        self.label_maps: dict[str, list[int] | None] = {}  # shards: shard label -> class index (None: same classes)
        self._train_position: dict[str, Any] | None = None  # a resumed run's train loader state, until training starts

    # ------------------------------------------------------------------------------ classes

    @property
    def classes(self) -> list[str]:
        """Class names in index order (see ``classes`` in the class docstring)."""
        if self._classes is None:
            names = resolve_classes(self._given_classes, self.root)
            if names is None:
                split = next((s for s in ("train", "val", "test", "predict") if self.sources[s]), None)
                location = self.shard_location(split) if split else None
                if location is not None:
                    names = shard_classes(location, cache_dir=self.shard_cache_dir)
                else:
                    names = infer_classes([self._raw(split) if split else []])
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
                if self.shard_location(split) is not None:
                    self._label_map(split)  # shard datasets are built per loader, after the process group starts
                else:
                    self._dataset(split)

    def shard_location(self, split: str) -> str | None:
        """The shard location ``split`` reads (a URL, or a local folder holding LitData's
        ``index.json``), None when it reads annotations or video files."""
        source = self.sources.get(split)
        if not source:
            return None
        text = os.fspath(source)
        if text.startswith(REMOTE_PREFIXES + ("file://",)):
            return text
        path = _under_root(self.root, text)
        return path if os.path.isfile(os.path.join(path, INDEX_FILE)) else None

    def _label_map(self, split: str) -> list[int] | None:
        """Shard label -> class index, by name (None when the shards have this data's classes)."""
        if split not in self.label_maps:
            location = self.shard_location(split)
            assert location is not None
            names = shard_classes(location, cache_dir=self.shard_cache_dir)
            index = {name: i for i, name in enumerate(self.classes)}
            unknown = [name for name in names if name not in index]
            if unknown and split != "predict":
                raise ValueError(
                    f"the {split} shards at {location} have {len(unknown)} classes that are not among the {self.num_classes} classes "
                    f"(first: {', '.join(map(repr, unknown[:10]))}); pass the class list they were written with as `classes`"
                )
            if unknown:
                log.warning("predict: the shards' classes %s are not among the %d classes; their videos are predicted without a label", unknown[:5], self.num_classes)
            self.label_maps[split] = None if names == self.classes else [index.get(name, -1) for name in names]
        return self.label_maps[split]

    def _predict_source(self, source: str) -> str:
        """The predict source as given, or made absolute when it is not found under ``root`` but is
        relative to the current folder (a video, folder, glob or list named on the command line:
        `videoattn predict --ckpt_path CKPT --data.predict my_video.mp4` with any config)."""
        text = os.path.expanduser(source)
        if os.path.isabs(text):
            return source
        if any(ch in text for ch in "*?["):
            found = lambda pattern: bool(glob.glob(pattern, recursive=True))  # noqa: E731
        else:
            found = os.path.exists
        return os.path.abspath(text) if not found(os.path.join(self.root, text)) and found(text) else source

    def _raw(self, split: str) -> RawAnnotations:
        """The rows of ``split``'s source, read once: the class names and the records come
        from the same read."""
        if split not in self._raws:
            self._raws[split] = self._read(split)
        return self._raws[split]

    def _read(self, split: str) -> RawAnnotations:
        source = self.sources[split]
        if split == "predict":
            source = self._predict_source(source)
        # root is where lists and their videos are found; an absolute video, folder or glob to
        # predict on needs none (`videoattn predict --data.predict /x/y.mp4` with any config)
        absolute_videos = split == "predict" and os.path.isabs(os.path.expanduser(source)) and not _is_list_file(source)
        if not os.path.isdir(self.root) and not absolute_videos:
            raise ValueError(f"root {self.root!r} is not a directory (the {split} source {source!r} and its videos are read relative to it)")
        if split == "predict":
            raw = read_predict_source(source, self.root)
            if _is_list_file(_under_root(self.root, source)):
                rank_zero_info(f"predict: {source} is read as a list of videos (one path per line, a label optional; "
                               f"paths relative to {os.path.abspath(self.root)}): {len(raw)} videos")
            return raw
        return read_raw_annotations(source, self.root, format=self.format, subset=split, split=self.split)

    def _dataset(self, split: str) -> VideoClipDataset:
        if split not in self.datasets:
            if not self.sources.get(split):
                raise ValueError(f"no {split} annotations: pass `{split}=` to {type(self).__name__}")
            raw = self._raw(split)
            # predict: labels are optional information; one outside the classes is reported, not fatal
            unknown = "unlabelled" if split == "predict" else "raise"
            records = to_records(raw, self.classes, self.sources[split] or "", unknown=unknown)
            self._raws.pop(split, None)
            dropped = 0
            if split == "predict" and raw.labels is not None:
                dropped = sum(1 for label, code in zip(raw.labels, records.labels.tolist()) if label is not None and code < 0)
            if dropped:
                log.warning("predict: %d videos have labels outside the %d classes; they are predicted without a label", dropped, self.num_classes)
            self.records[split] = records
            self.datasets[split] = VideoClipDataset(records, split, self.clip, backend=self.backend, decode_threads=self.decode_threads)
        return self.datasets[split]

    # ------------------------------------------------------------------------ dataloaders

    def _loader(self, split: str, sampler: Any, batch_size: int, drop_last: bool = False, *, stateful: bool = False) -> DataLoader:
        rank, _ = dist_rank_and_world()
        cls: type[DataLoader] = DataLoader
        if stateful:  # training: Lightning saves and restores its position (mid-epoch resume)
            from torchdata.stateful_dataloader import StatefulDataLoader

            cls = StatefulDataLoader
        with warnings.catch_warnings():  # torchdata 0.11 calls torch.set_vital, deprecated in torch
            warnings.filterwarnings("ignore", message="'set_vital' is deprecated")
            return cls(
                self._dataset(split),
                batch_size=batch_size,
                sampler=sampler,
                num_workers=self.num_workers,
                collate_fn=VideoCollate(split, pool_slots=self.pool_slots),
                pin_memory=self.pin_memory,
                persistent_workers=self.persistent_workers,
                drop_last=drop_last,
                generator=torch.Generator().manual_seed(self.seed + 1000 * rank),
            )

    def _shard_loader(self, split: str, batch_size: int) -> DataLoader:
        """LitData's StreamingDataLoader over the shards of ``split``, its entries made into samples
        by the clip code of files. The dataset is built here, per loader: LitData reads the rank
        and world size when it is built, and the process group starts after ``setup``."""
        from litdata import StreamingDataLoader

        from videoattn.data.shards import VideoShardDataset

        train = split == "train"
        clips = VideoClips(split, self.clip, backend=self.backend, decode_threads=self.decode_threads, finish=self._train_finish() if train else "worker")
        transform = ShardSamples(clips, labels=self._label_map(split), seed=self.seed if train else None)
        # train: shuffled, equal shares (drop_last); evaluation: every entry once, in list order per process
        dataset = VideoShardDataset(self.shard_location(split), shuffle=train, drop_last=train, seed=self.seed, transform=transform,
                                    cache_dir=self.shard_cache_dir)
        rank, _ = dist_rank_and_world()
        return StreamingDataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=self.num_workers,
            collate_fn=VideoCollate(split, pool_slots=self.pool_slots),
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            generator=torch.Generator().manual_seed(self.seed + 1000 * rank),
        )

    def _epoch(self) -> int:
        """The trainer's epoch (0 without a trainer): a loader made when a run resumes starts there."""
        trainer = getattr(self, "trainer", None)
        return int(trainer.current_epoch) if trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        if self.shard_location("train") is not None:
            loader = self._shard_loader("train", self.batch_size)
            loader.current_epoch = self._epoch()  # LitData counts its epochs per loader, from 1 at the first pass
            if self._train_position is not None and "loader" in self._train_position:
                loader.load_state_dict(self._train_position["loader"])
            return loader
        ds = self._dataset("train")
        ds.clips.finish = self._train_finish()
        sampler = train_sampler(len(ds), seed=self.seed, sample_seeds=True)
        if len(sampler) > self.batch_size:  # whole batches only (one incomplete batch is kept)
            sampler.batch_size = self.batch_size
        # Lightning calls set_epoch at each epoch's start, after the first iterator was made
        # (whose workers take the sampler's first indices at once)
        sampler.set_epoch(self._epoch())
        position = self._train_position or {}
        if "sampler" in position:
            # the samples' draws are seeded, not the workers': the sampler's position is the whole
            # state, whatever the number of workers now
            sampler.load_state_dict(position["sampler"])
        loader = self._loader("train", sampler, self.batch_size, stateful=True)
        if "loader" in position:
            loader.load_state_dict(position["loader"])
        return loader

    def _train_finish(self) -> str:
        """Where train clips are finished: ``finish_on_device``, or by default "device" when the
        trainer runs on an accelerator (the resize, flip and layout are then device kernels)."""
        if self.finish_on_device is not None:
            return "device" if self.finish_on_device else "worker"
        trainer = getattr(self, "trainer", None)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        return "worker" if device.type == "cpu" else "device"

    def val_dataloader(self) -> DataLoader | list:
        if not self.sources["val"]:  # fit without validation data: Lightning skips the loop
            return []
        return self._eval_loader("val", self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test", self.test_batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("predict", self.test_batch_size)

    def _eval_loader(self, split: str, batch_size: int) -> DataLoader:
        if self.shard_location(split) is not None:
            return self._shard_loader(split, batch_size)
        return self._loader(split, ShardedEvalSampler(len(self._dataset(split))), batch_size)

    # ------------------------------------------------------------------------- on the device

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Finish train clips shipped unfinished (``finish_on_device``:
        :func:`~videoattn.data.transforms.finish_clips`, then SlowFast's pathways), and normalise
        the batch's uint8 clips on the device it was moved to: float32 ``(x / 255 - clip.mean) /
        clip.std`` (:func:`~videoattn.data.transforms.normalize_video`). Lightning calls it for
        every batch; code that iterates the loaders itself calls it too."""
        trainer = getattr(self, "trainer", None)
        if self._train_position is not None and trainer is not None and trainer.training:
            self._train_position = None  # the resumed position is in use: later loaders start afresh
        if isinstance(batch, dict):
            if "window" in batch:  # train clips shipped unfinished: resized, flipped, laid out here
                video = finish_clips(batch["video"], batch.pop("window"), self.clip.crop_size)
                batch["video"] = video if self.clip.slowfast_alpha is None else pack_pathways(video, self.clip.slowfast_alpha)
            video = batch.get("video")
            first = video[0] if isinstance(video, (list, tuple)) else video
            if isinstance(first, torch.Tensor) and first.dtype == torch.uint8:
                batch["video"] = normalize_video(video, self.clip.mean, self.clip.std)
        return batch

    # ------------------------------------------------ checkpoints: class order, train position

    def state_dict(self) -> dict[str, Any]:
        """The class names, and during fit the train loader's position (``train_position``): the
        file sampler's epoch and count of videos consumed, or LitData's loader state for shards.

        Lightning also saves the loader's state, but does not restore it when the module asks for
        ``trainer.estimated_stepping_batches`` in ``configure_optimizers`` (VideoClassifier does:
        the loader is made before the checkpoint's loop state is read; Lightning issue #20550):
        the data module restores the position itself, in the train loaders it makes after
        :meth:`load_state_dict` until training starts."""
        state: dict[str, Any] = {"classes": list(self.classes)}
        trainer = getattr(self, "trainer", None)
        loader = trainer.train_dataloader if trainer is not None and trainer.state.fn == "fit" else None
        if callable(getattr(loader, "state_dict", None)):
            state["train_position"] = _position(loader)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("classes")
        if saved is not None and list(saved) != self.classes:
            raise ValueError(
                f"the checkpoint was trained with other classes ({len(saved)}) or another class order than this data ({self.num_classes}); "
                "pass the checkpoint's class list as `classes` (first differences: "
                f"{[(i, a, b) for i, (a, b) in enumerate(zip(saved, self.classes)) if a != b][:3]})"
            )
        self._train_position = state_dict.get("train_position")
