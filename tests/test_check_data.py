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
