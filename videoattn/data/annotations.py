"""Annotation sources -> records: every format of :mod:`videoattn.data.formats` (``path label``
lists, Kinetics CSVs, class folders, UCF101, HMDB51, Something-Something v2, detected or named)
read into columns, labels mapped to class indices in one pass, and the records held as arrays
(:class:`~videoattn.data.records.VideoRecords`), without opening any video. Class order is
stable: a given list, else the format's own (UCF101's classInd.txt, SSv2's labels.json), else
the sorted names found. Also: class-list files, and the videos to predict on.
"""
from __future__ import annotations

import glob
import os
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from videoattn.data.formats import FORMATS, detect_format, read_source
from videoattn.data.formats.base import VIDEO_EXTENSIONS, RawAnnotations, RawRecord, is_video_name, joiner
from videoattn.data.formats.folders import find_videos
from videoattn.data.formats.kinetics import kinetics_filename
from videoattn.data.records import VideoRecord, VideoRecords

__all__ = [
    "FORMATS",
    "VIDEO_EXTENSIONS",
    "RawAnnotations",
    "VideoRecord",
    "VideoRecords",
    "infer_classes",
    "kinetics_filename",
    "load_annotations",
    "read_class_list",
    "read_predict_source",
    "read_raw_annotations",
    "resolve_classes",
    "to_records",
    "write_class_list",
]

_RawRecord = RawRecord  # its name before the formats package
_ANNOTATION_FOLDERS = ("ucf101", "hmdb51", "ssv2")


