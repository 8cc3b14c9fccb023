"""Tests for videoattn.data.formats: UCF101, HMDB51, Something-Something v2 and the Kinetics
600/700 CSVs (cvdfoundation's annotations/*.csv layout) read as downloaded, from tiny fixtures
written in each dataset's real layout; detection and named formats; and the errors that name
the file and line of bad input. Label files suffice here (no decoding), except the two tests
that take batches from the data module (H.264 in .avi files, VP9 .webm for SSv2).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from videoattn.data import ClipSettings, KineticsDataModule
from videoattn.data.annotations import load_annotations, read_predict_source
from videoattn.data.formats import FORMATS, detect_format
from videoattn.video_io import write_video

SMALL = ClipSettings(num_frames=4, sampling_rate=2, train_short_side=(32, 40), crop_size=32, test_short_side=32, test_crop_size=32, test_views=(1, 1))


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def crlf(lines: list[str]) -> str:
    return "".join(line + "\r\n" for line in lines)  # UCF101's list files have Windows line ends


# ------------------------------------------------------------------------------------ UCF101

UCF_CLASSES = ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
# the real quirk: the class folder HandstandPushups holds v_HandStandPushups_*.avi
UCF_FILES = {c: [f"{c}/v_{'HandStandPushups' if c == 'HandstandPushups' else c}_g{g:02d}_c01.avi" for g in (1, 2, 8, 9)] for c in UCF_CLASSES}


@pytest.fixture
def ucf101(tmp_path: Path) -> Path:
    """<root>/UCF-101/<Class>/v_*.avi and <root>/ucfTrainTestlist/ as the two archives unpack."""
    root = tmp_path / "ucf101"
    for files in UCF_FILES.values():
        for f in files:
            touch(root / "UCF-101" / f)
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text(crlf([f"{i} {c}" for i, c in enumerate(UCF_CLASSES, 1)]), newline="")
    for split, test_groups in ((1, (1, 2)), (2, (8, 9))):
        train = [f"{f} {i}" for i, c in enumerate(UCF_CLASSES, 1) for f in UCF_FILES[c] if int(f.split("_g")[1][:2]) not in test_groups]
        test = [f for c in UCF_CLASSES for f in UCF_FILES[c] if int(f.split("_g")[1][:2]) in test_groups]
        (lists / f"trainlist0{split}.txt").write_text(crlf(train), newline="")
        (lists / f"testlist0{split}.txt").write_text(crlf(test), newline="")
    return root


def test_ucf101_lists_as_downloaded(ucf101: Path) -> None:
    records, classes = load_annotations("ucfTrainTestlist/trainlist01.txt", ucf101)
    assert classes == UCF_CLASSES  # classInd.txt's order
    assert [Path(r.path).relative_to(ucf101).as_posix() for r in records][:2] == [
        "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
        "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi",
    ]
    assert records.labels.tolist() == [0, 0, 1, 1, 2, 2] and records.rows.tolist() == list(range(6))
    test, _ = load_annotations("ucfTrainTestlist/testlist01.txt", ucf101)  # no index: the class is the folder
    assert test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert Path(test[2].path).name == "v_HandStandPushups_g01_c01.avi"


def test_ucf101_in_the_data_module_by_folder_and_split(ucf101: Path) -> None:
    dm = KineticsDataModule(str(ucf101), "ucfTrainTestlist", "ucfTrainTestlist", format="ucf101", split=2, clip=SMALL, num_workers=0)
    dm.setup("fit")
    assert dm.classes == UCF_CLASSES
    groups = {split: sorted({Path(r.path).stem.split("_g")[1][:2] for r in dm.records[split]}) for split in ("train", "val")}
    assert groups == {"train": ["01", "02"], "val": ["08", "09"]}  # split 2: groups 8, 9 are the test videos
    detected = KineticsDataModule(str(ucf101), "ucfTrainTestlist/trainlist02.txt", "ucfTrainTestlist/testlist02.txt", clip=SMALL, num_workers=0)
    detected.setup("fit")
    assert detected.records["train"] == dm.records["train"] and detected.records["val"] == dm.records["val"]
    with pytest.raises(ValueError, match="trainlist01.txt is split 1, but split 2 was asked for"):
        KineticsDataModule(str(ucf101), "ucfTrainTestlist/trainlist01.txt", split=2, clip=SMALL).setup("fit")
    with pytest.raises(ValueError, match="split must be 1, 2 or 3"):
        KineticsDataModule(str(ucf101), "ucfTrainTestlist", split=4, clip=SMALL)


def test_ucf101_bad_input_names_the_file_and_line(ucf101: Path) -> None:
    lists = ucf101 / "ucfTrainTestlist"
    train = (lists / "trainlist01.txt").read_text()
    (lists / "trainlist01.txt").write_text(train.replace("v_YoYo_g08_c01.avi 3", "v_YoYo_g08_c01.avi 2"))
    with pytest.raises(ValueError, match=r"trainlist01.txt:5: YoYo/v_YoYo_g08_c01.avi is listed as class 2 \(HandstandPushups\).*lies in the folder YoYo"):
        load_annotations("ucfTrainTestlist/trainlist01.txt", ucf101)
    (lists / "trainlist01.txt").write_text(train.replace(" 3\n", " 7\n", 1))
    with pytest.raises(ValueError, match=r"trainlist01.txt:5: class index 7 is not in .*classInd.txt \(1..3\)"):
        load_annotations("ucfTrainTestlist/trainlist01.txt", ucf101)
    (lists / "trainlist01.txt").write_text(train)
    (lists / "testlist01.txt").write_text(crlf(["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "Skiing/v_Skiing_g01_c01.avi"]))
    with pytest.raises(ValueError, match=r"testlist01.txt:2: Skiing/v_Skiing_g01_c01.avi: its folder 'Skiing' is not a class"):
        load_annotations("ucfTrainTestlist/testlist01.txt", ucf101)
    (ucf101 / "UCF-101/YoYo/v_YoYo_g09_c01.avi").unlink()  # the split file lists a video its folder does not hold
    with pytest.raises(ValueError, match=r"trainlist01.txt:6: YoYo/v_YoYo_g09_c01.avi is not in .*UCF-101/YoYo: the split file does not match"):
        load_annotations("ucfTrainTestlist/trainlist01.txt", ucf101)
    (lists / "classInd.txt").unlink()
    with pytest.raises(ValueError, match=r"ucf101: .*ucfTrainTestlist/classInd.txt does not exist"):
        load_annotations("ucfTrainTestlist/trainlist01.txt", ucf101)


# ------------------------------------------------------------------------------------ HMDB51

HMDB_CLASSES = ["brush_hair", "cartwheel", "shoot_ball"]  # names with underscores, as HMDB51's


@pytest.fixture
def hmdb51(tmp_path: Path) -> Path:
    """<root>/<class>/<video>.avi and <root>/testTrainMulti_7030_splits/<class>_test_split<N>.txt."""
    root = tmp_path / "hmdb51"
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for c in HMDB_CLASSES:
        videos = [f"April_09_{c}_u_nm_np1_ba_goo_{i}.avi" for i in range(6)]
        for v in videos:
            touch(root / c / v)
        for n in (1, 2, 3):
            ids = np.roll([1, 1, 1, 2, 2, 0], n - 1)  # a different 3/2/1 partition per split
            # the real files end each line with a space
            (splits / f"{c}_test_split{n}.txt").write_text("".join(f"{v} {i} \n" for v, i in zip(videos, ids)))
    return root


def test_hmdb51_split_files_as_downloaded(hmdb51: Path) -> None:
    train, classes = load_annotations("testTrainMulti_7030_splits", hmdb51)
    assert classes == HMDB_CLASSES
    assert len(train) == 9 and train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert Path(train[0].path) == hmdb51 / "brush_hair" / "April_09_brush_hair_u_nm_np1_ba_goo_0.avi"
    test, _ = load_annotations("testTrainMulti_7030_splits", hmdb51, subset="test")
    assert [Path(r.path).stem[-1] for r in test][:2] == ["3", "4"] and len(test) == 6  # id 2; id 0 left out
    split3 = KineticsDataModule(str(hmdb51), "testTrainMulti_7030_splits", test="testTrainMulti_7030_splits", format="hmdb51", split=3, clip=SMALL)
    split3.setup("fit")
    split3.setup("test")
    assert [Path(r.path).stem[-1] for r in split3.records["train"]][:3] == ["2", "3", "4"]  # rolled by 2: ids 2 0 1 1 1 2
    assert [Path(r.path).stem[-1] for r in split3.records["test"]][:2] == ["0", "5"]
    assert detect_format(str(hmdb51 / "testTrainMulti_7030_splits")) == "hmdb51"


def test_hmdb51_bad_input_names_the_file_and_line(hmdb51: Path) -> None:
    splits = hmdb51 / "testTrainMulti_7030_splits"
    good = (splits / "cartwheel_test_split1.txt").read_text()
    (splits / "cartwheel_test_split1.txt").write_text(good.replace("goo_2.avi 1", "goo_2.avi 3"))
    with pytest.raises(ValueError, match=r"cartwheel_test_split1.txt:3: expected '<video>.avi <0\|1\|2>'"):
        load_annotations("testTrainMulti_7030_splits", hmdb51)
    (splits / "cartwheel_test_split1.txt").write_text(good)
    (hmdb51 / "cartwheel" / "April_09_cartwheel_u_nm_np1_ba_goo_1.avi").unlink()
    with pytest.raises(ValueError, match=r"cartwheel_test_split1.txt:2: April_09_cartwheel_u_nm_np1_ba_goo_1.avi is not in .*cartwheel: the split file does not match"):
        load_annotations("testTrainMulti_7030_splits", hmdb51)
    (splits / "shoot_ball_test_split2.txt").unlink()
    with pytest.raises(ValueError, match=r"no split 2 file for 1 of its 3 classes \(first: shoot_ball_test_split2.txt\)"):
        load_annotations("testTrainMulti_7030_splits", hmdb51, split=2)


# ------------------------------------------------------------------------ Something-Something v2

SSV2_LABELS = {"Approaching something with your camera": "0", "Holding something next to something": "1", "Pushing something from left to right": "2"}


def ssv2_entry(video_id: int, template: str | None, placeholders: tuple[str, ...] = ("cup",)) -> dict:
    entry: dict = {"id": str(video_id)}
    if template is not None:
        entry.update(label=template.replace("[something]", placeholders[0]), template=template, placeholders=list(placeholders))
    return entry


@pytest.fixture
def ssv2(tmp_path: Path) -> Path:
    """<root>/20bn-something-something-v2/<id>.webm and <root>/labels/*.json, as downloaded."""
    root = tmp_path / "ssv2"
    labels = root / "labels"
    labels.mkdir(parents=True)
    (labels / "labels.json").write_text(json.dumps(SSV2_LABELS, indent=1))
    templates = ["Pushing [something] from left to right", "Holding [something] next to [something]", "Approaching [something] with your camera"]
    train = [ssv2_entry(100 + i, templates[i % 3]) for i in range(6)]
    val = [ssv2_entry(200 + i, templates[(i + 1) % 3]) for i in range(3)]
    test = [ssv2_entry(300 + i, None) for i in range(2)]
    for name, entries in (("train", train), ("validation", val), ("test", test)):
        # the real files: one entry per line
        (labels / f"{name}.json").write_text("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]\n")
        for e in entries:
            touch(root / "20bn-something-something-v2" / f"{e['id']}.webm")
    return root


def test_ssv2_as_downloaded(ssv2: Path) -> None:
    train, classes = load_annotations("labels/train.json", ssv2)
    assert classes == list(SSV2_LABELS)  # labels.json's index order
    assert train.labels.tolist() == [2, 1, 0, 2, 1, 0]
    assert train[0].path == str(ssv2 / "20bn-something-something-v2" / "100.webm")
    dm = KineticsDataModule(str(ssv2), "labels", "labels", "labels", "labels/test.json", format="ssv2", clip=SMALL)
    dm.setup(None)
    assert [len(dm.records[s]) for s in ("train", "val", "test", "predict")] == [6, 3, 3, 2]  # val and test: validation.json
    assert dm.records["val"].labels.tolist() == [1, 0, 2]
    assert dm.records["predict"].labels.tolist() == [-1, -1]  # test.json: no labels
    assert [Path(r.path).name for r in read_predict_source("labels", ssv2)] == ["300.webm", "301.webm"]


def test_ssv2_bad_input_names_the_file_and_line(ssv2: Path) -> None:
    labels = ssv2 / "labels"
    good = (labels / "validation.json").read_text()
    (labels / "validation.json").write_text(good.replace("Pushing [something] from left to right", "Pushing [something] from left to rigth"))
    with pytest.raises(ValueError, match=r"validation.json:4: video 202: its template 'Pushing \[something\] from left to rigth' is not a class of .*labels.json \(3 templates\)"):
        load_annotations("labels/validation.json", ssv2)
    (labels / "validation.json").write_text(good[:-5])
    with pytest.raises(ValueError, match=r"validation.json:4:\d+: not valid JSON"):
        load_annotations("labels/validation.json", ssv2)
    (labels / "labels.json").unlink()
    with pytest.raises(ValueError, match=r"ssv2: .*labels/labels.json does not exist"):
        load_annotations("labels/train.json", ssv2)


# -------------------------------------------------------------------------- Kinetics 600 / 700


def test_kinetics_700_annotations_layout(tmp_path: Path) -> None:
    """cvdfoundation's k700-2020/: annotations/{train,val,test}.csv; train/<label>/, val/ flat."""
    root = tmp_path / "k700-2020"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations/train.csv").write_text(
        'label,youtube_id,time_start,time_end,split,is_cc\n"air drumming",-0lrRhRBjCE,14,24,train,0\n'
        "abseiling,--07WQ2iBlw,1,11,train,0\n\nadjusting glasses,x9,0.0,10.0,train,1\n"
    )
    for label, name in (("air drumming", "-0lrRhRBjCE_000014_000024.mp4"), ("abseiling", "--07WQ2iBlw_000001_000011.mp4")):
        touch(root / "train" / label / name)
    (root / "annotations/val.csv").write_text("label,youtube_id,time_start,time_end,split\nabseiling,v1,5,15,val\n")
    touch(root / "val" / "v1_000005_000015.mp4")
    (root / "annotations/test.csv").write_text("youtube_id,time_start,time_end,split\nt1,0,10,test\n")
    dm = KineticsDataModule(str(root), "annotations/train.csv", "annotations/val.csv", "annotations/test.csv", clip=SMALL)
    dm.setup(None)
    assert dm.classes == ["abseiling", "adjusting glasses", "air drumming"]
    assert [Path(r.path).relative_to(root).as_posix() for r in dm.records["train"]] == [
        "train/air drumming/-0lrRhRBjCE_000014_000024.mp4",
        "train/abseiling/--07WQ2iBlw_000001_000011.mp4",
        "train/adjusting glasses/x9_000000_000010.mp4",  # not downloaded: where the layout puts it
    ]
    assert dm.records["train"].labels.tolist() == [2, 0, 1]
    assert dm.records["val"][0].path == str(root / "val/v1_000005_000015.mp4") and dm.records["val"][0].label == 0
    assert dm.records["test"][0].label == -1 and dm.records["test"][0].path == str(root / "test/t1_000000_000010.mp4")


def test_kinetics_rows_that_break_the_csv_name_their_line(tmp_path: Path) -> None:
    header = "label,youtube_id,time_start,time_end,split\n"
    (tmp_path / "k600.csv").write_text(header + "yoga,a,0,10,train\n\nyoga,b,ten,20,train\n")
    with pytest.raises(ValueError, match=r"k600.csv:4: row 1 has the time 'ten', not a number of seconds: 'yoga,b,ten,20,train'"):
        load_annotations("k600.csv", tmp_path)
    (tmp_path / "k600.csv").write_text(header + "yoga,a,0,10,train\nyoga,b\n")
    with pytest.raises(ValueError, match=r"k600.csv:3: row 1 has fewer columns than its header"):
        load_annotations("k600.csv", tmp_path)
    (tmp_path / "k600.csv").write_text(header + "yoga,a,0,10,train\nzumba,b,0,10,train\n")
    with pytest.raises(ValueError, match=r"1 labels are not among the 1 classes.*'zumba' \(1 videos\) \(the first, 'zumba', at .*k600.csv:3\)"):
        load_annotations("k600.csv", tmp_path, classes=["yoga"])
    (tmp_path / "other.csv").write_text("label,id,start\nyoga,a,0\n")
    with pytest.raises(ValueError, match=r"other.csv:1: a Kinetics CSV needs the columns youtube_id, time_start, time_end"):
        load_annotations("other.csv", tmp_path, format="kinetics")


# ------------------------------------------------------------------------ detection, named formats


def test_formats_are_detected_or_named(ucf101: Path, hmdb51: Path, ssv2: Path, tmp_path: Path) -> None:
    assert set(FORMATS) == {"list", "kinetics", "folders", "ucf101", "hmdb51", "ssv2"}
    (tmp_path / "k.csv").write_text("label,youtube_id,time_start,time_end,split\n")
    (tmp_path / "l.txt").write_text("a.mp4 0\n")
    detected = {
        str(ucf101 / "ucfTrainTestlist"): "ucf101",
        str(ucf101 / "ucfTrainTestlist/testlist03.txt"): "ucf101",
        str(hmdb51 / "testTrainMulti_7030_splits"): "hmdb51",
        str(ssv2 / "labels"): "ssv2",
        str(ssv2 / "labels/validation.json"): "ssv2",
        str(tmp_path / "k.csv"): "kinetics",
        str(tmp_path / "l.txt"): "list",
        str(ucf101 / "UCF-101"): "folders",
    }
    assert {path: detect_format(path) for path in detected} == detected
    # a UCF101 list read as a plain list: its 1-based indices are labels as they stand (0..max)
    records, classes = load_annotations("ucfTrainTestlist/trainlist01.txt", ucf101, format="list")
    assert classes == ["0", "1", "2", "3"] and Path(records[0].path) == ucf101 / "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"
    with pytest.raises(ValueError, match="unknown annotation format 'ucf'; expected one of list, kinetics, folders, ucf101, hmdb51, ssv2"):
        KineticsDataModule(str(ucf101), "ucfTrainTestlist", format="ucf")
    with pytest.raises(ValueError, match="is a file; the folders format reads a folder"):
        load_annotations("l.txt", tmp_path, format="folders")
    # the class folders of UCF-101 are the same videos and classes as its lists
    folders, names = load_annotations("UCF-101", ucf101)
    assert names == UCF_CLASSES and len(folders) == 12


# ------------------------------------------------------------------------ decoding, end to end


def test_ucf101_and_ssv2_batches_decode(ucf101: Path, ssv2: Path) -> None:
    """H.264 written into UCF101's .avi names and VP9 .webm for SSv2: batches with their labels."""
    rng = np.random.default_rng(0)
    for files in UCF_FILES.values():
        for f in files:
            write_video(ucf101 / "UCF-101" / f, rng.integers(0, 256, (10, 32, 48, 3), dtype=np.uint8), fps=25, gop=5)
    dm = KineticsDataModule(str(ucf101), "ucfTrainTestlist/trainlist01.txt", clip=SMALL, num_workers=0, batch_size=6)
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert batch["video"].shape == (6, 3, 4, 32, 32) and sorted(batch["label"].tolist()) == [0, 0, 1, 1, 2, 2] and not batch["skipped"]
    for path in (ssv2 / "20bn-something-something-v2").glob("20*.webm"):
        write_video(path, rng.integers(0, 256, (12, 32, 48, 3), dtype=np.uint8), fps=12, codec="libvpx-vp9", options={"deadline": "realtime", "cpu-used": "8"})
    dm = KineticsDataModule(str(ssv2), val="labels/validation.json", classes=list(SSV2_LABELS), clip=SMALL, num_workers=0, batch_size=3)
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    assert batch["video"].shape == (3, 3, 4, 32, 32) and batch["label"].tolist() == [1, 0, 2] and not batch["skipped"]
