"""Something-Something v2 as downloaded (https://www.qualcomm.com/developer/software/something-something-v-2-dataset):
the videos ``20bn-something-something-v2/<id>.webm`` (VP9), and the labels folder with
``labels.json`` (template -> class index, 174 classes: {"Approaching something with your
camera": "0", ...}), ``train.json`` and ``validation.json`` (a list of {"id", "label",
"template", "placeholders"}; the class is the template without its brackets: "Holding
[something] next to [something]" -> "Holding something next to something") and ``test.json``
(ids only: unlabelled).

A source is one of those JSON files (labels.json next to it) or the labels folder, where train
reads ``train.json``, val and test ``validation.json`` (the test labels are not public) and
predict ``test.json``. Videos are ``<root>/<id>.webm`` (or under
``20bn-something-something-v2/`` in the root).
"""
from __future__ import annotations

import json
import os
import re
from typing import Any

from videoattn.data.formats.base import RawAnnotations, check_subset, joiner, read_text, video_base

__all__ = ["LABELS_FILE", "NAME", "detect", "read", "read_labels"]

NAME = "ssv2"
LABELS_FILE = "labels.json"
FILES = {"train": ("train.json",), "predict": ("test.json",), "all": ("train.json", "validation.json", "test.json")}  # else validation.json
VIDEO_FOLDERS = ("20bn-something-something-v2", "videos")


def detect(path: str) -> bool:
    """A ``.json`` file, or a folder holding ``labels.json``."""
    if os.path.isdir(path):
        return os.path.isfile(os.path.join(path, LABELS_FILE))
    return path.lower().endswith(".json")


def _load(path: str) -> Any:
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None


def read_labels(path: str) -> list[str]:
    """``labels.json`` (template without brackets -> class index): the names in index order."""
    if not os.path.isfile(path):
        raise ValueError(f"ssv2: {path} does not exist; Something-Something v2's labels.json (template -> class index) lies next to "
                         "train.json and validation.json")
    labels = _load(path)
    if not isinstance(labels, dict) or not labels:
        raise ValueError(f"{path}: expected a JSON object mapping each template to its class index, got {type(labels).__name__}")
    by_index: dict[int, str] = {}
    for name, value in labels.items():
        text = str(value).strip()
        if not text.isdigit():
            raise ValueError(f"{path}:{_line_of(path, json.dumps(name))}: the index of {name!r} is {value!r}, not an integer")
        if int(text) in by_index:
            raise ValueError(f"{path}:{_line_of(path, json.dumps(name))}: index {text} given to {by_index[int(text)]!r} and {name!r}")
        by_index[int(text)] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise ValueError(f"{path}: the class indices are not 0..{len(by_index) - 1}")
    return [by_index[i] for i in range(len(by_index))]


def read(path: str, root: str, *, subset: str = "train", split: int | None = None) -> RawAnnotations:
    """The videos of an SSv2 JSON file (or of the labels folder ``path`` for ``subset``)."""
    check_subset(subset, NAME)
    if os.path.isdir(path):
        names = FILES.get(subset, ("validation.json",))
        files = [os.path.join(path, name) for name in names if subset != "all" or os.path.isfile(os.path.join(path, name))]
    else:
        files = [path]
    labels_file = os.path.join(os.path.dirname(files[0]) if files else path, LABELS_FILE)
    classes = read_labels(labels_file)
    known = set(classes)
    ids: list[str] = []
    labels: list[str | int | None] = []
    origin: list[tuple[str, int]] = []
    for file in files:
        entries = _load(file)
        if not isinstance(entries, list):
            raise ValueError(f"{file}: expected a JSON list of videos ({{\"id\": ..., \"template\": ...}}), got {type(entries).__name__}")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or "id" not in entry:
                raise ValueError(f"{file}: entry {i} has no \"id\": {str(entry)[:80]}")
            template = entry.get("template")
            name = None if template is None else str(template).replace("[", "").replace("]", "")
            if name is not None and name not in known:
                line = _line_of(file, str(entry["id"]))
                raise ValueError(f"{file}:{line}: video {entry['id']}: its template {template!r} is not a class of {labels_file} "
                                 f"({len(classes)} templates)")
            ids.append(f"{entry['id']}.webm")
            labels.append(name)
            origin.append((file, i))
    base = video_base(root, VIDEO_FOLDERS, ids, NAME, files[0] if files else path)
    join = joiner(base)
    return RawAnnotations([join(i) for i in ids], labels if any(label is not None for label in labels) else None,
                          files[0] if len(files) == 1 else path, classes,
                          locate=lambda row: f"{origin[row][0]}:{_line_of(origin[row][0], ids[row][: -len('.webm')])}")


def _line_of(path: str, needle: str) -> int:
    """The line of ``needle`` in the file: a JSON string (quoted) as is, else a video id as
    ``"id": "<needle>"`` (1 if not found)."""
    text = read_text(path)
    if needle.startswith('"'):
        found = text.find(needle)
    else:  # a video id, as "id": "123" or "id": 123
        match = re.search(r'"id"\s*:\s*"?' + re.escape(needle) + r'\b', text)
        found = match.start() if match else -1
    return text.count("\n", 0, found) + 1 if found >= 0 else 1