def read_class_list(path: str | os.PathLike) -> list[str]:
    """Class names, one per line (blank lines ignored), in file order = index order."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"classes: class-list file {p} does not exist")
    names = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"classes: {p} lists some names twice: {dup[:5]}")
    return names


def write_class_list(names: Sequence[str], path: str | os.PathLike) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    return p


def resolve_classes(classes: Sequence[str] | str | os.PathLike | None, root: str | os.PathLike = ".") -> list[str] | None:
    """``classes`` as a list: a list is kept, a string is a class-list file (relative to root)."""
    if classes is None:
        return None
    if isinstance(classes, (str, os.PathLike)):
        return read_class_list(_under(root, classes))
    names = [str(c) for c in classes]
    if len(set(names)) != len(names):
        raise ValueError("classes: the list names some classes twice")
    return names


def load_annotations(
    source: str | os.PathLike,
    root: str | os.PathLike = ".",
    classes: Sequence[str] | None = None,
    *,
    format: str | None = None,
    subset: str = "train",
    split: int | None = None,
) -> tuple[VideoRecords, list[str]]:
    """Read one annotation source and map labels to indices.

    Args:
        source: an annotation file or folder in any format of :data:`FORMATS`, relative to
            ``root`` or absolute.
        root: the folder video paths are relative to.
        classes: class names in index order; default: the format's own list (UCF101,
            HMDB51, SSv2), else the sorted names found (``0..max`` for integer labels).
        format: the annotation format (detected when None); see :func:`videoattn.data.formats.read_source`.
        subset: which part of a dataset's own split files (``train``, ``val``, ``test``).
        split: the official split number (1, 2, 3) of UCF101 and HMDB51.

    Returns:
        The records and the class names used.
    """
    raw = read_raw_annotations(source, root, format=format, subset=subset, split=split)
    names = list(classes) if classes is not None else infer_classes([raw])
    return to_records(raw, names, source), names


def read_raw_annotations(
    source: str | os.PathLike, root: str | os.PathLike = ".", *, format: str | None = None, subset: str = "train", split: int | None = None
) -> RawAnnotations:
    """The rows of ``source`` (relative to ``root`` or absolute) before labels become indices;
    the arguments are those of :func:`load_annotations`."""
    return read_source(_under(root, source), os.fspath(root), format=format, subset=subset, split=split)


def infer_classes(raws: Iterable[Sequence[RawRecord]]) -> list[str]:
    """The format's own class list if it has one; else the sorted class names found, or for
    integer labels "0".."max" (no names to sort)."""
    raws = list(raws)
    for raw in raws:
        if getattr(raw, "classes", None) is not None:
            return list(raw.classes)  # type: ignore[attr-defined]
    names: set[str] = set()
    max_index = -1
    for raw in raws:
        for label in set(_labels(raw) or ()):
            if isinstance(label, int):
                max_index = max(max_index, label)
            elif label is not None:
                names.add(label)
    if names and max_index >= 0:
        raise ValueError("annotations mix class names and integer labels: pass `classes` (a class list) to map them")
    return sorted(names) if names else [str(i) for i in range(max_index + 1)]


def to_records(raw: Sequence[RawRecord], classes: Sequence[str], source: str | os.PathLike = "", *, unknown: str = "raise") -> VideoRecords:
    """Map raw labels to indices of ``classes``: one dictionary look-up per row. A label outside
    them raises a ValueError naming every such label and where the first one is (file:line)
    (``unknown="raise"``), or becomes -1 (``unknown="unlabelled"``)."""
    labels = _labels(raw)
    paths = raw.paths if isinstance(raw, RawAnnotations) else [r.path for r in raw]
    rows = None if isinstance(raw, RawAnnotations) else [r.row for r in raw]
    if labels is None:
        return VideoRecords(paths, np.full(len(paths), -1, dtype=np.int32), rows)
    index = {name: i for i, name in enumerate(classes)}
    code: dict[str | int | None, int] = {}
    for label in set(labels):
        if label is None:
            code[label] = -1
        elif isinstance(label, int):
            code[label] = label if 0 <= label < len(classes) else -1
        else:
            code[label] = index.get(label, -1)
    bad = {label for label, c in code.items() if c < 0 and label is not None}
    if bad and unknown == "raise":
        counts = Counter(label for label in labels if label in bad)
        shown = ", ".join(f"{k!r} ({n} videos)" for k, n in sorted(counts.items(), key=lambda kv: str(kv[0]))[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        first = min(labels.index(label) for label in bad)
        where = raw.where(first) if isinstance(raw, RawAnnotations) else f"{source} (row {first})"
        raise ValueError(
            f"{source}: {len(bad)} labels are not among the {len(classes)} classes of the model/class list: {shown}{more} "
            f"(the first, {labels[first]!r}, at {where}); the classes are {_some(list(classes))}"
        )
    codes = np.fromiter(map(code.__getitem__, labels), dtype=np.int32, count=len(labels))
    return VideoRecords(paths, codes, rows)


def read_predict_source(source: str | os.PathLike, root: str | os.PathLike = ".") -> RawAnnotations:
    """The videos to predict on: a video file, a folder (every video file under it,
    recursively, unlabelled), a glob pattern (``**`` recursive), or an annotation source in any
    format (detected; labels kept where given; a dataset's annotation folder gives its test
    videos). Rows follow the sorted paths."""
    text = os.path.expanduser(os.fspath(source))
    if any(ch in text for ch in "*?["):
        pattern = text if os.path.isabs(text) else os.path.join(os.fspath(root), text)
        found = sorted((p for p in glob.glob(pattern, recursive=True) if is_video_name(p) and os.path.isfile(p)), key=lambda p: p.split(os.sep))
        if not found:
            raise ValueError(f"predict: no video files ({', '.join(VIDEO_EXTENSIONS[:4])}, ...) match {pattern!r}")
        return RawAnnotations(found, None, pattern)
    path = _under(root, text)
    if os.path.isfile(path) and is_video_name(path):
        return RawAnnotations([path], None, path)
    if os.path.isdir(path):
        if detect_format(path) in _ANNOTATION_FOLDERS:
            return read_source(path, os.fspath(root), subset="predict")
        found = find_videos(path)
        if not found:
            raise ValueError(f"predict: no video files ({', '.join(VIDEO_EXTENSIONS[:4])}, ...) under {path}")
        return RawAnnotations(found, None, path)
    if not os.path.exists(path):
        raise ValueError(f"predict: {path} is neither a video file, a folder, a glob pattern nor an annotation list (looked relative to root={root})")
    return read_source(path, os.fspath(root), subset="predict")


def _labels(raw: Sequence[RawRecord]) -> list[str | int | None] | None:
    if isinstance(raw, RawAnnotations):
        return raw.labels
    labels = [r.label for r in raw]
    return labels if any(label is not None for label in labels) else None


def _some(items: list[str], limit: int = 8) -> str:
    return ", ".join(items[:limit]) + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def _under(root: str | os.PathLike, path: str | os.PathLike) -> str:
    return joiner(root)(os.fspath(path))
