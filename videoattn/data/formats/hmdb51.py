"""HMDB51 as downloaded (https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-database/):
``hmdb51_org.rar`` holds one ``<class>.rar`` per class, unpacked to ``<class>/<video>.avi``;
``test_train_splits.rar`` unpacks to ``testTrainMulti_7030_splits/`` with one file per class
and split, ``<class>_test_split<N>.txt`` (N = 1, 2, 3), a line per video of the class:
"<video>.avi <id>", id 1 = train, 2 = test, 0 = not used in that split.

A source is that folder (or one of its files: its folder is read). Train reads the videos
with id 1 of the split asked for, val and test those with id 2. The 51 classes are the
split files' class names, sorted. Videos are ``<root>/<class>/<video>`` (or under
``hmdb51_org/`` or ``videos/`` in the root).
"""
from __future__ import annotations

import os
import re

from videoattn.data.formats.base import RawAnnotations, check_split, check_subset, first_unlisted, joiner, read_text, video_base

__all__ = ["NAME", "detect", "read"]

NAME = "hmdb51"
SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<n>[1-9])\.txt$")
VIDEO_FOLDERS = ("hmdb51_org", "hmdb51", "videos")
IDS = {"train": ("1",), "all": ("0", "1", "2")}  # any other subset: the test videos, id 2


def detect(path: str) -> bool:
    """A folder holding ``<class>_test_split<N>.txt`` files, or one such file."""
    if os.path.isdir(path):
        with os.scandir(path) as it:
            return any(SPLIT_FILE.match(e.name) for e in it)
    return SPLIT_FILE.match(os.path.basename(path)) is not None


def read(path: str, root: str, *, subset: str = "train", split: int | None = None) -> RawAnnotations:
    """The rows of the split's files in the folder ``path`` for ``subset``."""
    check_subset(subset, NAME)
    folder, from_name = path, None
    if not os.path.isdir(path):
        match = SPLIT_FILE.match(os.path.basename(path))
        folder, from_name = os.path.dirname(path) or ".", int(match.group("n")) if match else None
    n = check_split(split, from_name, path, NAME)
    by_class: dict[str, dict[int, str]] = {}
    for name in os.listdir(folder):
        match = SPLIT_FILE.match(name)
        if match:
            by_class.setdefault(match.group("cls"), {})[int(match.group("n"))] = os.path.join(folder, name)
    if not by_class:
        raise ValueError(f"hmdb51: {folder} holds no <class>_test_split<N>.txt file (HMDB51's test_train_splits.rar)")
    classes = sorted(by_class)
    lacking = [c for c in classes if n not in by_class[c]]
    if lacking:
        raise ValueError(f"hmdb51: {folder} has no split {n} file for {len(lacking)} of its {len(classes)} classes "
                         f"(first: {lacking[0]}_test_split{n}.txt): the split files do not match")
    wanted = IDS.get(subset, ("2",))
    relative: list[str] = []
    labels: list[str | int | None] = []
    origin: list[tuple[str, int]] = []
    for cls in classes:
        file = by_class[cls][n]
        for number, line in enumerate(read_text(file).splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise ValueError(f"{file}:{number}: expected '<video>.avi <0|1|2>' (0 unused, 1 train, 2 test), got {line.strip()!r}")
            if parts[1] in wanted:
                relative.append(f"{cls}/{parts[0]}")
                labels.append(cls)
                origin.append((file, number))
    if not relative:
        raise ValueError(f"hmdb51: no video of split {n} has the id {' or '.join(wanted)} ({subset}) in {folder}")
    base = video_base(root, VIDEO_FOLDERS, relative, NAME, folder)
    missing = first_unlisted(base, relative)
    if missing is not None:
        file, number = origin[missing]
        raise ValueError(f"{file}:{number}: {relative[missing].rpartition('/')[2]} is not in {os.path.join(base, labels[missing])}: "
                         "the split file does not match its videos")
    join = joiner(base)
    return RawAnnotations([join(video) for video in relative], labels, folder, classes,
                          locate=lambda row: f"{origin[row][0]}:{origin[row][1]}")
