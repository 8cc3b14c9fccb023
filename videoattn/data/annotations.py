"""Annotation readers: `path label` / `path,label` lists (PySlowFast, pytorchvideo), the
official Kinetics CSV (label,youtube_id,time_start,time_end,split) and a folder per class.
All give a list of VideoRecord (path, label index, row) plus the class names, without
opening any video. Class order is stable: a given list, else the sorted names found.
"""
from __future__ import annotations

import csv
import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoRecord",
    "kinetics_filename",
    "load_annotations",
    "read_class_list",
    "read_predict_source",
    "resolve_classes",
    "write_class_list",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv")
KINETICS_COLUMNS = ("youtube_id", "time_start", "time_end")


@dataclass(frozen=True)
class VideoRecord:
    """One video: absolute ``path``, ``label`` (class index, -1 if unknown) and ``row``, the
    0-based position of the video in its annotation file (reported as ``video_index``)."""

    path: str
    label: int
    row: int


@dataclass(frozen=True)
class _RawRecord:
    path: str
    label: str | int | None  # a class name, an index, or None (unlabelled)
    row: int


def kinetics_filename(youtube_id: str, time_start: float | str, time_end: float | str, ext: str = ".mp4") -> str:
    """``{youtube_id}_{start:06d}_{end:06d}.mp4``, the name used by the Kinetics downloaders."""
    return f"{youtube_id}_{int(float(time_start)):06d}_{int(float(time_end)):06d}{ext}"


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
) -> tuple[list[VideoRecord], list[str]]:
    """Read one annotation source and map labels to indices.

    ``source`` (relative to ``root`` or absolute) is a list file, a Kinetics CSV or a
    directory with one sub-folder per class. Returns the records and the class names used:
    ``classes`` if given, else the sorted names found (or ``0..max`` for integer labels).
    """
    raw = read_raw_annotations(source, root)
    names = list(classes) if classes is not None else infer_classes([raw])
    return to_records(raw, names, source), names


def read_raw_annotations(source: str | os.PathLike, root: str | os.PathLike = ".") -> list[_RawRecord]:
    path = _under(root, source)
    if path.is_dir():
        return _read_class_folders(path)
    if not path.is_file():
        raise ValueError(f"annotation file {path} does not exist (looked relative to root={root})")
    with open(path, encoding="utf-8", newline="") as f:
        head = f.readline()
    header = [c.strip().lower() for c in head.strip().split(",")]
    if all(c in header for c in KINETICS_COLUMNS):
        return _read_kinetics_csv(path, Path(root))
    return _read_list(path, Path(root))


def infer_classes(raws: Iterable[list[_RawRecord]]) -> list[str]:
    """Sorted class names found; for integer labels, "0".."max" (no names to sort)."""
    names: set[str] = set()
    max_index = -1
    for raw in raws:
        for r in raw:
            if isinstance(r.label, int):
                max_index = max(max_index, r.label)
            elif r.label is not None:
                names.add(r.label)
    if names and max_index >= 0:
        raise ValueError("annotations mix class names and integer labels: pass `classes` (a class list) to map them")
    return sorted(names) if names else [str(i) for i in range(max_index + 1)]


def to_records(raw: list[_RawRecord], classes: Sequence[str], source: str | os.PathLike = "", *, unknown: str = "raise") -> list[VideoRecord]:
    """Map raw labels to indices of ``classes``. A label outside them raises a ValueError naming
    every such label (``unknown="raise"``), or becomes -1 (``unknown="unlabelled"``)."""
    index = {name: i for i, name in enumerate(classes)}
    out, bad = [], {}
    for r in raw:
        if r.label is None:
            label = -1
        elif isinstance(r.label, int):
            label = r.label if 0 <= r.label < len(classes) else -1
        else:
            label = index.get(r.label, -1)
        if label < 0 and r.label is not None:
            bad[r.label] = bad.get(r.label, 0) + 1
        out.append(VideoRecord(r.path, label, r.row))
    if bad and unknown == "raise":
        shown = ", ".join(f"{k!r} ({n} videos)" for k, n in sorted(bad.items(), key=lambda kv: str(kv[0]))[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise ValueError(
            f"{source}: {len(bad)} labels are not among the {len(classes)} classes of the model/class list: {shown}{more}; "
            f"the classes are {_some(list(classes))}"
        )
    return out


def read_predict_source(source: str | os.PathLike, root: str | os.PathLike = ".") -> list[_RawRecord]:
    """The videos to predict on: a video file, a folder (searched recursively for video files,
    unlabelled), a glob pattern (``**`` recursive), or an annotation list / Kinetics CSV /
    folder-per-class tree (labels kept where given). Rows follow the sorted paths."""
    text = os.path.expanduser(str(source))
    if any(ch in text for ch in "*?["):
        pattern = text if os.path.isabs(text) else os.path.join(str(root), text)
        found = sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).suffix.lower() in VIDEO_EXTENSIONS and os.path.isfile(p))
        if not found:
            raise ValueError(f"predict: no video files ({', '.join(VIDEO_EXTENSIONS[:4])}, ...) match {pattern!r}")
        return [_RawRecord(p, None, i) for i, p in enumerate(found)]
    path = _under(root, text)
    if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
        return [_RawRecord(str(path), None, 0)]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
        if not found:
            raise ValueError(f"predict: no video files ({', '.join(VIDEO_EXTENSIONS[:4])}, ...) under {path}")
        return [_RawRecord(str(p), None, i) for i, p in enumerate(found)]
    if not path.exists():
        raise ValueError(f"predict: {path} is neither a video file, a folder, a glob pattern nor an annotation list (looked relative to root={root})")
    return read_raw_annotations(path, root)


