"""Data-loading benchmark: videoattn's data path (KineticsDataModule's loaders, from files and
from shards) against pytorchvideo 0.1.5's LabeledVideoDataset (PyAV decoder,
decode_audio=False, its Kinetics recipe's transforms written on tensors because
pytorchvideo.transforms does not import), on Kinetics-like files (10 s, 30 fps, 340x256 H.264)
that the script writes. One DataLoader worker each, batches of one video; videoattn's batches
are normalised as on the device (on_after_batch_transfer: its workers ship uint8 clips).
  train: 8x8 clips/s (random clip, short side 256-320, crop 224, flip, normalise); also with
         2 clips per decode (repeated augmentation), which pytorchvideo does not offer
  test : 10x3-view videos/s (short side 256, three 256 crops)
  overhead: per train clip, from files and from shards: the decode floor (decoding its frames),
         the whole sample in process, and through the train loader; wall and CPU time; clips
         finished in the worker (CPU runs) and on the device (accelerator runs; the device step
         runs on this CPU here); and the loader from files with torch's own transport of
         batches (pool_slots=0)
  shards: train clips/s and test videos/s from LitData shards of the same files (videoattn
         shard) against the files, with 1 and 2 DataLoader workers, and the CPU time of one
         sample in process (robust to other load on the machine)
  backends: read_frames with PyAV vs decord on the same train clips
  annotations (--only annotations): a Kinetics-size list (--rows, 240,000) read by videoattn
         against the csv module reading the same file in the same run (rows/s and the ratio):
         the official CSV and a `path label` list, load_annotations, KineticsDataModule.setup
         ("fit"), and the start-up of `videoattn check-data` and `videoattn shard` (until the
         first video is checked / the first part is written); the records' memory
Prints medians over --repeats runs and the ratios; absolute times on a shared machine are noise.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from videoattn.data import KineticsDataModule
from videoattn.data.annotations import VideoRecord
from videoattn.data.clip import ClipSettings
from videoattn.data.datasets import VideoClipDataset
from videoattn.data.decode import read_frames
from videoattn.data.sampling import random_clip
from videoattn.video_io import write_video

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/: the results file helper
import results_file  # noqa: E402

T, TAU, FPS = 8, 8, 30
MEAN, STD = 0.45, 0.225
# A train clip's random draws are seeded by (seed, epoch, video): LitData counts its first pass as
# epoch 1, so files are drawn at epoch 1 too, and files and shards time the same clips (a clip's
# decoding cost depends on where it starts: different draws differed by 11% over 24 clips)
DRAW_EPOCH = 1


def kinetics_like_video(path: Path, seed: int, seconds: int = 10, width: int = 340, height: int = 256) -> Path:
    """A panning textured background with a moving object: compresses like real footage
    (x264 default GOP 250, CRF 23), not like noise or flat colour."""
    rng = np.random.default_rng(seed)
    n = seconds * FPS
    texture = rng.integers(0, 256, (height // 8 + 1, (width + 4 * n) // 8 + 2, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(texture, 8, axis=0), 8, axis=1)[:height]
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    for i in range(n):
        frames[i] = texture[:, 2 * i : 2 * i + width]
        x = int((width - 60) * (0.5 + 0.5 * math.sin(i / 20)))
        frames[i, 100:160, x : x + 60] = (230, 60, 60)
    return write_video(path, frames, fps=FPS, codec="libx264", crf=23)


def kinetics_like_videos(folder: Path, count: int) -> list[str]:
    """``count`` videos ``folder/k{i}.mp4`` (seeds 0..count-1), written where missing."""
    paths = []
    for i in range(count):
        path = folder / f"k{i}.mp4"
        if not path.exists():
            kinetics_like_video(path, seed=i)
        paths.append(str(path))
    return paths


# ------------------------------------------------------------------ pytorchvideo anchor


def _ptv_common(video: torch.Tensor) -> torch.Tensor:
    """pytorchvideo recipe on float [C, T', H, W] in 0..255: UniformTemporalSubsample(T), Div255,
    Normalize (written on tensors as pytorchvideo.transforms does)."""
    t = video.shape[1]
    idx = torch.clamp(torch.linspace(0, t - 1, T), 0, t - 1).long()
    video = torch.index_select(video, 1, idx) / 255.0
    return (video - MEAN) / STD


def _ptv_short_side_scale(x: torch.Tensor, size: int) -> torch.Tensor:
    """pytorchvideo.transforms.functional.short_side_scale: bilinear float interpolate."""
    c, t, h, w = x.shape
    new_h, new_w = (size, int(math.floor(w / h * size))) if w >= h else (int(math.floor(h / w * size)), size)
    return F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)


class PtvTrainTransform:
    def __call__(self, sample: dict) -> dict:
        x = _ptv_short_side_scale(_ptv_common(sample["video"]), int(torch.randint(256, 321, (1,))))
        h, w = x.shape[-2:]
        top, left = int(torch.randint(h - 224 + 1, (1,))), int(torch.randint(w - 224 + 1, (1,)))
        x = x[..., top : top + 224, left : left + 224]
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        return {"video": x, "label": sample["label"]}


class PtvTestTransform:
    def __call__(self, sample: dict) -> dict:
        x = _ptv_short_side_scale(_ptv_common(sample["video"]), 256)
        h, w = x.shape[-2:]
        crops = [x[..., (h - 256) // 2 : (h - 256) // 2 + 256, left : left + 256] for left in (0, (w - 256) // 2, w - 256)]
        return {"video": torch.stack(crops), "label": sample["label"], "video_index": sample["video_index"], "clip_index": sample["clip_index"]}


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def ptv_loader(paths: list[str], mode: str, clips: int) -> DataLoader:
    import pytorchvideo.data as ptv

    if mode == "train":
        sampler = ptv.make_clip_sampler("random", T * TAU / FPS)
        transform = PtvTrainTransform()
    else:
        sampler = ptv.make_clip_sampler("constant_clips_per_video", T * TAU / FPS, 10)
        transform = PtvTestTransform()
    ds = ptv.LabeledVideoDataset([(p, {"label": 0}) for p in paths], sampler, torch.utils.data.SequentialSampler, transform, decode_audio=False, decoder="pyav")
    return DataLoader(ds, batch_size=1, num_workers=1, worker_init_fn=_worker_init)


# --------------------------------------------------------- videoattn: the data module's path


def _clip(clips_per_video: int = 1) -> ClipSettings:
    return ClipSettings(num_frames=T, sampling_rate=TAU, test_views=(10, 3), clips_per_video=clips_per_video)


def ours_datamodule(
    root: Path, source: str, mode: str, *, clips_per_video: int = 1, workers: int = 1, pool_slots: int = 4, finish_on_device: bool = False
) -> KineticsDataModule:
    """KineticsDataModule over ``source`` (a list file or a shard folder) for ``mode``, batches
    of one video, ``workers`` DataLoader workers (not persistent: the bench joins them to read
    their CPU time), set up for the mode's stage. ``pool_slots`` 0: torch's own transport of
    batches from the workers (a new shared-memory segment per batch). ``finish_on_device``:
    train clips leave the workers unfinished, as on an accelerator (the device step finishes them)."""
    split = "train" if mode == "train" else "test"
    dm = KineticsDataModule(str(root), **{split: source}, classes=["0"], clip=_clip(clips_per_video), batch_size=1, test_batch_size=1,
                            num_workers=workers, pin_memory=False, persistent_workers=False, pool_slots=pool_slots, finish_on_device=finish_on_device)
    dm.setup("fit" if split == "train" else "test")
    return dm


def ours_loader(
    root: Path, source: str, mode: str, clips_per_video: int = 1, workers: int = 1, pool_slots: int = 4, finish_on_device: bool = False
) -> tuple[DataLoader, Callable]:
    """(the data module's loader, what runs on each batch on the device: the normalisation).
    Train clips from files are drawn as from shards (epoch ``DRAW_EPOCH``): the same clips."""
    dm = ours_datamodule(root, source, mode, clips_per_video=clips_per_video, workers=workers, pool_slots=pool_slots, finish_on_device=finish_on_device)
    loader = dm.train_dataloader() if mode == "train" else dm.test_dataloader()
    if mode == "train" and dm.shard_location("train") is None:
        loader.sampler.set_epoch(DRAW_EPOCH)
    return loader, lambda batch: dm.on_after_batch_transfer(batch, 0)


def write_list(root: Path, name: str, paths: list[str]) -> str:
    (root / name).write_text("".join(f"{p} 0\n" for p in paths))
    return name


def write_bench_shards(paths: list[str], out: Path) -> str:
    from videoattn.data.shards import write_shards

    """Shards of ``paths`` as `videoattn shard` writes them (64 MB chunks: here one chunk, whose item
    ranges LitData splits between workers). With 1 MB chunks (7 entries each) the shard loader
    paid 1.3 ms more per clip than with one chunk over 24 clips: each chunk's first batches
    carry its opening, which a real dataset's 64 MB chunks (30-60 Kinetics videos) spread."""
    if not (out / "index.json").exists():
        write_shards([VideoRecord(p, 0, i) for i, p in enumerate(paths)], out, classes=["0"], progress=False)
    return str(out)


# --------------------------------------------------------------------------------- timing


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # workers, once joined
    return usage.ru_utime + usage.ru_stime


class _WorkerClock:
    """A collate_fn that stamps each batch with its worker's CPU clock: the differences between
    a worker's consecutive batches are its CPU time per batch in steady state (start-up excluded)."""

    def __init__(self, collate: Callable[[list], dict]) -> None:
        self.collate = collate

    def __call__(self, samples: list) -> dict:
        batch = self.collate(samples)
        batch["worker_cpu"] = (torch.utils.data.get_worker_info().id, time.process_time())
        return batch


def time_loader_cpu(make_loader: Callable[[], Any], items: int) -> dict[str, float]:
    """Per item (clip or video) after the first one: ``wall`` seconds; ``main``: CPU seconds of
    this process (receiving the batch and the device step); for videoattn's loaders ``worker``,
    the workers' CPU seconds in steady state, and ``worker_life``, over their whole life (start-up
    included). A loader made by videoattn comes with its device step (the normalisation), run on
    each batch here. CPU time counts the work done whatever else loads the machine."""
    import gc

    before = _children_cpu()
    made = make_loader()
    loader, on_device = made if isinstance(made, tuple) else (made, lambda batch: batch)
    clocked = isinstance(made, tuple)
    if clocked:
        loader.collate_fn = _WorkerClock(loader.collate_fn)
    it = iter(loader)
    stamps: dict[int, list[float]] = {}

    def take(batch: dict) -> None:
        if clocked:
            worker, cpu = batch.pop("worker_cpu")
            stamps.setdefault(worker, []).append(cpu / len(batch["video_index"]))
        on_device(batch)

    take(next(it))  # worker start-up excluded from the wall and main-process figures
    wall, cpu, got = time.perf_counter(), time.process_time(), 0
    for _ in range(items):
        try:
            take(next(it))
        except StopIteration:
            break
        got += 1
    wall, cpu = (time.perf_counter() - wall) / max(got, 1), (time.process_time() - cpu) / max(got, 1)
    del it, loader, made
    gc.collect()  # the iterator's workers are joined when it is collected
    steady = [b - a for times in stamps.values() for a, b in zip(times, times[1:])]
    return {"wall": wall, "main": cpu, "worker_life": (_children_cpu() - before) / (got + 1),
            "worker": statistics.median(steady) if steady else math.nan}


def time_loader(make_loader: Callable[[], Any], items: int) -> float:
    """Wall seconds per item after the first one (see :func:`time_loader_cpu`)."""
    return time_loader_cpu(make_loader, items)["wall"]


class _DecodeTimer:
    """Wall and CPU seconds spent in decode_frames while in use (the floor of a sample)."""

    def __enter__(self) -> _DecodeTimer:
        import videoattn.data.datasets as datasets

        self.module, self.original = datasets, datasets.decode_frames
        self.wall = self.cpu = 0.0

        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.wall += time.perf_counter() - wall
                self.cpu += time.process_time() - cpu

        datasets.decode_frames = timed
        return self

    def __exit__(self, *exc: Any) -> None:
        self.module.decode_frames = self.original


def time_floor(root: Path, many: list[str], clips: int, *, shards: bool = True) -> dict[str, float]:
    """Per 8x8 train clip, from files and from shards of the same files: the decode floor
    (decoding its frames), the whole sample in process, and the data module's train loader (1
    worker, batch 1, the device step on each batch included); wall and CPU time. Train clips
    finished in the worker (as on the CPU) and on the device (``finish_on_device``, as on an
    accelerator: the worker ships the windows, the device step finishes them, here on the CPU)."""
    from videoattn.data.datasets import ShardSamples, VideoClips
    from videoattn.data.samplers import sample_seed
    from videoattn.data.shards import VideoShardDataset

    files = write_list(root, "floor.txt", many)
    sources: dict[str, str] = {"files": files}
    if shards:
        sources["shards"] = write_bench_shards(many, root / "shards_train")
    out = {}
    for finish, suffix in (("worker", ""), ("device", "_dev")):
        for kind, source in sources.items():
            if kind == "files":
                dataset = ours_datamodule(root, files, "train").datasets["train"]
                dataset.clips.finish = finish
                make = lambda i, dataset=dataset: dataset[(i % len(dataset), sample_seed(0, DRAW_EPOCH, i % len(dataset)))]  # noqa: E731
            else:
                entries = sorted(VideoShardDataset(source), key=lambda e: e.row)
                from_entries = ShardSamples(VideoClips("train", _clip(), finish=finish), seed=0)
                from_entries.set_epoch(DRAW_EPOCH)
                make = lambda i, f=from_entries, e=entries: f(e[i % len(e)])  # noqa: E731
            make(0)  # warm-up
            key = kind + suffix
            with _DecodeTimer() as decode:
                wall, cpu = time.perf_counter(), time.process_time()
                for i in range(1, clips + 1):
                    make(i)
                out[f"{key}_sample"], out[f"{key}_sample_cpu"] = (time.perf_counter() - wall) / clips, (time.process_time() - cpu) / clips
            out[f"{key}_floor"], out[f"{key}_floor_cpu"] = decode.wall / clips, decode.cpu / clips
            loader = time_loader_cpu(lambda source=source, d=finish == "device": ours_loader(root, source, "train", finish_on_device=d), clips)
            out[f"{key}_loader"], out[f"{key}_loader_worker_cpu"], out[f"{key}_loader_main_cpu"] = loader["wall"], loader["worker"], loader["main"]
    # the loader with torch's transport (a new shared-memory segment per batch), from files
    loader = time_loader_cpu(lambda: ours_loader(root, files, "train", pool_slots=0), clips)
    out["torch_loader"], out["torch_loader_worker_cpu"], out["torch_loader_main_cpu"] = loader["wall"], loader["worker"], loader["main"]
    return out


def time_read_frames(paths: list[str], clips: int, backend: str) -> float:
    """Seconds per train clip for decoding its frames alone, one thread."""
    g = torch.Generator().manual_seed(0)
    jobs = [(paths[i % len(paths)], random_clip(FPS * 10, T, TAU, generator=g)) for i in range(clips)]
    start = time.perf_counter()
    for path, idx in jobs:
        read_frames(path, idx, backend=backend, fallback=False)
    return (time.perf_counter() - start) / clips


def time_files_and_shards(paths: list[str], many: list[str], root: Path, train_clips: int, workers: tuple[int, ...]) -> dict[str, float]:
    """Seconds per train clip and per 10x3 test video, from files and from shards of the same
    files (both through KineticsDataModule), for each number of workers; the loaders alternate
    so machine noise hits both."""
    train_files, test_files = write_list(root, "train.txt", many), write_list(root, "test.txt", paths)
    train_shards = write_bench_shards(many, root / "shards_train")
    test_shards = write_bench_shards(paths, root / "shards_test")
    out = {}
    for w in workers:
        for kind, train, test in (("files", train_files, test_files), ("shards", train_shards, test_shards)):
            for mode, source, items in (("train", train, train_clips), ("test", test, len(paths) - 1)):
                timed = time_loader_cpu(lambda w=w, s=source, m=mode: ours_loader(root, s, m, workers=w), items)
                out[f"{kind}_{mode}_w{w}"], out[f"{kind}_{mode}_w{w}_cpu"] = timed["wall"], timed["worker"]
    return out


def cpu_time_files_and_shards(paths: list[str], root: Path, samples: int) -> dict[str, float]:
    """CPU seconds (this process, robust to other load) per train sample and per test video,
    from files and from shard entries already read, alternated: the per-sample cost difference."""
    from videoattn.data.datasets import ShardSamples, VideoClips
    from videoattn.data.shards import VideoShardDataset

    location = write_bench_shards(paths, root / "shards_test")
    entries = sorted(VideoShardDataset(location), key=lambda e: e.row)
    from videoattn.data.samplers import sample_seed

    records = [VideoRecord(p, 0, i) for i, p in enumerate(paths)]
    spent = {key: 0.0 for key in ("cpu_files_train", "cpu_shards_train", "cpu_files_test", "cpu_shards_test")}
    for mode, count in (("train", samples), ("test", len(paths))):
        files = VideoClipDataset(records, mode, _clip())
        shards = ShardSamples(VideoClips(mode, _clip()), seed=0)  # the same draws: seeded by (0, epoch, row)
        shards.set_epoch(DRAW_EPOCH)
        files[(0, sample_seed(0, DRAW_EPOCH, 0))], shards(entries[0])  # warm-up (and the PyAV timestamp cache of the files: as from the 2nd epoch)
        for i in range(count):
            row = i % len(paths)
            start = time.process_time()
            files[(row, sample_seed(0, DRAW_EPOCH, row))]
            middle = time.process_time()
            shards(entries[row])
            spent[f"cpu_files_{mode}"] += middle - start
            spent[f"cpu_shards_{mode}"] += time.process_time() - middle
        for key in (f"cpu_files_{mode}", f"cpu_shards_{mode}"):
            spent[key] /= count
    return spent


# ---------------------------------------------------------------------------------- annotations


def write_kinetics_csv(folder: Path, rows: int) -> tuple[Path, Path]:
    """A Kinetics-like train CSV of ``rows`` rows over 400 classes (random 11-character ids),
    and the same videos as a `path label` list; the videos themselves are not written."""
    import csv

    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", dtype=np.uint8)
    ids = letters[rng.integers(0, len(letters), (rows, 11))].view("S11").ravel().astype(str)
    starts = rng.integers(0, 300, rows)
    names = [f"class {k:03d}" for k in range(400)]
    csv_path, list_path = folder / "train.csv", folder / "train.txt"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        writer.writerows((names[i % 400], ids[i], starts[i], starts[i] + 10, "train") for i in range(rows))
    with open(list_path, "w") as f:
        f.writelines(f"train/{ids[i]}_{starts[i]:06d}_{starts[i] + 10:06d}.mp4 {i % 400}\n" for i in range(rows))
    return csv_path, list_path


def _timed(fn: Callable[[], Any], out: dict[str, float], key: str) -> Any:
    """Run ``fn``, recording its wall time as ``key`` and its process CPU time as ``key_cpu``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    out[key], out[key + "_cpu"] = time.perf_counter() - wall, time.process_time() - cpu
    return result


def time_annotations(root: Path, csv_path: Path, list_path: Path) -> dict[str, float]:
    """Seconds for each reader of the same files (and the records' memory, in bytes)."""
    import csv
    import gc
    import tracemalloc

    from videoattn.data import shards
    from videoattn.data.annotations import load_annotations, read_raw_annotations
    from videoattn.tools import check_data, shard

    def csv_module(path: Path, delimiter: str) -> int:
        """Parse every row (the floor: nothing kept)."""
        with open(path, newline="") as f:
            return sum(1 for _ in csv.reader(f, delimiter=delimiter))

    def csv_lists(path: Path) -> list[list[str]]:
        with open(path, newline="") as f:
            return list(csv.reader(f))

    out: dict[str, float] = {}
    _timed(lambda: csv_module(csv_path, ","), out, "csv_module")
    _timed(lambda: csv_lists(csv_path), out, "csv_lists")
    gc.collect()
    _timed(lambda: read_raw_annotations(csv_path.name, root), out, "read_raw")
    _timed(lambda: load_annotations(csv_path.name, root), out, "load")
    _timed(lambda: csv_module(list_path, " "), out, "list_csv_module")
    _timed(lambda: read_raw_annotations(list_path.name, root), out, "list_read_raw")
    dm = KineticsDataModule(str(root), train=csv_path.name, num_workers=0)
    _timed(lambda: dm.setup("fit"), out, "setup")
    del dm
    gc.collect()

    class Started(Exception):
        pass

    def stop(*args: Any, **kwargs: Any) -> None:
        raise Started

    for key, module, name, args in (
        ("check_data", check_data, "scan", [csv_path.name, "--root", str(root), "-o", str(root / "unreadable.tsv"), "--no-progress"]),
        ("shard", shards, "_run_parts", [csv_path.name, "--root", str(root), "--out", str(root / "shards"), "--no-progress"]),
    ):
        real = getattr(module, name)
        setattr(module, name, stop)
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            (check_data if key == "check_data" else shard).main(args)
        except Started:  # the tool's first video / part: its start-up ends here
            out[key], out[key + "_cpu"] = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            setattr(module, name, real)
    import shutil

    shutil.rmtree(root / "shards", ignore_errors=True)  # the plan of the run stopped before its parts
    gc.collect()
    tracemalloc.start()
    dm = KineticsDataModule(str(root), train=csv_path.name, num_workers=0)
    dm.setup("fit")
    gc.collect()
    out["held_bytes"] = tracemalloc.get_traced_memory()[0]
    out["peak_bytes"] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    out["records_nbytes"] = dm.records["train"].nbytes
    return out


def annotations_main(args: argparse.Namespace) -> int:
    import litdata  # noqa: F401  the shard tool's import, not counted in its start-up

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        csv_path, list_path = write_kinetics_csv(root, args.rows)
        runs: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            for key, value in time_annotations(root, csv_path, list_path).items():
                runs.setdefault(key, []).append(value)
        med = {k: statistics.median(v) for k, v in runs.items()}
        rows = args.rows
        print(f"annotations: a {rows:,}-row Kinetics CSV ({csv_path.stat().st_size / 2**20:.1f} MB) and the same videos as a `path label` list "
              f"({list_path.stat().st_size / 2**20:.1f} MB); medians of {args.repeats} runs; x = time / the csv module's on the same file; "
              "wall time, then this process's CPU time (robust to other load on the machine)")
        print(f"{'what':<62}{'wall s':>8}{'rows/s':>10}{'x csv':>7}{'CPU s':>8}{'x csv':>7}")
        lines = (
            ("csv module: csv.reader over the CSV, every row parsed", "csv_module", "csv_module"),
            ("csv module: list(csv.reader(...)), the rows kept", "csv_lists", "csv_module"),
            ("read_raw_annotations (Kinetics CSV: paths, labels)", "read_raw", "csv_module"),
            ("load_annotations (+ class names, records)", "load", "csv_module"),
            ("KineticsDataModule.setup('fit')", "setup", "csv_module"),
            ("videoattn check-data start-up (to the first video)", "check_data", "csv_module"),
            ("videoattn shard start-up (to the first part; litdata imported)", "shard", "csv_module"),
            ("csv module: csv.reader(delimiter=' ') over the list, parsed", "list_csv_module", "list_csv_module"),
            ("read_raw_annotations (`path label` list)", "list_read_raw", "list_csv_module"),
        )
        for what, key, floor in lines:
            wall, cpu = med[key], med[key + "_cpu"]
            print(f"{what:<62}{wall:>8.3f}{rows / wall:>10,.0f}{wall / med[floor]:>6.2f}x{cpu:>8.3f}{cpu / med[floor + '_cpu']:>6.2f}x")
        print(f"records after setup: {med['held_bytes'] / 2**20:.1f} MB held (tracemalloc; {med['held_bytes'] / rows:.0f} bytes per row), "
              f"{med['records_nbytes'] / 2**20:.1f} MB in VideoRecords' arrays; peak during setup {med['peak_bytes'] / 2**20:.1f} MB")
    path = results_file.chosen(args.results, "bench_annotations")
    if path:
        record = {"section": "annotations", "rows": rows, "repeats": args.repeats,
                  **{k: round(v, 4) for k, v in med.items() if not k.endswith("bytes")},
                  "held_mb": round(med["held_bytes"] / 2**20, 2), "peak_mb": round(med["peak_bytes"] / 2**20, 2)}
        print(f"results: {results_file.write(path, [record])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--train-clips", type=int, default=24, help="clips timed per train run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="where to write the videos (default: a temp dir)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="DataLoader workers for files against shards")
    parser.add_argument("--no-shards", action="store_true", help="skip files against shards (needs LitData: the shards extra)")
    parser.add_argument("--only", choices=("annotations",), default=None, help="run only this section")
    parser.add_argument("--rows", type=int, default=240_000, help="rows of the annotation list (--only annotations)")
    results_file.add_argument(parser, "bench_data")
    args = parser.parse_args(argv)
    if args.only == "annotations":
        return annotations_main(args)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        paths = kinetics_like_videos(root, args.videos)
        size_kb = statistics.mean(Path(p).stat().st_size for p in paths) / 1024
        print(f"{args.videos} videos, 10 s, 30 fps, 340x256 H.264 (mean {size_kb:.0f} kB); medians of {args.repeats} runs; 1 worker, 1 thread")
        rows: dict[str, list[float]] = {}
        # train: a repeated path list gives enough clips for pytorchvideo's one-clip-per-video iteration
        many = (paths * (args.train_clips // len(paths) + 2))[: args.train_clips + 1]
        train_list, test_list = write_list(root, "train.txt", many), write_list(root, "test.txt", paths)

        def add(key: str, value: float) -> None:
            rows.setdefault(key, []).append(value)

        for _ in range(args.repeats):
            for key, value in time_floor(root, many, args.train_clips, shards=not args.no_shards).items():
                add(key, value)
            if not args.no_shards:
                for key, value in time_files_and_shards(paths, many, root, args.train_clips, tuple(args.workers)).items():
                    add(key, value)
                for key, value in cpu_time_files_and_shards(paths, root, args.train_clips).items():
                    add(key, value)
            add("ours_train", time_loader(lambda: ours_loader(root, train_list, "train"), args.train_clips))
            add("ptv_train", time_loader(lambda many=many: ptv_loader(many, "train", 1), args.train_clips))
            # repeated augmentation: 2 clips per decode; time per video / 2 = time per clip
            add("ours_train_x2", time_loader(lambda: ours_loader(root, train_list, "train", 2), args.train_clips // 2) / 2)
            add("ours_test", time_loader(lambda: ours_loader(root, test_list, "test"), len(paths) - 1))
            # pytorchvideo yields one item per temporal clip (3 crops each): 10 items per video
            add("ptv_test", 10 * time_loader(lambda: ptv_loader(paths, "test", 10), 10 * (len(paths) - 1)))
            add("floor_pyav", time_read_frames(paths, args.train_clips, "pyav"))
            add("floor_decord", time_read_frames(paths, args.train_clips, "decord"))
        med = {k: statistics.median(v) for k, v in rows.items()}
        print(f"\n{'what':<44}{'videoattn':>12}{'pytorchvideo':>14}{'ratio':>8}")
        print(f"{'train 8x8 clips/s':<44}{1 / med['ours_train']:>12.2f}{1 / med['ptv_train']:>14.2f}{med['ptv_train'] / med['ours_train']:>7.2f}x")
        print(f"{'train 8x8 clips/s, 2 clips per decode':<44}{1 / med['ours_train_x2']:>12.2f}{1 / med['ptv_train']:>14.2f}{med['ptv_train'] / med['ours_train_x2']:>7.2f}x")
        print(f"{'test 10x3-view videos/s':<44}{1 / med['ours_test']:>12.2f}{1 / med['ptv_test']:>14.2f}{med['ptv_test'] / med['ours_test']:>7.2f}x")
        print(f"\nthe loader's overhead, train 8x8 clips ({args.train_clips} per run), ms per clip: the decode floor (decoding the")
        print("clip's frames), the whole sample in process, the data module's train loader (1 worker, batch 1, its device step on")
        print("each batch: normalising, and finishing the clips when the worker ships them unfinished); x = / floor. Wall time, then")
        print("CPU time (robust to other load; the loader's: its worker in steady state + the main process's device step)")
        print("  finished in the worker (CPU runs), then on the device (accelerator runs: here the device is this CPU)")
        print(f"{'':<12}{'floor':>8}{'sample in process':>20}{'train loader':>20}   {'CPU floor':>10}{'sample':>16}{'loader worker + main':>28}")
        kinds = ("files",) + (() if args.no_shards else ("shards",))
        for key in [k for k in kinds] + [k + "_dev" for k in kinds]:
            f, fc = med[f"{key}_floor"], med[f"{key}_floor_cpu"]
            sample, loader, sample_cpu = med[f"{key}_sample"], med[f"{key}_loader"], med[f"{key}_sample_cpu"]
            worker, main_cpu = med[f"{key}_loader_worker_cpu"], med[f"{key}_loader_main_cpu"]
            name = key.replace("_dev", ", device")
            print(f"{name:<12}{1000 * f:>8.1f}{1000 * sample:>12.1f} ({sample / f:.2f}x){1000 * loader:>12.1f} ({loader / f:.2f}x)   "
                  f"{1000 * fc:>10.1f}{1000 * sample_cpu:>8.1f} ({sample_cpu / fc:.2f}x){1000 * worker:>11.1f} ({worker / fc:.2f}x) + {1000 * main_cpu:.1f}")
        f, fc, loader, worker, main_cpu = (med[k] for k in ("files_floor", "files_floor_cpu", "torch_loader", "torch_loader_worker_cpu", "torch_loader_main_cpu"))
        print(f"{'files, worker, pool_slots=0 (torch transport)':<40}{1000 * loader:>12.1f} ({loader / f:.2f}x){'':<29}{1000 * worker:>11.1f} ({worker / fc:.2f}x) + {1000 * main_cpu:.1f}")
        print(f"backends, read_frames per train clip: PyAV {1000 * med['floor_pyav']:.1f} ms, decord {1000 * med['floor_decord']:.1f} ms "
              f"(decord/PyAV {med['floor_decord'] / med['floor_pyav']:.2f}x)")
        if not args.no_shards:
            print(f"\n{'from files against from shards (same files)':<44}{'files':>12}{'shards':>14}{'shards/files':>14}")
            for w in args.workers:
                for what, key in (("train 8x8 clips/s", "train"), ("test 10x3-view videos/s", "test")):
                    files, shards = med[f"files_{key}_w{w}"], med[f"shards_{key}_w{w}"]
                    print(f"{what + f', {w} worker' + 's' * (w > 1):<44}{1 / files:>12.2f}{1 / shards:>14.2f}{files / shards:>13.2f}x")
                    files, shards = med[f"files_{key}_w{w}_cpu"], med[f"shards_{key}_w{w}_cpu"]
                    print(f"{'  worker CPU ms per ' + ('clip' if key == 'train' else 'video') + ', steady state':<44}{1000 * files:>12.1f}{1000 * shards:>14.1f}{files / shards:>13.2f}x")
            for what, key in (("train sample, CPU ms in process", "train"), ("10x3 test video, CPU ms in process", "test")):
                files, shards = med[f"cpu_files_{key}"], med[f"cpu_shards_{key}"]
                print(f"{what:<44}{1000 * files:>12.1f}{1000 * shards:>14.1f}{files / shards:>13.2f}x")
        path = results_file.chosen(args.results, "bench_data")
        if path:
            print(f"results: {results_file.write(path, [results_record(med, args)])}")
    return 0


def results_record(med: dict[str, float], args: argparse.Namespace) -> dict[str, Any]:
    """One run as a results line: the medians (seconds) and the ratios the docs' tables show
    (docs/benchmarks/data.md): against pytorchvideo, the loader against the decode floor, shards
    against files."""
    vs = {"train": med["ptv_train"] / med["ours_train"], "train_2_per_decode": med["ptv_train"] / med["ours_train_x2"],
          "test": med["ptv_test"] / med["ours_test"]}
    overhead: dict[str, dict[str, float]] = {}
    kinds = ("files",) + (() if args.no_shards else ("shards",))
    for key in [*kinds, *(k + "_dev" for k in kinds)]:
        f, fc = med[f"{key}_floor"], med[f"{key}_floor_cpu"]
        overhead[key] = {"floor_ms": 1000 * f, "sample_x": med[f"{key}_sample"] / f, "loader_x": med[f"{key}_loader"] / f,
                         "loader_worker_cpu_x": med[f"{key}_loader_worker_cpu"] / fc, "main_cpu_ms": 1000 * med[f"{key}_loader_main_cpu"]}
    overhead["torch"] = {"loader_x": med["torch_loader"] / med["files_floor"],
                         "loader_worker_cpu_x": med["torch_loader_worker_cpu"] / med["files_floor_cpu"],
                         "main_cpu_ms": 1000 * med["torch_loader_main_cpu"]}
    shards: dict[str, float] = {}
    if not args.no_shards:
        for w in args.workers:
            for key in ("train", "test"):
                shards[f"{key}_w{w}"] = med[f"files_{key}_w{w}"] / med[f"shards_{key}_w{w}"]
                shards[f"{key}_w{w}_worker_cpu"] = med[f"files_{key}_w{w}_cpu"] / med[f"shards_{key}_w{w}_cpu"]
        shards["cpu_train"], shards["cpu_test"] = (med[f"cpu_files_{k}"] / med[f"cpu_shards_{k}"] for k in ("train", "test"))
    rounded = lambda d: {k: round(v, 4) for k, v in d.items()}  # noqa: E731
    return {"vs_pytorchvideo": rounded(vs), "overhead": {k: rounded(v) for k, v in overhead.items()}, "shards_vs_files": rounded(shards),
            "videos": args.videos, "train_clips": args.train_clips, "repeats": args.repeats, "workers": list(args.workers),
            "medians_s": rounded(med)}

if __name__ == "__main__":
    sys.exit(main())
