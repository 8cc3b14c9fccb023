"""Shards of encoded videos for clusters, in LitData's format (``index.json`` + ``chunk-*.bin``,
read by ``litdata.StreamingDataset`` from a local folder, S3, GCS, ...).

Each entry holds one video's encoded file unchanged, with what the clip samplers need, so that
training decodes from memory and never probes: ``video`` (bytes), ``label`` (class index, -1
if unlabelled), ``row`` (its row in the annotation list), ``path`` (the original file), and its
:class:`~videoattn.data.decode.VideoInfo` (frame count, frame rate and frame timestamps, probed
once at shard time). ``classes.txt`` (class names in index order), ``unreadable_videos.tsv``
(path, reason: the videos left out) and ``shards.json`` (what was written from what) lie next
to the chunks.

  write_shards(records, out, classes=...)      parallel, resumable (see below)
  VideoShardDataset(location, shuffle=...)     yields ShardEntry, or transform(entry):
                                               KineticsDataModule gives datasets.ShardSamples,
                                               the clip code of files, fed from memory
Resuming: the list is cut into parts of ``part_size`` videos in list order; each part is
written by its own LitData ``BinaryWriter`` (chunk files ``chunk-{part}-{i}.bin``) and is done
when its marker ``.parts/{part}.tsv`` (its unreadable videos) exists. A rerun of the same
command skips the parts done and rewrites the others from scratch, so an interrupted run
writes no duplicates; the part indexes are merged into ``index.json`` at the end.
"""
from __future__ import annotations

import csv
import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from videoattn.data.annotations import VideoRecord, VideoRecords, read_class_list, write_class_list
from videoattn.data.decode import DecodeError, VideoInfo, check_video, decode_frames, probe_video

__all__ = [
    "CHECKS",
    "ShardEntry",
    "ShardSummary",
    "VideoShardDataset",
    "is_shard_location",
    "shard_classes",
    "write_shards",
]

# LitData asks PyPI for a newer release of itself when a dataset is built (up to a 30 s timeout
# per process, on cluster nodes without internet): off unless the user sets it.
os.environ.setdefault("LITDATA_DISABLE_VERSION_CHECK", "1")

CHECKS = ("probe", "quick", "full")
FORMAT = "videoattn-shards/1"
CLASSES_FILE, SUMMARY_FILE, UNREADABLE_FILE = "classes.txt", "shards.json", "unreadable_videos.tsv"
INDEX_FILE = "index.json"  # LitData's
REMOTE_PREFIXES = ("s3://", "gs://", "r2://", "azure://", "hf://", "local:")
_INSTALL = "shards need LitData: pip install 'videoattn[shards]'"


@dataclass(frozen=True)
class ShardEntry:
    """One video read back from shards: its encoded file and what a sample needs."""

    video: bytes
    label: int
    row: int
    path: str
    info: VideoInfo

    @property
    def record(self) -> VideoRecord:
        return VideoRecord(self.path, self.label, self.row)


@dataclass(frozen=True)
class ShardSummary:
    """What ``write_shards`` left in ``out``: videos listed, written and left out (path -> reason)."""

    out: str
    videos: int
    written: int
    unreadable: dict[str, str]
    bytes: int


# ------------------------------------------------------------------------------- writing


