"""Tests for `videoattn check-data` (videoattn.tools.check_data): a parallel scan lists every
unreadable video with a reason in a TSV, exit status 1 when any is found, 0 when all read.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from videoattn.tools.check_data import main, scan
from videoattn.video_io import write_video


def corrupt_in_the_middle(path: Path) -> Path:
    """A noisy H.264 video with 3 kB overwritten mid-file: opens, fails while decoding."""
    rng = np.random.default_rng(1)
    write_video(path, rng.integers(0, 256, (40, 64, 80, 3), dtype=np.uint8), fps=30, gop=10)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 3000] = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def dataset(tmp_path: Path, make_video) -> Path:
    for i in range(3):
        make_video(f"ok{i}.mp4", num_frames=20)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (tmp_path / "text.mp4").write_text("hello\n" * 100)
    (tmp_path / "folder.mp4").mkdir()
    good = (tmp_path / "ok0.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(good[: len(good) // 2])
    corrupt_in_the_middle(tmp_path / "corrupt.mp4")
    names = ["ok0", "empty", "ok1", "random", "text", "folder", "missing", "truncated", "corrupt", "ok2"]
    (tmp_path / "list.txt").write_text("".join(f"{n}.mp4 {i % 2}\n" for i, n in enumerate(names)))
    return tmp_path


def test_check_data_lists_each_unreadable_file_with_a_reason(dataset: Path, capsys) -> None:
    out = dataset / "report.tsv"
    status = main(["list.txt", "--root", str(dataset), "-o", str(out), "-j", "2", "--no-progress"])
    assert status == 1
    with open(out, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == ["path", "reason"]
    reasons = {Path(p).stem: r for p, r in rows[1:]}
    assert sorted(reasons) == ["corrupt", "empty", "folder", "missing", "random", "text", "truncated"]
    assert "no such file" in reasons["missing"] and "empty" in reasons["empty"] and "directory" in reasons["folder"]
    assert all(reasons.values())
    assert "checked 10 videos: 3 readable, 7 unreadable" in capsys.readouterr().out


def test_check_data_quick_mode_and_clean_dataset(dataset: Path, tmp_path: Path) -> None:
    (dataset / "clean.txt").write_text("ok0.mp4 0\nok1.mp4 1\n")
    assert main(["clean.txt", "--root", str(dataset), "-o", str(tmp_path / "r.tsv"), "-j", "1", "--quick", "--no-progress"]) == 0
    assert (tmp_path / "r.tsv").read_text() == "path\treason\n"
    bad = scan([str(dataset / "ok2.mp4"), str(dataset / "text.mp4")], workers=1, full=False, progress=False)
    assert list(bad) == [str(dataset / "text.mp4")]


def test_check_data_rejects_bad_arguments(dataset: Path) -> None:
    with pytest.raises(SystemExit):
        main(["list.txt", "--root", str(dataset / "nowhere")])
    with pytest.raises(SystemExit):
        main(["nolist.txt", "--root", str(dataset)])


def test_clean_copies_drop_exactly_the_unreadable_rows(dataset: Path, tmp_path: Path) -> None:
    (dataset / "with_comments.txt").write_text("# header comment\nok0.mp4 0\n\ntext.mp4 1\nok1.mp4 1\n")
    csv_text = "label,youtube_id,time_start,time_end,split\nyoga,aaa,0,10,train\nyoga,bbb,0,10,train\n"
    (dataset / "k.csv").write_text(csv_text)
    (dataset / "aaa_000000_000010.mp4").write_bytes((dataset / "ok2.mp4").read_bytes())
    (dataset / "bbb_000000_000010.mp4").write_text("not a video")
    clean = tmp_path / "clean"
    status = main(["with_comments.txt", "k.csv", "--root", str(dataset), "-o", str(tmp_path / "r.tsv"), "-j", "1", "--no-progress", "--clean-dir", str(clean)])
    assert status == 1
    assert (clean / "with_comments.txt").read_text() == "# header comment\nok0.mp4 0\n\nok1.mp4 1\n"
    assert (clean / "k.csv").read_text() == "label,youtube_id,time_start,time_end,split\nyoga,aaa,0,10,train\n"


def test_a_plain_folder_means_every_video_under_it_as_predict_finds_them(tmp_path: Path, make_video, capsys) -> None:
    """Issue 23.2: flat files, class folders and deeper folders, some unreadable: all checked."""
    from videoattn.data.annotations import read_predict_source

    folder = tmp_path / "mine"
    for name in ["a.mp4", "cats/b.mp4", "cats/kittens/c.mp4", "dogs/2024/june/d.mkv", "dogs/e.mp4", "f.avi"]:
        make_video(f"mine/{name}", num_frames=12, height=32, width=48)
    (folder / "cats" / "kittens" / "broken.mp4").write_bytes(b"\0" * 300)
    (folder / "dogs" / "2024" / "notes.txt").write_text("not a video")
    (folder / "empty.mp4").write_bytes(b"")
    expected = [r.path for r in read_predict_source(str(folder))]
    assert len(expected) == 8
    out = tmp_path / "report.tsv"
    assert main([str(folder), "-o", str(out), "-j", "1", "--no-progress"]) == 1
    assert "checked 8 videos: 6 readable, 2 unreadable" in capsys.readouterr().out
    with open(out, newline="") as f:
        assert sorted(Path(p).name for p, _ in list(csv.reader(f, delimiter="\t"))[1:]) == ["broken.mp4", "empty.mp4"]
    # relative to --root, and a glob, as predict takes them
    assert main(["mine", "--root", str(tmp_path), "-o", str(out), "-j", "1", "--no-progress"]) == 1
    assert "checked 8 videos" in capsys.readouterr().out
    assert main(["mine/cats/**/*.mp4", "--root", str(tmp_path), "-o", str(out), "-j", "1", "--no-progress"]) == 1
    assert "checked 3 videos: 2 readable, 1 unreadable" in capsys.readouterr().out


def test_check_data_reads_dataset_formats_and_cleans_their_files(tmp_path: Path, make_video, capsys) -> None:
    """An SSv2 labels folder: train, validation and test videos checked; a clean train.json
    keeps its labels.json next to it and reads back without the unreadable videos."""
    import json

    from videoattn.data.annotations import load_annotations

    good = make_video("good.mp4", num_frames=12, height=32, width=48).read_bytes()
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "labels.json").write_text(json.dumps({"Pushing something": "0", "Holding something": "1"}))
    splits = {"train": [1, 2, 3], "validation": [4], "test": [5]}
    for name, ids in splits.items():
        entries = [{"id": str(i), **({} if name == "test" else {"template": ["Pushing [something]", "Holding [something]"][i % 2]})} for i in ids]
        (labels / f"{name}.json").write_text(json.dumps(entries))
        for i in ids:
            (tmp_path / "videos").mkdir(exist_ok=True)
            (tmp_path / "videos" / f"{i}.webm").write_bytes(good if i not in (2, 5) else b"\0" * 100)
    out, clean = tmp_path / "r.tsv", tmp_path / "clean"
    assert main([str(labels), "--root", str(tmp_path / "videos"), "-o", str(out), "-j", "1", "--no-progress"]) == 1
    assert "checked 5 videos: 3 readable, 2 unreadable" in capsys.readouterr().out
    assert main(["labels/train.json", "--root", str(tmp_path), "-o", str(out), "-j", "1", "--no-progress", "--clean-dir", str(clean)]) == 1
    assert "checked 3 videos: 2 readable, 1 unreadable" in capsys.readouterr().out
    records, classes = load_annotations(clean / "train.json", tmp_path)
    assert classes == ["Pushing something", "Holding something"] and [Path(r.path).name for r in records] == ["1.webm", "3.webm"]
