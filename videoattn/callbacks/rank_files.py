"""Per-video results streamed to one file per process, merged in video order on rank 0.

Test and predict give each process a disjoint, ascending share of the videos (the data
module's unpadded eval sampler), so each process's file is already sorted by ``video_index``
and the merge is a k-way merge: memory stays bounded whatever the number of videos. (Shards
stream each process's share in the order of its DataLoader workers' chunks: such a file is
sorted once, when it is closed.)
"""
from __future__ import annotations

import heapq
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch.distributed as dist

__all__ = ["RankFiles", "all_gather_objects"]


def all_gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every process (a one-item list without torch.distributed)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        everyone: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, obj)
        return everyone
    return [obj]


class RankFiles:
    """JSON-lines rows (each with a ``video_index``) written by this process into
    ``<folder>/rank<R>.jsonl``, read back merged over all processes by :meth:`merged`."""

    def __init__(self, folder: Path, rank: int) -> None:
        self.folder = folder
        self.rank = rank
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"rank{rank}.jsonl"
        self._file = self.path.open("w", encoding="utf-8")
        self._last: int | None = None
        self._in_order = True

    def write(self, row: dict[str, Any]) -> None:
        index = row["video_index"]
        self._in_order = self._in_order and (self._last is None or index >= self._last)
        self._last = index
        self._file.write(json.dumps(row) + "\n")

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
            if not self._in_order:
                lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
                lines.sort(key=lambda line: json.loads(line)["video_index"])
                self.path.write_text("".join(lines), encoding="utf-8")

    def merged(self) -> Iterator[dict[str, Any]]:
        """Every process's rows in ``video_index`` order, each index once."""
        files = sorted(self.folder.glob("rank*.jsonl"))
        streams = [(json.loads(line) for line in f.open(encoding="utf-8")) for f in files]
        last = None
        for row in heapq.merge(*streams, key=lambda r: r["video_index"]):
            if row["video_index"] != last:
                yield row
            last = row["video_index"]

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
