"""Tests for videoattn.data.annotations: list files (space/tab/comma, int or name labels), the
official Kinetics CSV in flat and per-class layouts, class folders, class lists and errors.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from videoattn.data.annotations import (
    kinetics_filename,
    load_annotations,
    read_class_list,
    resolve_classes,
    write_class_list,
)


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_path_label_lists(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("videos/a.mp4 2\nvideos/b.mp4\t0\n\n# comment\n/abs/c.mp4 1\n")
    records, classes = load_annotations("a.txt", tmp_path)
    assert classes == ["0", "1", "2"]
    assert [(r.path, r.label, r.row) for r in records] == [
        (str(tmp_path / "videos/a.mp4"), 2, 0),
        (str(tmp_path / "videos/b.mp4"), 0, 1),
        ("/abs/c.mp4", 1, 2),
    ]
    (tmp_path / "b.csv").write_text("x/my video.mp4,air drumming\ny.mp4,abseiling\n")
    records, classes = load_annotations(tmp_path / "b.csv", "/elsewhere")
    assert classes == ["abseiling", "air drumming"]
    assert [(Path(r.path).name, r.label) for r in records] == [("my video.mp4", 1), ("y.mp4", 0)]


def test_given_classes_fix_the_order_and_reject_unknown_names(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("a.mp4,zumba\nb.mp4,abseiling\n")
    records, classes = load_annotations("a.csv", tmp_path, classes=["zumba", "yoga", "abseiling"])
    assert classes == ["zumba", "yoga", "abseiling"] and [r.label for r in records] == [0, 2]
    with pytest.raises(ValueError, match="1 labels are not among the 1 classes.*'zumba' \\(1 videos\\)"):
        load_annotations("a.csv", tmp_path, classes=["abseiling"])
    (tmp_path / "i.txt").write_text("a.mp4 7\n")
    with pytest.raises(ValueError, match="not among the 2 classes.*7 \\(1 videos\\)"):
        load_annotations("i.txt", tmp_path, classes=["a", "b"])


def test_unlabelled_list_for_prediction(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("a.mp4\nsome dir/b c.mp4\n")
    records, _ = load_annotations("p.txt", tmp_path, classes=["x"])
    assert [(Path(r.path).name, r.label) for r in records] == [("a.mp4", -1), ("b c.mp4", -1)]


KINETICS_CSV = "label,youtube_id,time_start,time_end,split\nabseiling,--07WQ2iBlw,1,11,train\nair drumming,-0lrRhRBjCE,14,24,train\nabseiling,zz9,0,10,train\n"


@pytest.mark.parametrize("layout", ["train/{label}/{file}", "train/{file}", "{label}/{file}", "{file}"])
def test_kinetics_csv_layouts(tmp_path: Path, layout: str) -> None:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations/train.csv").write_text(KINETICS_CSV)
    rows = [("abseiling", "--07WQ2iBlw", 1, 11), ("air drumming", "-0lrRhRBjCE", 14, 24), ("abseiling", "zz9", 0, 10)]
    for label, yid, s, e in rows[:2]:  # the third video is missing, as in real Kinetics copies
        touch(tmp_path / layout.format(label=label, file=kinetics_filename(yid, s, e)))
    records, classes = load_annotations("annotations/train.csv", tmp_path)
    assert classes == ["abseiling", "air drumming"]
    expected = [str(tmp_path / layout.format(label=l, file=kinetics_filename(y, s, e))) for l, y, s, e in rows]
    assert [r.path for r in records] == expected
    assert [r.label for r in records] == [0, 1, 0] and [r.row for r in records] == [0, 1, 2]
    assert Path(records[0].path).name == "--07WQ2iBlw_000001_000011.mp4"


def test_kinetics_test_csv_without_labels(tmp_path: Path) -> None:
    (tmp_path / "test.csv").write_text("youtube_id,time_start,time_end,split\nabc,5.0,15.0,test\n")
    touch(tmp_path / "test" / "abc_000005_000015.mp4")
    records, _ = load_annotations("test.csv", tmp_path, classes=["a"])
    assert records[0].label == -1 and records[0].path == str(tmp_path / "test/abc_000005_000015.mp4")


def test_class_folders(tmp_path: Path) -> None:
    for name in ["b/2.mp4", "b/1.avi", "a/x.mkv", "a/readme.txt", "c/.hidden_dir/z.mp4"]:
        touch(tmp_path / "train" / name)
    records, classes = load_annotations("train", tmp_path)
    assert classes == ["a", "b"]  # "c" holds no video at its top level
    assert [(Path(r.path).relative_to(tmp_path / "train").as_posix(), r.label, r.row) for r in records] == [
        ("a/x.mkv", 0, 0),
        ("b/1.avi", 1, 1),
        ("b/2.mp4", 1, 2),
    ]
    touch(tmp_path / "flat" / "v1.mp4")
    records, _ = load_annotations("flat", tmp_path, classes=["a"])
    assert [(Path(r.path).name, r.label) for r in records] == [("v1.mp4", -1)]


def test_class_list_files(tmp_path: Path) -> None:
    path = write_class_list(["b", "a c"], tmp_path / "classes.txt")
    assert read_class_list(path) == ["b", "a c"]
    assert resolve_classes("classes.txt", tmp_path) == ["b", "a c"]
    assert resolve_classes(["x", "y"]) == ["x", "y"] and resolve_classes(None) is None
    (tmp_path / "dup.txt").write_text("a\nb\na\n")
    with pytest.raises(ValueError, match="twice"):
        read_class_list(tmp_path / "dup.txt")
    with pytest.raises(ValueError, match="does not exist"):
        read_class_list(tmp_path / "nope.txt")


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="missing.txt"):
        load_annotations("missing.txt", tmp_path)
    (tmp_path / "mixed.txt").write_text("a.mp4 1\nb.mp4 yoga\n")
    with pytest.raises(ValueError, match="mix class names and integer labels"):
        load_annotations("mixed.txt", tmp_path)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(ValueError, match="no video files"):
        load_annotations("empty_dir", tmp_path)
    (tmp_path / "bad.csv").write_text("label,youtube_id,time_start,time_end,split\nyoga,abc,,10,train\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: row 0 lacks youtube_id/time_start/time_end: .yoga,abc,,10,train."):
        load_annotations("bad.csv", tmp_path)
    (tmp_path / "binary.txt").write_bytes(b"a.mp4 0\n\xff\xfe b.mp4 1\n")
    with pytest.raises(ValueError, match=r"binary.txt:2: not UTF-8 text"):
        load_annotations("binary.txt", tmp_path)
    (tmp_path / "nul.csv").write_bytes(b"label,youtube_id,time_start,time_end,split\nyoga,a\0b,0,10,train\n")
    with pytest.raises(ValueError, match=r"nul.csv:2: a NUL character"):
        load_annotations("nul.csv", tmp_path)


def test_committed_kinetics400_class_list() -> None:
    path = Path(__file__).resolve().parents[1] / "data" / "kinetics400_classes.txt"
    names = read_class_list(path)
    assert len(names) == 400 and names == sorted(names)
    assert names[:3] == ["abseiling", "air drumming", "answering questions"] and names[-1] == "zumba"
    assert "passing American football (not in game)" in names and "massaging person's head" in names
