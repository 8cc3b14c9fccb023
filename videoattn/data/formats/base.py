"""What every annotation format reader gives (RawAnnotations: paths and labels as columns, the
format's own class list, and where a row came from for error messages), and the helpers the
readers share: joining paths under a root with string operations (no Path object per row),
reading text with errors that name the file, finding where a dataset keeps its videos.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

__all__ = ["VIDEO_EXTENSIONS", "RawAnnotations", "RawRecord", "is_video_name", "joiner", "read_text", "video_base"]

log = logging.getLogger("videoattn.data")

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv")


def is_video_name(name: str) -> bool:
    """Whether ``name`` ends in a video extension (any case)."""
    return name.lower().endswith(VIDEO_EXTENSIONS)


@dataclass(frozen=True)
class RawRecord:
    """One row before labels become indices: ``label`` is a class name, an index, or None."""

    path: str
    label: str | int | None
    row: int


@dataclass
class RawAnnotations(Sequence[RawRecord]):
    """The rows of one annotation source, as columns.

    Args:
        paths: video paths, under the root.
        labels: per row a class name, an integer index or None (unlabelled); None: no row
            has a label.
        source: what was read (a file or folder), for messages.
        classes: the class names the format itself defines, in index order (UCF101's
            classInd.txt, SSv2's labels.json, HMDB51's split files); None: from the labels.
        locate: row -> "file:line" of that row (computed on demand, for errors).
    """

    paths: list[str]
    labels: list[str | int | None] | None
    source: str
    classes: list[str] | None = None
    locate: Callable[[int], str] | None = None

    def where(self, row: int) -> str:
        """``file:line`` of ``row`` (or the source and row when the format cannot tell)."""
        return self.locate(row) if self.locate is not None else f"{self.source} (row {row})"

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, row: int) -> RawRecord:  # type: ignore[override]
        return RawRecord(self.paths[row], None if self.labels is None else self.labels[row], range(len(self.paths))[row])

    def __iter__(self) -> Iterator[RawRecord]:
        labels = [None] * len(self.paths) if self.labels is None else self.labels
        return map(RawRecord, self.paths, labels, range(len(self.paths)))


def joiner(root: str | os.PathLike) -> Callable[[str], str]:
    """``join(path)``: ``path`` under ``root`` unless absolute (``~`` expanded), by string
    concatenation: what ``str(Path(root) / path)`` gives for plain relative paths."""
    base = os.path.expanduser(os.fspath(root))
    prefix = "" if base in ("", ".") else base if base.endswith(os.sep) else base + os.sep
    isabs = (lambda p: p[:1] == "/") if os.sep == "/" else os.path.isabs

    def join(path: str) -> str:
        if path[:1] == "~":
            path = os.path.expanduser(path)
        if isabs(path):
            return path
        return prefix + (path[2:] if path[:2] == "./" else path)

    return join


def read_text(path: str | os.PathLike, what: str = "annotation file") -> str:
    """The file's text (UTF-8, a BOM dropped); a missing or non-text file (not UTF-8, a NUL
    character) is a ValueError naming it and the line."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except FileNotFoundError:
        raise ValueError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"{what} {path} is a folder, not a file") from None
    except UnicodeDecodeError as exc:
        line = open(path, "rb").read()[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start}); is it an annotation file?") from None
    if "\0" in text:
        raise ValueError(f"{path}:{text.count(chr(10), 0, text.index(chr(0))) + 1}: a NUL character; is it an annotation file?")
    return text


def video_base(root: str, candidates: Sequence[str], relative: Sequence[str], dataset: str, source: str) -> str:
    """The folder under ``root`` (``root`` itself or one of ``candidates``, sub-folder names in
    which the dataset is usually unpacked) that holds the first of the ``relative`` video paths;
    ``root`` when none does, with a warning: a bounded probe, never a check per row."""
    probe = [p for p in relative[:8] if p]
    bases = [root] + [os.path.join(root, c) for c in candidates]
    for base in bases:
        if any(os.path.exists(os.path.join(base, p)) for p in probe):
            return base
    if probe:
        log.warning("%s: none of the first videos of %s (%s, ...) is under %s; check data.root", dataset, source, probe[0], " or ".join(bases))
    return root


def first_unlisted(base: str, relative: Sequence[str]) -> int | None:
    """The first row whose video is missing from its folder under ``base``, among the folders
    that exist (one listing per folder, none per row); None when every such video is there.
    A folder that does not exist is not checked (videos may live elsewhere)."""
    listings: dict[str, set[str] | None] = {}
    for row, rel in enumerate(relative):
        folder, _, name = rel.rpartition("/")
        if folder not in listings:
            directory = os.path.join(base, folder)
            listings[folder] = set(os.listdir(directory)) if os.path.isdir(directory) else None
        names = listings[folder]
        if names is not None and name not in names:
            return row
    return None


def check_subset(subset: str, dataset: str) -> None:
    if subset not in SUBSETS:
        raise ValueError(f"{dataset}: unknown subset {subset!r}; expected one of {', '.join(SUBSETS)}")


def check_split(split: int | None, from_name: int | None, source: str, dataset: str) -> int:
    """The official split to read: ``split`` (1-3), else the one in the file name, else 1; a
    file named for another split than ``split`` is an error."""
    if split is not None and split not in (1, 2, 3):
        raise ValueError(f"{dataset}: split must be 1, 2 or 3, got {split}")
    if split is not None and from_name is not None and split != from_name:
        raise ValueError(f"{dataset}: {source} is split {from_name}, but split {split} was asked for (data.split)")
    return split or from_name or 1


SUBSETS = ("train", "val", "test", "predict", "all")
