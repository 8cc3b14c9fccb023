"""The official Kinetics-400/600/700 CSVs: ``label,youtube_id,time_start,time_end,split`` (more
columns, such as ``is_cc``, are ignored; a test CSV may have no ``label``), the videos named
``{youtube_id}_{start:06d}_{end:06d}.mp4`` by the downloaders.

The videos are looked up under ``root`` in the first layout that holds the first rows' files:
``<split>/<label>/``, ``<split>/`` (the split column: cvdfoundation's ``annotations/train.csv``
with ``train/``), ``<csv stem>/<label>/``, ``<csv stem>/``, ``<label>/``, ``root`` itself.
That probe stats at most 64 rows per layout; the rows are then read in one pass of the csv
module with string operations only.
"""
from __future__ import annotations

import csv
import io
import os
from itertools import chain, islice
from typing import Callable

from videoattn.data.formats.base import RawAnnotations, joiner, read_text

__all__ = ["COLUMNS", "NAME", "detect", "kinetics_filename", "read"]

NAME = "kinetics"
COLUMNS = ("youtube_id", "time_start", "time_end")
_PROBE_ROWS = 64
# layout -> the video's path under root from (split, label, csv stem, file name)
_LAYOUTS: dict[str, Callable[[str, str, str, str], str]] = {
    "{split}/{label}/{file}": lambda split, label, stem, file: f"{split}/{label}/{file}",
    "{split}/{file}": lambda split, label, stem, file: f"{split}/{file}",
    "{stem}/{label}/{file}": lambda split, label, stem, file: f"{stem}/{label}/{file}",
    "{stem}/{file}": lambda split, label, stem, file: f"{stem}/{file}",
    "{label}/{file}": lambda split, label, stem, file: f"{label}/{file}",
    "{file}": lambda split, label, stem, file: file,
}


def _seconds(value: str) -> str:
    """A time as the 6 digits of the file name: "3" and "3.0" -> "000003"."""
    if value.isdigit() and value.isascii():
        return value.zfill(6)
    try:
        return f"{int(float(value)):06d}"
    except (ValueError, OverflowError):
        raise ValueError(f"has the time {value!r}, not a number of seconds") from None


def kinetics_filename(youtube_id: str, time_start: float | str, time_end: float | str, ext: str = ".mp4") -> str:
    """``{youtube_id}_{start:06d}_{end:06d}.mp4``, the name used by the Kinetics downloaders."""
    return f"{youtube_id}_{int(float(time_start)):06d}_{int(float(time_end)):06d}{ext}"


def _header(first_line: str) -> list[str]:
    return [c.strip().strip('"').lower() for c in first_line.lstrip("\ufeff").strip().split(",")]


def detect(path: str) -> bool:
    """Whether the file's first line is a Kinetics header."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            header = _header(f.readline())
    except OSError:
        return False
    return all(c in header for c in COLUMNS)


def read(path: str, root: str, *, subset: str = "train", split: int | None = None) -> RawAnnotations:
    """Read a Kinetics CSV; videos under ``root`` in the layout the first rows' files show."""
    stem = os.path.splitext(os.path.basename(path))[0]
    text = read_text(path)
    # what the rows need checked, decided once for the whole file: non-ASCII digits (whose
    # isdigit() is true), spaces around fields
    ascii_digits = text.isascii()
    padded = any(pad in text for pad in (", ", " ,", " \n", "\n "))
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [c.strip().lower() for c in next(reader, [])]
    except csv.Error as exc:
        raise ValueError(f"{path}:1: {exc}") from None
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path}:1: a Kinetics CSV needs the columns {', '.join(COLUMNS)} (and label, split); its header is {','.join(header)!r}")
    columns = [header.index(c) if c in header else None for c in ("label", "youtube_id", "time_start", "time_end", "split")]
    get = _getter(columns)
    paths: list[str] = []
    labels: list[str | None] = []
    try:
        first = [row for row in islice(reader, _PROBE_ROWS) if row]
        join = joiner(root)
        layout = _layout(first, get, join, stem)
        # the layout's folders as flags, the root (and a stem folder) as one prefix: a row
        # costs string operations only (no call to a function of ours)
        with_split, with_label = layout.startswith("{split}"), "{label}" in layout
        prefix = join(f"{stem}/" if layout.startswith("{stem}") else "")
        add_path, add_label = paths.append, labels.append
        for row in chain(first, reader):
            if not row:
                continue  # a blank line
            label, youtube_id, start, end, split_name = get(row)
            if padded:
                label, youtube_id, start, end, split_name = label.strip(), youtube_id.strip(), start.strip(), end.strip(), split_name.strip()
            if not (youtube_id and start and end):
                raise ValueError("lacks youtube_id/time_start/time_end")
            start = start.zfill(6) if start.isdigit() and (ascii_digits or start.isascii()) else _seconds(start)
            end = end.zfill(6) if end.isdigit() and (ascii_digits or end.isascii()) else _seconds(end)
            folders = (split_name + "/" if with_split and split_name else "") + (label + "/" if with_label and label else "")
            add_path(f"{prefix}{folders}{youtube_id}_{start}_{end}.mp4")
            add_label(label or None)
    except (ValueError, IndexError, csv.Error) as exc:
        row_index = len(paths)
        reason = "has fewer columns than its header" if isinstance(exc, IndexError) else str(exc)
        line = _line_of_row(path, row_index)
        raise ValueError(f"{path}:{line}: row {row_index} {reason}: {_line(path, line)!r}") from None

    def locate(row: int) -> str:
        return f"{path}:{_line_of_row(path, row)}"

    return RawAnnotations(paths, labels if columns[0] is not None and any(labels) else None, str(path), locate=locate)


def _getter(columns: list[int | None]) -> Callable[[list[str]], tuple[str, str, str, str, str]]:
    """row -> (label, youtube_id, time_start, time_end, split), "" for a column the CSV lacks."""
    if all(c is not None for c in columns):
        from operator import itemgetter

        return itemgetter(*columns)  # type: ignore[return-value]

    def get(row: list[str]) -> tuple[str, str, str, str, str]:
        return tuple(row[c] if c is not None else "" for c in columns)  # type: ignore[return-value]

    return get


def _layout(rows: list[list[str]], get: Callable, join: Callable[[str], str], stem: str) -> str:
    """The layout in which most of ``rows``' videos exist (the first on a tie; ``{split}/{file}`` if none)."""
    hits = dict.fromkeys(_LAYOUTS, 0)
    for row in rows:
        try:
            label, youtube_id, start, end, split_name = get(row)
            file = f"{youtube_id.strip()}_{_seconds(start)}_{_seconds(end)}.mp4"
        except (ValueError, IndexError):
            continue  # reported by the main pass, with its line
        split_name, label = split_name.strip(), label.strip()
        for name, layout in _LAYOUTS.items():
            if ("{split}" in name and not split_name) or ("{label}" in name and not label):
                continue  # a layout with an empty folder name is another layout
            hits[name] += os.path.isfile(join(layout(split_name, label, stem, file)))
    best = max(hits, key=hits.__getitem__)
    return best if hits[best] else "{split}/{file}"


def _line_of_row(path: str, row: int) -> int:
    """The line on which data row ``row`` (0-based, after the header, blank lines skipped) ends."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        reader = csv.reader(f)
        next(reader, None)
        seen = -1
        try:
            for record in reader:
                seen += bool(record)
                if seen == row:
                    break
        except csv.Error:
            pass  # the row that fails to parse: its line is where the reader stopped
        return reader.line_num


def _line(path: str, number: int) -> str:
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        return next(islice(f, number - 1, None), "").rstrip("\r\n")
