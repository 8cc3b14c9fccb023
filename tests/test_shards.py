"""Tests for videoattn.data.shards and `videoattn shard`: shards of tiny synthetic videos read
back with LitData (every video once, same bytes, labels, frame counts and timestamps), the
same frames decoded from an entry as from its file, unreadable videos left out and listed,
parallel writing equal to serial, resume after an interruption without duplicates, a local
folder read as remote storage (``local:`` / ``file://``), and exactly-once evaluation reading
under 2 gloo processes (with 0 and 2 DataLoader workers) while training reading shuffles.
"""
from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from videoattn.cli import main as cli_main
from videoattn.data import shards as shards_module
from videoattn.data.annotations import VideoRecord, read_class_list
from videoattn.data.decode import DecodeError, probe_video, read_frames
from videoattn.data.shards import ShardEntry, VideoShardDataset, is_shard_location, shard_classes, write_shards

CLASSES = ["abseiling", "yoga", "zumba"]


def noisy_corrupt(path: Path) -> Path:
    """A video whose header probes fine but whose data fails to decode in the middle."""
    from videoattn.video_io import write_video

    frames = np.random.default_rng(1).integers(0, 256, (30, 32, 64, 3), dtype=np.uint8)
    write_video(path, frames, fps=30, gop=10)
    data = bytearray(path.read_bytes())
    start = len(data) // 2
    data[start : start + 3000] = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def dataset(tmp_path: Path, make_video) -> dict:
    """9 good videos (3 classes, 12-20 frames, one at 25 fps) listed in `path,label` lines, with
    a file of zeros, a missing file and a video corrupt in the middle among them."""
    lines = []
    for i in range(9):
        make_video(f"videos/v{i}.mp4", num_frames=12 + i, height=32, width=64, seed=i, fps=25 if i == 4 else 30)
        lines.append(f"videos/v{i}.mp4,{CLASSES[i % 3]}")
    (tmp_path / "videos/zeros.mp4").write_bytes(b"\0" * 400)
    noisy_corrupt(tmp_path / "videos/corrupt.mp4")
    lines.insert(2, "videos/zeros.mp4,yoga")  # row 2
    lines.insert(5, "videos/missing.mp4,zumba")  # row 5
    lines.insert(7, "videos/corrupt.mp4,zumba")  # row 7
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    rows = {i: line.split(",") for i, line in enumerate(lines)}
    good = {row: (str(tmp_path / path), CLASSES.index(label)) for row, (path, label) in rows.items() if path.startswith("videos/v")}
    return {"root": tmp_path, "good": good, "bad_rows": [2, 5, 7]}


def records_of(dataset: dict) -> list[VideoRecord]:
    root: Path = dataset["root"]
    out = []
    for row, line in enumerate((root / "train.csv").read_text().splitlines()):
        path, label = line.split(",")
        out.append(VideoRecord(str(root / path), CLASSES.index(label), row))
    return out


def read_all(location: str, **kwargs) -> list[ShardEntry]:
    return list(VideoShardDataset(location, **kwargs))


def test_cli_writes_every_readable_video_once_with_its_bytes_label_and_info(dataset: dict, capsys) -> None:
    root: Path = dataset["root"]
    out = root / "shards"
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    code = None
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["shard", "train.csv", "--root", str(root), "--out", str(out), "-j", "2", "--part-size", "3",
                  "--chunk-bytes", "3000", "--classes", "classes.txt", "--no-progress"])
    code = exit_info.value.code
    assert code == 0
    printed = capsys.readouterr().out
    assert "9 of 12 videos in shards" in printed and "3 unreadable videos left out" in printed
    assert is_shard_location(out) and is_shard_location("s3://bucket/k400/train") and not is_shard_location(root)
    assert read_class_list(out / "classes.txt") == CLASSES == shard_classes(out)
    entries = read_all(str(out))
    assert sorted(e.row for e in entries) == sorted(dataset["good"])  # each readable video once
    for entry in entries:
        path, label = dataset["good"][entry.row]
        assert entry.path == path and entry.label == label and entry.record == VideoRecord(path, label, entry.row)
        assert entry.video == Path(path).read_bytes()  # the encoded file, unchanged
        probed = probe_video(path)
        assert (entry.info.num_frames, entry.info.fps) == (probed.num_frames, probed.fps)
        assert entry.info.pts is not None and np.array_equal(entry.info.pts, probed.pts)
    assert {e.info.fps for e in entries} == {25.0, 30.0}
    with open(out / "unreadable_videos.tsv", newline="") as f:
        table = list(csv.reader(f, delimiter="\t"))
    assert table[0] == ["path", "reason"]
    listed = {Path(path).name: reason for path, reason in table[1:]}
    assert set(listed) == {"zeros.mp4", "missing.mp4", "corrupt.mp4"}  # quick check: the middle frame fails
    assert listed["missing.mp4"] == "no such file" and "Invalid data" in listed["zeros.mp4"]
    summary = json.loads((out / "shards.json").read_text())
    assert summary["videos"] == 12 and summary["written"] == 9 and summary["unreadable"] == 3
    assert len(json.loads((out / "index.json").read_text())["chunks"]) > 4  # several parts and chunks merged