def write_shards(
    records: Sequence[VideoRecord],
    out: str | os.PathLike,
    *,
    classes: Sequence[str],
    workers: int = 1,
    part_size: int = 256,
    check: str = "quick",
    chunk_bytes: str | int = "64MB",
    source: str = "",
    progress: bool = True,
) -> ShardSummary:
    """Write ``records`` (videos in list order) as shards into the local folder ``out``.

    ``check``: "probe" (frame count, rate and timestamps only), "quick" (also decode the first,
    middle and last frames, as training will: from memory with the probed info) or "full"
    (decode every frame, as ``videoattn check-data``). Unreadable videos are left out and
    listed with their reason. ``workers`` processes write parts in parallel. A rerun after an
    interruption continues (see the module docstring); a rerun of a finished job returns its
    summary; other records in a folder that holds shards raise ``ValueError``.
    """
    _require_litdata()
    if check not in CHECKS:
        raise ValueError(f"check must be one of {CHECKS}, got {check!r}")
    if part_size < 1 or workers < 1:
        raise ValueError(f"part_size and workers must be >= 1, got {part_size} and {workers}")
    if not records:
        raise ValueError("no videos to shard: the annotation list is empty")
    labels = set(np.unique(records.labels).tolist()) if isinstance(records, VideoRecords) else {r.label for r in records}
    if not labels <= set(range(-1, len(classes))):
        raise ValueError(f"labels {sorted(labels - set(range(-1, len(classes))))[:5]} are outside the {len(classes)} classes")
    if os.fspath(out).startswith(REMOTE_PREFIXES + ("file://",)):
        raise ValueError(f"out must be a local folder, got {os.fspath(out)!r}: write the shards there, then upload the folder (aws s3 sync, gsutil rsync)")
    out = Path(out)
    parts_dir = out / ".parts"
    plan = {
        "format": FORMAT,
        "videos": len(records),
        "part_size": part_size,
        "check": check,
        "chunk_bytes": chunk_bytes,
        "classes": list(classes),
        "records": (records if isinstance(records, VideoRecords) else VideoRecords.from_records(records)).digest(),
    }
    _claim(out, plan)
    if not (out / INDEX_FILE).exists():
        num_parts = -(-len(records) // part_size)
        todo = [k for k in range(num_parts) if not (parts_dir / f"{k}.tsv").exists()]
        jobs = [(k, records[k * part_size : (k + 1) * part_size], str(out), check, chunk_bytes) for k in todo]
        done_before = len(records) - sum(len(job[1]) for job in jobs)
        _run_parts(jobs, workers=workers, total=len(records), done_before=done_before, progress=progress)
        _merge(out, num_parts)
    return _finish(out, records, classes, source, check)


def _claim(out: Path, plan: dict[str, Any]) -> None:
    """Create ``out`` with its plan, or check that the plan found there is this one."""
    plan_file = out / ".parts" / "plan.json"
    if plan_file.exists():
        found = json.loads(plan_file.read_text())
        if found != plan:
            differ = sorted(k for k in plan if found.get(k) != plan[k])
            raise ValueError(f"{out} holds shards of another job (differs in {', '.join(differ)}): write them to another folder, or delete it")
        return
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty and holds no videoattn shards: choose an empty or new folder")
    plan_file.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(plan_file, json.dumps(plan, indent=1))


def _run_parts(jobs: list[tuple], *, workers: int, total: int, done_before: int, progress: bool) -> None:
    from tqdm import tqdm

    bar = tqdm(total=total, initial=done_before, unit="video", disable=not progress, desc="shard")
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            _write_part(job, tick=bar.update)
    else:
        context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        counter = context.Value("l", 0)
        with context.Pool(min(workers, len(jobs)), initializer=_set_counter, initargs=(counter,)) as pool:
            pending = pool.map_async(_write_part, jobs, chunksize=1)
            while not pending.ready():
                pending.wait(0.25)
                bar.update(done_before + counter.value - bar.n)
            pending.get()  # re-raises a worker's exception
        bar.update(done_before + counter.value - bar.n)
    bar.close()


_COUNTER: Any = None


def _set_counter(counter: Any) -> None:
    global _COUNTER
    _COUNTER = counter


def _count_one() -> None:
    with _COUNTER.get_lock():
        _COUNTER.value += 1


def _write_part(job: tuple, tick: Callable[[], Any] | None = None) -> None:
    """Write part ``k``: its chunk files, its LitData index ``{k}.index.json``, then its marker."""
    from litdata.streaming.writer import BinaryWriter

    k, records, out, check, chunk_bytes = job
    tick = tick or _count_one
    for stale in Path(out).glob(f"chunk-{k}-*.bin"):  # left by an interrupted run
        stale.unlink()
    (Path(out) / f"{k}.{INDEX_FILE}").unlink(missing_ok=True)
    with _writer_rank(k):
        writer = BinaryWriter(out, chunk_bytes=chunk_bytes)
        assert writer.rank == k  # read once, kept by the writer: chunk-{k}-*.bin, {k}.index.json
    unreadable: list[tuple[str, str]] = []
    index = 0
    for record in records:
        entry, reason = _prepare(record, check)
        if entry is None:
            unreadable.append((record.path, reason or "unknown error"))
        else:
            writer[index] = entry
            index += 1
        tick()
    writer.done()  # writes {k}.index.json (nothing when every video of the part failed)
    lines = "".join(f"{path}\t{reason}\n" for path, reason in unreadable)
    _write_atomic(Path(out) / ".parts" / f"{k}.tsv", lines)


@contextmanager
def _writer_rank(rank: int) -> Iterator[None]:
    """LitData's writers take their rank (which names their files) from this variable, as in
    ``litdata.optimize``'s workers; it is restored at once so readers here are not misled."""
    key = "DATA_OPTIMIZER_GLOBAL_RANK"
    before = os.environ.get(key)
    os.environ[key] = str(rank)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _prepare(record: VideoRecord, check: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the entry to write, None) or (None, the reason the video is left out)."""
    try:
        if not os.path.isfile(record.path):
            raise DecodeError(record.path, "no such file" if not os.path.exists(record.path) else "not a file")
        with open(record.path, "rb") as f:
            data = f.read()
        info = probe_video(data, name=record.path)
        if check == "quick":  # as training will decode: from memory, with the probed info
            decode_frames(data, lambda n: np.array(sorted({0, n // 2, n - 1})), info=info, name=record.path)
        elif check == "full":
            check_video(data, full=True, name=record.path)
    except DecodeError as exc:
        return None, exc.reason
    except (OSError, ValueError, RuntimeError) as exc:  # a crash on one file is that file's reason
        return None, f"{type(exc).__name__}: {exc}"
    pts = np.zeros(0, np.int64) if info.pts is None else np.ascontiguousarray(info.pts, dtype=np.int64)
    entry = {
        "video": data,
        "label": int(record.label),
        "row": int(record.row),
        # bytes, not str: LitData stores a str naming an existing file as that file's content
        "path": record.path.encode("utf-8"),
        "num_frames": int(info.num_frames),
        "fps": float(info.fps),
        "pts": pts,
    }
    return entry, None


def _merge(out: Path, num_parts: int) -> None:
    """The parts' LitData indexes -> ``index.json`` (litdata.complete_dataset, in part order)."""
    from litdata import complete_dataset

    if not any((out / f"{k}.{INDEX_FILE}").exists() for k in range(num_parts)):
        first = next((line for k in range(num_parts) for line in (out / ".parts" / f"{k}.tsv").read_text(encoding="utf-8").splitlines()), "")
        raise ValueError(f"no readable video: nothing was written to {out}; the first one: {first.replace(chr(9), ': ')}")
    complete_dataset(str(out))


def _finish(out: Path, records: Sequence[VideoRecord], classes: Sequence[str], source: str, check: str) -> ShardSummary:
    unreadable: dict[str, str] = {}
    for marker in sorted((out / ".parts").glob("*.tsv"), key=lambda p: int(p.stem)):
        for line in marker.read_text(encoding="utf-8").splitlines():
            path, _, reason = line.partition("\t")
            unreadable[path] = reason
    with open(out / UNREADABLE_FILE, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["path", "reason"])  # as `videoattn check-data` writes it
        writer.writerows(sorted(unreadable.items()))
    write_class_list(classes, out / CLASSES_FILE)
    index = json.loads((out / INDEX_FILE).read_text())
    written = sum(int(c["chunk_size"]) for c in index["chunks"])
    size = sum(int(c["chunk_bytes"]) for c in index["chunks"])
    summary = {"format": FORMAT, "source": source, "videos": len(records), "written": written, "unreadable": len(unreadable),
               "bytes": size, "check": check, "classes": CLASSES_FILE, "written_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    _write_atomic(out / SUMMARY_FILE, json.dumps(summary, indent=1))
    return ShardSummary(str(out), len(records), written, unreadable, size)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ------------------------------------------------------------------------------- reading


def is_shard_location(location: str | os.PathLike) -> bool:
    """True for a remote URL LitData reads, or a local folder holding LitData's ``index.json``."""
    text = os.fspath(location)
    return text.startswith(REMOTE_PREFIXES + ("file://",)) or (Path(text) / INDEX_FILE).is_file()


def shard_classes(location: str | os.PathLike, *, cache_dir: str | None = None) -> list[str]:
    """The class names written next to the shards at ``location`` (local folder or URL)."""
    url = _litdata_url(os.fspath(location))
    if not url.startswith(REMOTE_PREFIXES):
        return read_class_list(Path(url) / CLASSES_FILE)
    _require_litdata()
    import tempfile

    from litdata.streaming.downloader import get_downloader

    if cache_dir is not None:
        os.makedirs(cache_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        local = os.path.join(tmp, CLASSES_FILE)
        try:
            get_downloader(url, tmp, []).download_file(url.rstrip("/") + "/" + CLASSES_FILE, local)
        except Exception as exc:  # noqa: BLE001 - any storage error: say which file
            raise ValueError(f"cannot read {CLASSES_FILE} of the shards at {location}: {type(exc).__name__}: {exc}") from None
        return read_class_list(local)


def _litdata_url(location: str) -> str:
    """``file:///x`` -> ``local:/x`` (LitData reads local folders as remote storage with the
    ``local:`` prefix, copying chunks into its cache; it has no ``file://``)."""
    return "local:" + location[len("file://") :] if location.startswith("file://") else location


def _require_litdata() -> None:
    try:
        import litdata  # noqa: F401
    except ImportError:
        raise ImportError(_INSTALL) from None


def _to_entry(item: dict[str, Any]) -> ShardEntry:
    """A raw LitData item -> ShardEntry. LitData hands bytes fields out as memoryviews over the
    mapped chunk, which cannot cross a DataLoader worker boundary: copied into bytes here."""
    pts = np.asarray(item["pts"], dtype=np.int64)
    info = VideoInfo(int(item["num_frames"]), float(item["fps"]), pts.copy() if len(pts) else None)
    return ShardEntry(bytes(item["video"]), int(item["label"]), int(item["row"]), bytes(item["path"]).decode("utf-8"), info)


class _DropLastWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "disabled the `drop_last` option" not in record.getMessage()


def __getattr__(name: str) -> Any:
    """``VideoShardDataset`` is made on first use, so that importing this module (to write
    shards, or to ask ``is_shard_location``) does not import LitData."""
    if name == "VideoShardDataset":
        cls = _dataset_class()
        globals()[name] = cls  # once: pickle finds the class here by its name
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _dataset_class() -> type:
    _require_litdata()
    from litdata import StreamingDataset

    class VideoShardDataset(StreamingDataset):
        """The entries of a shard location as :class:`ShardEntry` (or ``transform(entry)``).

        ``location``: a local folder written by ``videoattn shard``, or a URL LitData reads
        (``s3://``, ``gs://``, ...; ``local:/path`` or ``file:///path`` read a local folder as
        remote storage, through LitData's cache). Iterate it, or through
        ``litdata.StreamingDataLoader`` (stateful: resumable mid-epoch), or index it (``ds[i]``).

        Evaluation: ``shuffle=False, drop_last=False`` (the defaults) give every entry exactly once
        across processes and DataLoader workers, in unequal shares when the count does not divide
        (LitData splits chunks, then items, between ranks; tested on 1-4 processes x 0-3 workers).
        Training: ``shuffle=True`` (chunk order and items within chunks, reseeded by ``set_epoch``)
        and ``drop_last=True`` (equal shares across ranks, a few entries left out per epoch).
        ``transform`` runs in the worker that reads the entry (e.g. decode it into a sample); if it
        has ``set_epoch``, it is told the dataset's epoch (LitData's count, from 1) before each entry.
        """

        def __init__(
            self,
            location: str | os.PathLike,
            *,
            shuffle: bool = False,
            drop_last: bool = False,
            seed: int = 0,
            transform: Callable[[ShardEntry], Any] | None = None,
            cache_dir: str | None = None,
            max_cache_size: int | str = "50GB",
            **streaming_kwargs: Any,
        ) -> None:
            url = _litdata_url(os.fspath(location))
            if not url.startswith(REMOTE_PREFIXES) and not (Path(url) / INDEX_FILE).is_file():
                raise ValueError(f"{location} holds no shards (no {INDEX_FILE}): write them with `videoattn shard`")
            transforms: list[Callable[[Any], Any]] = [_to_entry] + ([transform] if transform is not None else [])
            quiet = _DropLastWarning()
            log = logging.getLogger("litdata.streaming.dataset")
            if not drop_last:  # unpadded evaluation shares are what we want: no warning about them
                log.addFilter(quiet)
            try:
                super().__init__(
                    url, cache_dir=cache_dir, shuffle=shuffle, drop_last=drop_last, seed=seed,
                    max_cache_size=max_cache_size, transform=transforms, **streaming_kwargs,
                )
            finally:
                log.removeFilter(quiet)
            self.location = os.fspath(location)
            self._epoch_aware = transform if callable(getattr(transform, "set_epoch", None)) else None

        def __getitem__(self, index: Any) -> Any:
            if self._epoch_aware is not None:
                self._epoch_aware.set_epoch(self.current_epoch)
            return super().__getitem__(index)

        def __iter__(self) -> Any:
            # LitData reads the rank and process count once, when the dataset is built: built before
            # the process group started, every process would read the same entries.
            import torch.distributed as dist

            built = (self.distributed_env.global_rank, self.distributed_env.world_size)
            if dist.is_available() and dist.is_initialized() and (dist.get_rank(), dist.get_world_size()) != built:
                raise RuntimeError(
                    f"VideoShardDataset({self.location!r}) was built as process {built[0]} of {built[1]}, but torch.distributed "
                    f"runs process {dist.get_rank()} of {dist.get_world_size()}: build it after the process group starts (in the "
                    "DataModule's setup() or its *_dataloader methods), else processes read the same videos"
                )
            return super().__iter__()

    VideoShardDataset.__module__, VideoShardDataset.__qualname__ = __name__, "VideoShardDataset"
    return VideoShardDataset
