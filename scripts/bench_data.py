"""Data-loading benchmark: videoattn's VideoClipDataset against pytorchvideo 0.1.5's
LabeledVideoDataset (PyAV decoder, decode_audio=False, its Kinetics recipe's transforms
written on tensors because pytorchvideo.transforms does not import), on Kinetics-like files
(10 s, 30 fps, 340x256 H.264) that the script writes. One DataLoader worker each, batches of one video.
  train: 8x8 clips/s (random clip, short side 256-320, crop 224, flip, normalise); also with
         2 clips per decode (repeated augmentation), which pytorchvideo does not offer
  test : 10x3-view videos/s (short side 256, three 256 crops)
  shards: the same train clips/s and test videos/s read from LitData shards of the same files
         (videoattn shard) against the files, with 1 and 2 DataLoader workers, and the CPU time
         of one sample in process (robust to other load on the machine)
  floor: the train loader's time per clip against the time spent decoding its frames
  backends: read_frames with PyAV vs decord on the same train clips
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

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from videoattn.data.annotations import VideoRecord
from videoattn.data.clip import ClipSettings
from videoattn.data.collate import VideoCollate
from videoattn.data.datasets import VideoClipDataset
from videoattn.data.decode import decode_frames, read_frames
from videoattn.data.sampling import random_clip
from videoattn.video_io import write_video

T, TAU, FPS = 8, 8, 30
MEAN, STD = 0.45, 0.225


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


def ours_loader(paths: list[str], mode: str, clips_per_video: int = 1, workers: int = 1) -> DataLoader:
    records = [VideoRecord(p, 0, i) for i, p in enumerate(paths)]
    ds = VideoClipDataset(records, mode, ClipSettings(num_frames=T, sampling_rate=TAU, test_views=(10, 3), clips_per_video=clips_per_video))
    return DataLoader(ds, batch_size=1, num_workers=workers, collate_fn=VideoCollate(mode), worker_init_fn=_worker_init)


# ------------------------------------------------------------------------------- shards


class _EntryClips(VideoClipDataset):
    """VideoClipDataset's per-video clip code, fed a ShardEntry where it takes a path: the
    entry's bytes are decoded in memory with its VideoInfo (no probe). A stand-in until the
    data module reads shards itself."""

    def _decode(self, entry, select):  # type: ignore[override]
        from videoattn.data.transforms import to_tchw

        frames, inverse = decode_frames(entry.video, select, info=entry.info, name=entry.path, backend=self.backend, threads=self.decode_threads)
        return to_tchw(frames), inverse


class EntryToSample:
    """ShardEntry -> the sample dict VideoClipDataset gives for the same video."""

    def __init__(self, mode: str) -> None:
        self.clips = _EntryClips([], mode, ClipSettings(num_frames=T, sampling_rate=TAU, test_views=(10, 3)))

    def __call__(self, entry) -> dict:
        if self.clips.mode == "train":
            video = self.clips._train_clips(entry)
        else:
            video = self.clips._views(entry, 10, 3, self.clips.test_crop_size)
        return {"video": video, "label": entry.label, "video_index": entry.row, "path": entry.path, "skipped": []}


def shard_loader(location: str, mode: str, workers: int = 1):
    from litdata import StreamingDataLoader

    from videoattn.data.shards import VideoShardDataset

    ds = VideoShardDataset(location, shuffle=mode == "train", transform=EntryToSample(mode))
    return StreamingDataLoader(ds, batch_size=1, num_workers=workers, collate_fn=VideoCollate(mode), worker_init_fn=_worker_init)


def write_bench_shards(paths: list[str], out: Path) -> str:
    from videoattn.data.shards import write_shards

    if not (out / "index.json").exists():  # several chunks, so that 2 workers share the work
        write_shards([VideoRecord(p, 0, i) for i, p in enumerate(paths)], out, classes=["0"], chunk_bytes="1MB", progress=False)
    return str(out)


# --------------------------------------------------------------------------------- timing


def time_loader(make_loader, items: int) -> float:
    """Seconds per item (clip or video) after the first one (worker start-up excluded)."""
    loader = make_loader()
    it = iter(loader)
    next(it)
    start = time.perf_counter()
    got = 0
    for _ in range(items):
        try:
            next(it)
        except StopIteration:
            break
        got += 1
    elapsed = time.perf_counter() - start
    del it
    return elapsed / max(got, 1)


def time_loader_cpu(make_loader, items: int) -> tuple[float, float]:
    """(wall seconds per item after the first, CPU seconds of the loader's workers per item over
    their whole life). Worker CPU time counts the work done whatever else loads the machine."""
    import resource

    def children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # workers, once joined
        return usage.ru_utime + usage.ru_stime

    before = children()
    wall = time_loader(make_loader, items)
    import gc

    gc.collect()  # the iterator's workers are joined when it is collected
    return wall, (children() - before) / (items + 1)


def time_in_process(paths: list[str], clips: int) -> tuple[float, float]:
    """(seconds per train sample, of which decoding) for the dataset called in this process,
    on random clips: decoding those frames is the floor of the loader."""
    import videoattn.data.datasets as datasets

    spent = [0.0]
    original = datasets.decode_frames

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    datasets.decode_frames = timed
    try:
        ds = VideoClipDataset([VideoRecord(p, 0, i) for i, p in enumerate(paths)], "train", ClipSettings(num_frames=T, sampling_rate=TAU))
        start = time.perf_counter()
        for i in range(clips):
            ds[i % len(paths)]
        total = time.perf_counter() - start
    finally:
        datasets.decode_frames = original
    return total / clips, spent[0] / clips


def time_read_frames(paths: list[str], clips: int, backend: str) -> float:
    """Seconds per train clip for decoding its frames alone (the floor), one thread."""
    g = torch.Generator().manual_seed(0)
    jobs = [(paths[i % len(paths)], random_clip(FPS * 10, T, TAU, generator=g)) for i in range(clips)]
    start = time.perf_counter()
    for path, idx in jobs:
        read_frames(path, idx, backend=backend, fallback=False)
    return (time.perf_counter() - start) / clips


def time_files_and_shards(paths: list[str], many: list[str], root: Path, train_clips: int, workers: tuple[int, ...]) -> dict[str, float]:
    """Seconds per train clip and per 10x3 test video, from files and from shards of the same
    files, for each number of workers; the loaders alternate so machine noise hits both."""
    train_shards = write_bench_shards(many, root / "shards_train")
    test_shards = write_bench_shards(paths, root / "shards_test")
    out = {}
    for w in workers:
        for source, make_train, make_test in (
            ("files", lambda w=w: ours_loader(many, "train", workers=w), lambda w=w: ours_loader(paths, "test", workers=w)),
            ("shards", lambda w=w: shard_loader(train_shards, "train", workers=w), lambda w=w: shard_loader(test_shards, "test", workers=w)),
        ):
            out[f"{source}_train_w{w}"], out[f"{source}_train_w{w}_cpu"] = time_loader_cpu(make_train, train_clips)
            out[f"{source}_test_w{w}"], out[f"{source}_test_w{w}_cpu"] = time_loader_cpu(make_test, len(paths) - 1)
    return out


def cpu_time_files_and_shards(paths: list[str], root: Path, samples: int) -> dict[str, float]:
    """CPU seconds (this process, robust to other load) per train sample and per test video,
    from files and from shard entries already read, alternated: the per-sample cost difference."""
    from videoattn.data.shards import VideoShardDataset

    location = write_bench_shards(paths, root / "shards_test")
    entries = sorted(VideoShardDataset(location), key=lambda e: e.row)
    records = [VideoRecord(p, 0, i) for i, p in enumerate(paths)]
    spent = {key: 0.0 for key in ("cpu_files_train", "cpu_shards_train", "cpu_files_test", "cpu_shards_test")}
    for mode, count in (("train", samples), ("test", len(paths))):
        files = VideoClipDataset(records, mode, ClipSettings(num_frames=T, sampling_rate=TAU, test_views=(10, 3)))
        shards = EntryToSample(mode)
        files[0], shards(entries[0])  # warm-up (and the PyAV timestamp cache of the files: as from the 2nd epoch)
        for i in range(count):
            start = time.process_time()
            files[i % len(paths)]
            middle = time.process_time()
            shards(entries[i % len(paths)])
            spent[f"cpu_files_{mode}"] += middle - start
            spent[f"cpu_shards_{mode}"] += time.process_time() - middle
        for key in (f"cpu_files_{mode}", f"cpu_shards_{mode}"):
            spent[key] /= count
    return spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--train-clips", type=int, default=24, help="clips timed per train run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="where to write the videos (default: a temp dir)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="DataLoader workers for files against shards")
    parser.add_argument("--no-shards", action="store_true", help="skip files against shards (needs LitData: the shards extra)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workdir or tmp)
        paths = []
        for i in range(args.videos):
            p = root / f"k{i}.mp4"
            if not p.exists():
                kinetics_like_video(p, seed=i)
            paths.append(str(p))
        size_kb = statistics.mean(Path(p).stat().st_size for p in paths) / 1024
        print(f"{args.videos} videos, 10 s, 30 fps, 340x256 H.264 (mean {size_kb:.0f} kB); medians of {args.repeats} runs; 1 worker, 1 thread")
        rows: dict[str, list[float]] = {k: [] for k in ("ours_train", "ours_train_x2", "ptv_train", "ours_test", "ptv_test", "sample", "decode", "floor_pyav", "floor_decord")}
        # train: a repeated path list gives enough clips for pytorchvideo's one-clip-per-video iteration
        many = (paths * (args.train_clips // len(paths) + 2))[: args.train_clips + 1]
        for _ in range(args.repeats):
            if not args.no_shards:
                for key, value in time_files_and_shards(paths, many, root, args.train_clips, tuple(args.workers)).items():
                    rows.setdefault(key, []).append(value)
                for key, value in cpu_time_files_and_shards(paths, root, args.train_clips).items():
                    rows.setdefault(key, []).append(value)
            rows["ours_train"].append(time_loader(lambda many=many: ours_loader(many, "train"), args.train_clips))
            rows["ptv_train"].append(time_loader(lambda many=many: ptv_loader(many, "train", 1), args.train_clips))
            # repeated augmentation: 2 clips per decode; time per video / 2 = time per clip
            rows["ours_train_x2"].append(time_loader(lambda many=many: ours_loader(many, "train", 2), args.train_clips // 2) / 2)
            rows["ours_test"].append(time_loader(lambda: ours_loader(paths, "test"), len(paths) - 1))
            # pytorchvideo yields one item per temporal clip (3 crops each): 10 items per video
            rows["ptv_test"].append(10 * time_loader(lambda: ptv_loader(paths, "test", 10), 10 * (len(paths) - 1)))
            sample, decode = time_in_process(paths, 4 * args.train_clips)
            rows["sample"].append(sample)
            rows["decode"].append(decode)
            rows["floor_pyav"].append(time_read_frames(paths, args.train_clips, "pyav"))
            rows["floor_decord"].append(time_read_frames(paths, args.train_clips, "decord"))
        med = {k: statistics.median(v) for k, v in rows.items()}
        print(f"\n{'what':<44}{'videoattn':>12}{'pytorchvideo':>14}{'ratio':>8}")
        print(f"{'train 8x8 clips/s':<44}{1 / med['ours_train']:>12.2f}{1 / med['ptv_train']:>14.2f}{med['ptv_train'] / med['ours_train']:>7.2f}x")
        print(f"{'train 8x8 clips/s, 2 clips per decode':<44}{1 / med['ours_train_x2']:>12.2f}{1 / med['ptv_train']:>14.2f}{med['ptv_train'] / med['ours_train_x2']:>7.2f}x")
        print(f"{'test 10x3-view videos/s':<44}{1 / med['ours_test']:>12.2f}{1 / med['ptv_test']:>14.2f}{med['ptv_test'] / med['ours_test']:>7.2f}x")
        print(f"\nfloor (decoding the frames of {4 * args.train_clips} random train clips, in process): {1000 * med['decode']:.1f} ms/clip; "
              f"whole sample in process {1000 * med['sample']:.1f} ms ({med['sample'] / med['decode']:.2f}x the floor); "
              f"train loader {1000 * med['ours_train']:.1f} ms/clip ({med['ours_train'] / med['decode']:.2f}x the floor)")
        print(f"backends, read_frames per train clip: PyAV {1000 * med['floor_pyav']:.1f} ms, decord {1000 * med['floor_decord']:.1f} ms "
              f"(decord/PyAV {med['floor_decord'] / med['floor_pyav']:.2f}x)")
        if not args.no_shards:
            print(f"\n{'from files against from shards (same files)':<44}{'files':>12}{'shards':>14}{'shards/files':>14}")
            for w in args.workers:
                for what, key in (("train 8x8 clips/s", "train"), ("test 10x3-view videos/s", "test")):
                    files, shards = med[f"files_{key}_w{w}"], med[f"shards_{key}_w{w}"]
                    print(f"{what + f', {w} worker' + 's' * (w > 1):<44}{1 / files:>12.2f}{1 / shards:>14.2f}{files / shards:>13.2f}x")
                    files, shards = med[f"files_{key}_w{w}_cpu"], med[f"shards_{key}_w{w}_cpu"]
                    print(f"{'  workers CPU ms per ' + ('clip' if key == 'train' else 'video'):<44}{1000 * files:>12.1f}{1000 * shards:>14.1f}{files / shards:>13.2f}x")
            for what, key in (("train sample, CPU ms in process", "train"), ("10x3 test video, CPU ms in process", "test")):
                files, shards = med[f"cpu_files_{key}"], med[f"cpu_shards_{key}"]
                print(f"{what:<44}{1000 * files:>12.1f}{1000 * shards:>14.1f}{files / shards:>13.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