def test_frames_from_an_entry_equal_the_frames_from_its_file(dataset: dict) -> None:
    out = dataset["root"] / "shards"
    write_shards(records_of(dataset), out, classes=CLASSES, check="probe", progress=False)
    entries = read_all(str(out))
    assert len(entries) == 10  # probe only: the video corrupt in the middle is written
    for entry in entries:
        n = entry.info.num_frames
        indices = [n - 1, 0, n // 2, 3, 3]
        if Path(entry.path).name == "corrupt.mp4":  # a corrupt entry: named by its original path
            with pytest.raises(DecodeError) as info:
                read_frames(entry.video, list(range(n)), info=entry.info, name=entry.path)
            assert info.value.path == entry.path and "pyav: " in info.value.reason
            continue
        for backend in ("pyav", "decord"):
            expected = read_frames(entry.path, indices, backend=backend, fallback=False)
            got = read_frames(entry.video, indices, backend=backend, fallback=False, info=entry.info)
            assert torch.equal(got, expected), (entry.path, backend)


def test_parallel_writing_equals_serial(dataset: dict) -> None:
    records = records_of(dataset)
    serial = write_shards(records, dataset["root"] / "serial", classes=CLASSES, workers=1, part_size=4, progress=False)
    parallel = write_shards(records, dataset["root"] / "parallel", classes=CLASSES, workers=2, part_size=4, progress=False)
    assert serial.unreadable == parallel.unreadable and serial.written == parallel.written == 9
    a, b = read_all(str(serial.out)), read_all(str(parallel.out))
    assert [e.row for e in a] == [e.row for e in b] == sorted(dataset["good"])  # list order, part by part
    assert all(x.video == y.video and x.info == y.info for x, y in zip(a, b))


@pytest.mark.filterwarnings("ignore:An item was larger than the target chunk size")  # tiny chunks on purpose
def test_an_interrupted_run_resumes_without_duplicates(dataset: dict, monkeypatch) -> None:
    records = records_of(dataset)
    out = dataset["root"] / "shards"
    original = shards_module._prepare
    calls = []

    def interrupted(record, check):
        calls.append(record.row)
        if len(calls) == 11:  # parts 0 (rows 0-3) and 1 (4-7) are done, part 2 (8-11) half written
            raise KeyboardInterrupt
        return original(record, check)

    monkeypatch.setattr(shards_module, "_prepare", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_shards(records, out, classes=CLASSES, part_size=4, chunk_bytes=1500, progress=False)
    assert sorted(p.name for p in (out / ".parts").glob("*.tsv")) == ["0.tsv", "1.tsv"]
    assert list(out.glob("chunk-2-*.bin")) and not (out / "index.json").exists()  # a partial part on disk
    monkeypatch.setattr(shards_module, "_prepare", original)
    resumed = []
    monkeypatch.setattr(shards_module, "_prepare", lambda r, c: resumed.append(r.row) or original(r, c))
    summary = write_shards(records, out, classes=CLASSES, part_size=4, chunk_bytes=1500, progress=False)
    assert resumed == list(range(8, 12))  # parts 0 and 1 not redone
    rows = sorted(e.row for e in read_all(str(out)))
    assert rows == sorted(dataset["good"]) and summary.written == 9  # no duplicates, none lost
    assert sorted(Path(p).name for p in summary.unreadable) == ["corrupt.mp4", "missing.mp4", "zeros.mp4"]
    again = write_shards(records, out, classes=CLASSES, part_size=4, chunk_bytes=1500, progress=False)
    assert again == summary and resumed == list(range(8, 12))  # a finished job is not redone
    with pytest.raises(ValueError, match="another job .*records"):
        write_shards(records[:5], out, classes=CLASSES, part_size=4, chunk_bytes=1500, progress=False)


def test_bad_arguments_are_named(dataset: dict, tmp_path: Path) -> None:
    records = records_of(dataset)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        write_shards(records, tmp_path / "busy", classes=CLASSES, progress=False)
    with pytest.raises(ValueError, match="check must be"):
        write_shards(records, tmp_path / "a", classes=CLASSES, check="deep", progress=False)
    with pytest.raises(ValueError, match="outside the 2 classes"):
        write_shards(records, tmp_path / "b", classes=CLASSES[:2], progress=False)
    with pytest.raises(ValueError, match="no readable video: .*none.mp4: no such file"):
        write_shards([VideoRecord(str(tmp_path / "none.mp4"), 0, 0)], tmp_path / "c", classes=CLASSES, progress=False)
    with pytest.raises(ValueError, match="out must be a local folder"):
        write_shards(records, "s3://bucket/k400", classes=CLASSES, progress=False)
    with pytest.raises(ValueError, match="holds no shards"):
        VideoShardDataset(str(tmp_path))


def test_a_local_folder_read_as_remote_storage(dataset: dict, tmp_path: Path) -> None:
    """LitData reads ``local:/path`` as it reads s3:// (chunks copied into its cache); ``file://``
    is mapped to it."""
    out = dataset["root"] / "shards"
    write_shards(records_of(dataset), out, classes=CLASSES, part_size=4, progress=False)
    local = {e.row: e.video for e in read_all(str(out))}
    for url in (f"local:{out}", f"file://{out}"):
        cache = tmp_path / f"cache_{url.split(':')[0]}"
        remote = {e.row: e.video for e in read_all(url, cache_dir=str(cache))}
        assert remote == local
        assert list(cache.rglob("chunk-*.bin"))  # streamed through the cache, as from a bucket
        assert shard_classes(url) == CLASSES


# --------------------------------------------------------------------- 2 processes (gloo)


def _rows(batch: list[ShardEntry]) -> list[int]:
    return [entry.row for entry in batch]


def _ddp_reader(rank: int, world: int, location: str, port: int, out_dir: str) -> None:
    import torch.distributed as dist
    from litdata import StreamingDataLoader

    too_early = VideoShardDataset(location)  # built before the process group: it would read everything
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        result: dict = {}
        try:
            next(iter(too_early))
        except RuntimeError as exc:
            result["too_early"] = str(exc)
        for workers in (0, 2):
            ds = VideoShardDataset(location)  # evaluation: shuffle=False, drop_last=False
            loader = StreamingDataLoader(ds, batch_size=2, num_workers=workers, collate_fn=_rows)
            result[f"eval{workers}"] = [row for batch in loader for row in batch]
        train = VideoShardDataset(location, shuffle=True, drop_last=True, seed=3)
        loader = StreamingDataLoader(train, batch_size=1, num_workers=2, collate_fn=_rows)
        result["train"] = [[row for batch in loader for row in batch] for _ in range(2)]  # two epochs
        Path(out_dir, f"{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def test_two_processes_read_each_video_once_in_evaluation_and_shuffle_in_training(dataset: dict, tmp_path: Path) -> None:
    import torch.multiprocessing as tmp_mp

    out = dataset["root"] / "shards"
    write_shards(records_of(dataset), out, classes=CLASSES, part_size=2, chunk_bytes=3000, progress=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp_mp.start_processes(_ddp_reader, args=(2, str(out), port, str(tmp_path)), nprocs=2, join=True, start_method="fork")
    results = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]
    assert [r["too_early"].split("but torch.distributed runs ")[1][:14] for r in results] == ["process 0 of 2", "process 1 of 2"]
    assert all("was built as process 0 of 1" in r["too_early"] for r in results)
    good = sorted(dataset["good"])  # 9 videos: shares cannot be equal
    for key in ("eval0", "eval2"):
        shares = [r[key] for r in results]
        assert sorted(shares[0] + shares[1]) == good, key  # every video exactly once, no padding
    for epoch in (0, 1):
        shares = [r["train"][epoch] for r in results]
        assert len(shares[0]) == len(shares[1]) == 4  # drop_last: equal shares, 1 of 9 left out
        assert len(set(shares[0] + shares[1])) == 8
    orders = [results[0]["train"][0], results[0]["train"][1]]
    assert orders[0] != orders[1] or results[1]["train"][0] != results[1]["train"][1]  # reshuffled per epoch


def test_cli_reads_class_folders_and_kinetics_csvs(tmp_path: Path, make_video) -> None:
    """Any annotation format: a folder per class, and the official Kinetics CSV."""
    for i, (label, youtube_id) in enumerate([("yoga", "abc"), ("zumba", "def"), ("yoga", "ghi")]):
        make_video(f"k400/train/{label}/{youtube_id}_000010_000020.mp4", num_frames=10, height=32, width=64, seed=i)
    (tmp_path / "train.csv").write_text("label,youtube_id,time_start,time_end,split\n"
                                        "yoga,abc,10,20,train\nzumba,def,10,20,train\nyoga,ghi,10,20,train\n")
    for source, root, out in (("k400/train", tmp_path, "by_folder"), (str(tmp_path / "train.csv"), tmp_path / "k400", "by_csv")):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["shard", source, "--root", str(root), "--out", str(tmp_path / out), "-j", "1", "--no-progress"])
        assert exit_info.value.code == 0
        assert shard_classes(tmp_path / out) == ["yoga", "zumba"]
        entries = read_all(str(tmp_path / out))
        assert sorted((Path(e.path).name[:3], e.label) for e in entries) == [("abc", 0), ("def", 1), ("ghi", 0)]


def test_litdata_is_imported_only_when_shards_are_read(dataset: dict) -> None:
    import pickle
    import subprocess
    import sys

    code = "import sys, videoattn.data.shards as s; s.is_shard_location('x'); print('litdata' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
    out = dataset["root"] / "shards"
    write_shards(records_of(dataset), out, classes=CLASSES, progress=False)
    ds = pickle.loads(pickle.dumps(VideoShardDataset(str(out))))  # as spawned workers receive it
    assert isinstance(ds, VideoShardDataset) and sorted(e.row for e in ds) == sorted(dataset["good"])