def _some(items: list[str], limit: int = 8) -> str:
    return ", ".join(items[:limit]) + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


# ------------------------------------------------------------------------------ formats


def _under(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    p = Path(os.path.expanduser(str(path)))
    return p if p.is_absolute() else Path(root) / p


def _parse_label(token: str) -> str | int:
    token = token.strip()
    try:
        return int(token)
    except ValueError:
        return token.strip('"')


def _read_list(path: Path, root: Path) -> list[_RawRecord]:
    """``path label`` (space or tab, PySlowFast) or ``path,label`` lines; the label is the last
    field, so paths may contain spaces. A line with only a path is unlabelled."""
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            sep = "," if "," in line else None
            parts = line.rsplit(sep, 1) if sep else line.rsplit(maxsplit=1)
            if len(parts) == 1:
                video, label = parts[0], None
            else:
                video, label = parts[0].strip(), _parse_label(parts[1])
                if isinstance(label, str) and Path(label).suffix.lower() in VIDEO_EXTENSIONS:
                    video, label = line, None  # a path with a space and no label
            if not video:
                raise ValueError(f"{path}:{lineno}: empty path in line {line!r}")
            out.append(_RawRecord(str(_under(root, video)), label, len(out)))
    return out


def _read_kinetics_csv(path: Path, root: Path) -> list[_RawRecord]:
    """Official Kinetics CSV. Videos are looked up as ``{youtube_id}_{start:06d}_{end:06d}.mp4``
    under ``root`` in the first layout that holds the first rows' files: ``root/<split>/<label>/``,
    ``root/<split>/``, ``root/<csv stem>/<label>/``, ``root/<csv stem>/``, ``root/<label>/``, ``root/``."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames is not None
        reader.fieldnames = [c.strip().lower() for c in reader.fieldnames]
        rows = list(reader)
    for i, row in enumerate(rows):
        if not row.get("youtube_id") or row.get("time_start") in (None, "") or row.get("time_end") in (None, ""):
            raise ValueError(f"{path}: row {i} (line {i + 2}) lacks youtube_id/time_start/time_end: {row}")
    templates = ["{split}/{label}/{file}", "{split}/{file}", "{stem}/{label}/{file}", "{stem}/{file}", "{label}/{file}", "{file}"]

    def fill(template: str, row: dict[str, str]) -> str:
        label = (row.get("label") or "").strip()
        file = kinetics_filename(row["youtube_id"].strip(), row["time_start"], row["time_end"])
        return template.format(split=(row.get("split") or "").strip(), label=label, stem=path.stem, file=file)

    probe = rows[:64]
    hits = [sum((root / fill(t, r)).is_file() for r in probe) for t in templates]
    template = templates[max(range(len(templates)), key=lambda k: (hits[k], -k))] if any(hits) else templates[1]
    out = []
    for i, row in enumerate(rows):
        label = (row.get("label") or "").strip() or None
        out.append(_RawRecord(str(root / fill(template, row)), label, i))
    return out


def _read_class_folders(folder: Path) -> list[_RawRecord]:
    """``folder/<class>/<video>``: rows in sorted (class, file) order. A folder holding videos
    directly (no class sub-folders) gives unlabelled records, e.g. for prediction."""
    loose = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if loose and not any(p.is_dir() for p in folder.iterdir()):
        return [_RawRecord(str(p), None, i) for i, p in enumerate(loose)]
    out = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for video in sorted(p for p in class_dir.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS):
            out.append(_RawRecord(str(video), class_dir.name, len(out)))
    if not out:
        raise ValueError(f"{folder}: no video files ({', '.join(VIDEO_EXTENSIONS[:4])}, ...) in class sub-folders")
    return out
