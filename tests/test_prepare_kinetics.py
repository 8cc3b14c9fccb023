"""Tests for scripts/prepare_kinetics.py: resizing to a short side (frames and timestamps
kept), annotation files and class list from official CSVs, failures recorded, resumable runs.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import av
import pytest
import torch

from videoattn.data import KineticsDataModule, read_frames
from videoattn.data.transforms import short_side_resize, to_tchw

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "prepare_kinetics.py"
spec = importlib.util.spec_from_file_location("prepare_kinetics", SCRIPT)
prepare = importlib.util.module_from_spec(spec)
sys.modules["prepare_kinetics"] = prepare  # worker processes find its functions by this name
spec.loader.exec_module(prepare)


def test_scaled_size() -> None:
    assert prepare.scaled_size(640, 360, 320) == (568, 320)
    assert prepare.scaled_size(360, 640, 320) == (320, 568)
    assert prepare.scaled_size(341, 256, 128) == (170, 128)


@pytest.fixture
def raw(tmp_path: Path, make_video) -> Path:
    src = tmp_path / "raw"
    make_video("raw/train/abseiling/aaa_000001_000011.mp4", num_frames=20, height=96, width=128, fps=25)
    make_video("raw/train/air drumming/bbb_000005_000015.mp4", num_frames=24, height=96, width=128, fps=29.97, seed=1)
    make_video("raw/train/air drumming/ccc_000000_000010.mp4", num_frames=12, height=32, width=48, seed=2)  # already small
    (src / "train" / "abseiling" / "ddd_000002_000012.mp4").write_bytes(b"\0" * 1000)  # broken
    (src / "annotations").mkdir()
    rows = [("abseiling", "aaa", 1, 11), ("air drumming", "bbb", 5, 15), ("air drumming", "ccc", 0, 10), ("abseiling", "ddd", 2, 12), ("abseiling", "eee", 3, 13)]
    (src / "annotations" / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split\n" + "".join(f"{l},{y},{s},{e},train\n" for l, y, s, e in rows)
    )
    return src


def test_prepare_resizes_writes_annotations_and_records_failures(raw: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    status = prepare.main(["--src", str(raw), "--dst", str(dst), "--csv", str(raw / "annotations/train.csv"), "--short-side", "48", "-j", "2", "--no-progress", "--crf", "12"])
    assert status == 1  # one broken and one missing video
    lines = (dst / "train.csv").read_text().splitlines()
    assert lines == ["train/aaa_000001_000011.mp4,abseiling", "train/bbb_000005_000015.mp4,air drumming", "train/ccc_000000_000010.mp4,air drumming"]
    assert (dst / "classes.txt").read_text().splitlines() == ["abseiling", "air drumming"]
    failures = dict(line.split("\t") for line in (dst / "failures.tsv").read_text().splitlines()[1:])
    assert set(map(lambda p: Path(p).name, failures)) == {"ddd_000002_000012.mp4", "eee_000003_000013.mp4"}
    assert "missing" in failures[str(dst / "train/eee_000003_000013.mp4")]
    assert not list(dst.rglob("*.partial*"))

    out = dst / "train/bbb_000005_000015.mp4"
    src = raw / "train/air drumming/bbb_000005_000015.mp4"
    with av.open(str(out)) as c, av.open(str(src)) as s:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (64, 48)
        assert c.streams.video[0].average_rate == s.streams.video[0].average_rate  # 30000/1001 kept
    ours, reference = read_frames(out, range(24)), read_frames(src, range(24))
    expected = short_side_resize(to_tchw(reference), 48).permute(0, 2, 3, 1)
    assert ours.shape == expected.shape
    assert (ours.float() - expected.float()).abs().mean() < 6  # same frames, lossy re-encode
    assert (dst / "train/ccc_000000_000010.mp4").read_bytes() == (raw / "train/air drumming/ccc_000000_000010.mp4").read_bytes()

    dm = KineticsDataModule(str(dst), train="train.csv", classes="classes.txt", num_workers=0)
    dm.setup("fit")
    assert dm.num_classes == 2 and [r.label for r in dm.records["train"]] == [0, 1, 1]


def test_prepare_is_resumable(raw: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    argv = ["--src", str(raw), "--dst", str(dst), "--csv", str(raw / "annotations/train.csv"), "--short-side", "48", "-j", "1", "--no-progress"]
    prepare.main(argv)
    done = dst / "train/aaa_000001_000011.mp4"
    stamp = done.stat().st_mtime_ns
    done2 = dst / "train/bbb_000005_000015.mp4"
    done2.unlink()  # as if the first run had been interrupted before this one
    prepare.main(argv)
    assert done.stat().st_mtime_ns == stamp and done2.exists()


def test_prepare_without_csv_mirrors_the_tree(raw: Path, tmp_path: Path) -> None:
    dst = tmp_path / "mirror"
    prepare.main(["--src", str(raw), "--dst", str(dst), "--short-side", "48", "-j", "1", "--no-progress"])
    assert (dst / "train/abseiling/aaa_000001_000011.mp4").exists()
    assert torch.equal(torch.tensor(read_frames(dst / "train/abseiling/aaa_000001_000011.mp4", [0]).shape), torch.tensor([1, 48, 64, 3]))


def test_validate_csv_becomes_val(raw: Path, tmp_path: Path) -> None:
    (raw / "annotations" / "validate.csv").write_text("label,youtube_id,time_start,time_end,split\nabseiling,aaa,1,11,val\n")
    dst = tmp_path / "out"
    prepare.main(["--src", str(raw), "--dst", str(dst), "--csv", str(raw / "annotations/validate.csv"), "--short-side", "48", "-j", "1", "--no-progress"])
    assert (dst / "val.csv").read_text() == "val/aaa_000001_000011.mp4,abseiling\n"
    assert (dst / "val/aaa_000001_000011.mp4").exists()
