"""UCF101 as downloaded (https://www.crcv.ucf.edu/data/UCF101.php): ``UCF101.rar`` unpacks to
``UCF-101/<Class>/v_<Class>_gGG_cCC.avi`` and ``UCF101TrainTestSplits-RecognitionTask.zip`` to
``ucfTrainTestlist/``: ``classInd.txt`` ("1 ApplyEyeMakeup": 1-based index and name),
``trainlist0N.txt`` ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1") and ``testlist0N.txt``
(the path only: the class is its folder), for the three official splits N = 1, 2, 3.

A source is a ``trainlist0N.txt`` / ``testlist0N.txt`` file (classInd.txt next to it) or the
``ucfTrainTestlist`` folder, where train reads ``trainlist0N.txt`` and val/test read
``testlist0N.txt`` of the split asked for. Video paths are relative to the root, or to its
``UCF-101/`` sub-folder when the videos are there.
"""
from __future__ import annotations

import os
import re

from videoattn.data.formats.base import RawAnnotations, check_split, check_subset, first_unlisted, joiner, read_text, video_base

__all__ = ["CLASS_FILE", "NAME", "detect", "read", "read_class_index"]

NAME = "ucf101"
CLASS_FILE = "classInd.txt"
LIST_NAME = re.compile(r"^(train|test)list0?([1-9])\.txt$", re.IGNORECASE)
VIDEO_FOLDERS = ("UCF-101", "UCF101", "videos")


def detect(path: str) -> bool:
    """A ``trainlist0N.txt`` / ``testlist0N.txt`` file, or a folder holding ``classInd.txt``."""
    if os.path.isdir(path):
        return os.path.isfile(os.path.join(path, CLASS_FILE))
    return LIST_NAME.match(os.path.basename(path)) is not None


def read_class_index(path: str) -> list[str]:
    """``classInd.txt``: class names in index order (its 1-based indices must be 1..N)."""
    if not os.path.isfile(path):
        raise ValueError(f"ucf101: {path} does not exist; UCF101's class list classInd.txt lies next to its trainlist/testlist files "
                         "(UCF101TrainTestSplits-RecognitionTask.zip)")
    by_index: dict[int, str] = {}
    for number, line in enumerate(read_text(path).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError(f"{path}:{number}: expected '<index> <class name>', got {line.strip()!r}")
        index = int(parts[0])
        if index in by_index:
            raise ValueError(f"{path}:{number}: index {index} given twice ({by_index[index]} and {parts[1]})")
        by_index[index] = parts[1]
    if sorted(by_index) != list(range(1, len(by_index) + 1)):
        raise ValueError(f"{path}: the class indices are not 1..{len(by_index)} (missing: {sorted(set(range(1, len(by_index) + 1)) - set(by_index))[:5]})")
    return [by_index[i] for i in range(1, len(by_index) + 1)]


def _list_files(path: str, subset: str, split: int | None) -> tuple[list[str], int]:
    if os.path.isdir(path):
        n = check_split(split, None, path, NAME)
        kinds = {"train": ["train"], "all": ["train", "test"]}.get(subset, ["test"])
        files = [os.path.join(path, f"{kind}list0{n}.txt") for kind in kinds]
        for file in files:
            if not os.path.isfile(file):
                held = sorted(name for name in os.listdir(path) if name.endswith(".txt"))
                raise ValueError(f"ucf101: {path} has no {os.path.basename(file)} (it holds {', '.join(held) or 'no .txt file'})")
        return files, n
    match = LIST_NAME.match(os.path.basename(path))
    return [path], check_split(split, int(match.group(2)) if match else None, path, NAME)


def read(path: str, root: str, *, subset: str = "train", split: int | None = None) -> RawAnnotations:
    """The rows of a UCF101 list (or of the split's lists in the folder ``path``)."""
    check_subset(subset, NAME)
    files, _ = _list_files(path, subset, split)
    class_file = os.path.join(os.path.dirname(files[0]), CLASS_FILE)
    classes = read_class_index(class_file)
    relative: list[str] = []
    labels: list[str | int | None] = []
    origin: list[tuple[str, int]] = []
    for file in files:
        for number, line in enumerate(read_text(file).splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
                raise ValueError(f"{file}:{number}: expected '<Class>/<video>.avi [<class index>]', got {line.strip()!r}")
            video = parts[0]
            folder = video.rpartition("/")[0]
            if len(parts) == 2:
                index = int(parts[1])
                if not 1 <= index <= len(classes):
                    raise ValueError(f"{file}:{number}: class index {index} is not in {class_file} (1..{len(classes)})")
                name = classes[index - 1]
                if folder and folder != name:
                    raise ValueError(f"{file}:{number}: {video} is listed as class {index} ({name}) of {class_file}, but lies in the folder {folder}: "
                                     "the split file does not match its videos")
            else:
                if folder not in classes:
                    raise ValueError(f"{file}:{number}: {video}: its folder {folder!r} is not a class of {class_file}")
                name = folder
            relative.append(video)
            labels.append(name)
            origin.append((file, number))
    base = video_base(root, VIDEO_FOLDERS, relative, NAME, files[0])
    missing = first_unlisted(base, relative)
    if missing is not None:
        file, number = origin[missing]
        raise ValueError(f"{file}:{number}: {relative[missing]} is not in {os.path.join(base, relative[missing].rpartition('/')[0])}: "
                         "the split file does not match its videos")
    join = joiner(base)
    return RawAnnotations([join(video) for video in relative], labels, files[0] if len(files) == 1 else path, classes,
                          locate=lambda row: f"{origin[row][0]}:{origin[row][1]}")
