"""VideoRecord (one video of an annotation list) and VideoRecords, a whole list held in three
arrays: the paths as one UTF-8 buffer with their end offsets, the labels and the rows. A
Kinetics train list (240,000 videos) takes about 20 MB and no per-row Python object, so
DataLoader workers forked from the main process do not copy it page by page as they touch
refcounts (pytorch/pytorch#13246); a VideoRecord is made when a row is read.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence, overload

import numpy as np

__all__ = ["VideoRecord", "VideoRecords"]


@dataclass(frozen=True)
class VideoRecord:
    """One video: absolute ``path``, ``label`` (class index, -1 if unknown) and ``row``, the
    0-based position of the video in its annotation file (reported as ``video_index``)."""

    path: str
    label: int
    row: int


class VideoRecords(Sequence[VideoRecord]):
    """A list of VideoRecord stored as arrays; indexing gives VideoRecord, slicing VideoRecords.

    Args:
        paths: the videos' paths (no NUL character).
        labels: class index per video (-1: unlabelled).
        rows: row per video; default ``0..n-1`` (the position in the list).
    """

    def __init__(self, paths: Sequence[str], labels: Sequence[int] | np.ndarray, rows: Sequence[int] | np.ndarray | None = None) -> None:
        n = len(paths)
        # one terminator per path: n NULs, whatever the paths (an empty one included)
        self._blob = ("\0".join(paths) + "\0").encode("utf-8", "surrogateescape") if n else b""
        self._ends = np.flatnonzero(np.frombuffer(self._blob, dtype=np.uint8) == 0)
        if len(self._ends) != n:
            raise ValueError("a video path holds a NUL character")
        self._labels = np.asarray(labels, dtype=np.int32).reshape(-1)
        self._rows = None if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(self._labels) != n or (self._rows is not None and len(self._rows) != n):
            raise ValueError(f"{n} paths but {len(self._labels)} labels" + ("" if self._rows is None else f" and {len(self._rows)} rows"))

    @classmethod
    def from_records(cls, records: Iterable[VideoRecord]) -> VideoRecords:
        """VideoRecords holding ``records`` (any iterable of VideoRecord)."""
        records = list(records)
        return cls([r.path for r in records], [r.label for r in records], [r.row for r in records])

    def __len__(self) -> int:
        return len(self._labels)

    @overload
    def __getitem__(self, index: int) -> VideoRecord: ...

    @overload
    def __getitem__(self, index: slice) -> VideoRecords: ...

    def __getitem__(self, index: int | slice) -> VideoRecord | VideoRecords:
        if isinstance(index, slice):
            picked = range(len(self))[index]
            if picked.step != 1 or not picked:
                paths = self.paths
                return VideoRecords([paths[i] for i in picked], self._labels[index], self.rows[index])
            # a contiguous run: its bytes and offsets, no decoding
            first, last = picked.start, picked.stop - 1
            begin = int(self._ends[first - 1]) + 1 if first else 0
            out = VideoRecords.__new__(VideoRecords)
            out._blob = self._blob[begin : int(self._ends[last]) + 1]
            out._ends = self._ends[first : last + 1] - begin
            out._labels = self._labels[index].copy()
            out._rows = np.arange(first, last + 1, dtype=np.int64) if self._rows is None else self._rows[first : last + 1].copy()
            return out
        n = len(self)
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"record {index} out of range for {n} records")
        start = int(self._ends[i - 1]) + 1 if i else 0
        path = self._blob[start : int(self._ends[i])].decode("utf-8", "surrogateescape")
        return VideoRecord(path, int(self._labels[i]), i if self._rows is None else int(self._rows[i]))

    def __iter__(self) -> Iterator[VideoRecord]:
        rows = range(len(self)) if self._rows is None else self._rows.tolist()
        return map(VideoRecord, self.paths, self._labels.tolist(), rows)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, VideoRecords):
            return self._blob == other._blob and np.array_equal(self._labels, other._labels) and np.array_equal(self.rows, other.rows)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        head = ", ".join(repr(r) for r in (self[i] for i in range(min(len(self), 2))))
        return f"VideoRecords({len(self)} videos: {head}{', ...' if len(self) > 2 else ''})"

    @property
    def paths(self) -> list[str]:
        """The paths, as a new list."""
        return self._blob[:-1].decode("utf-8", "surrogateescape").split("\0") if len(self) else []

    @property
    def labels(self) -> np.ndarray:
        """Class index per video (-1: unlabelled), int32."""
        return self._labels

    @property
    def rows(self) -> np.ndarray:
        """Row per video, int64."""
        return np.arange(len(self), dtype=np.int64) if self._rows is None else self._rows

    def digest(self) -> str:
        """sha256 (hex) of the records: the paths (UTF-8, each ended by a NUL), labels (int32)
        and rows (int64), little-endian; no object per row."""
        digest = hashlib.sha256(self._blob)
        digest.update(self._labels.astype("<i4").tobytes())
        digest.update(self.rows.astype("<i8").tobytes())
        return digest.hexdigest()

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (the records' memory, less a few hundred bytes of objects)."""
        return len(self._blob) + self._ends.nbytes + self._labels.nbytes + (0 if self._rows is None else self._rows.nbytes)
