"""Tests for videoattn.data.records: VideoRecords gives the same VideoRecord per row as a list
would (indexing, slicing, iteration, pickling), for any path (non-ASCII, undecodable bytes,
empty), in arrays of a few bytes per row beyond the paths themselves.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from videoattn.data.records import VideoRecord, VideoRecords

PATHS = ["/d/a.mp4", "/d/é ü/b c.mp4", "", "/d/\udcff.avi", "/d/e.webm"]  # \udcff: a byte that is not UTF-8


def test_records_behave_as_a_list_of_video_records() -> None:
    expected = [VideoRecord(p, i % 3 - 1, 10 + i) for i, p in enumerate(PATHS)]
    records = VideoRecords(PATHS, [r.label for r in expected], [r.row for r in expected])
    assert len(records) == 5 and list(records) == expected and [records[i] for i in range(5)] == expected
    assert records[-1] == expected[-1] and records.paths == PATHS
    for index in (slice(1, 4), slice(None, None, 2), slice(3, 1), slice(-2, None), slice(None, None, -1)):
        assert list(records[index]) == expected[index], index
    with pytest.raises(IndexError):
        records[5]
    assert pickle.loads(pickle.dumps(records)) == records
    assert VideoRecords.from_records(expected) == records
    default_rows = VideoRecords(PATHS, np.zeros(5))
    assert default_rows.rows.tolist() == [0, 1, 2, 3, 4] and default_rows[3:][1].row == 4
    empty = VideoRecords([], [])
    assert len(empty) == 0 and list(empty) == [] and empty.paths == [] and list(records[2:2]) == []
    with pytest.raises(ValueError, match="NUL"):
        VideoRecords(["a\0b.mp4"], [0])
    with pytest.raises(ValueError, match="2 paths but 1 labels"):
        VideoRecords(["a", "b"], [0])


def test_records_memory_is_the_paths_plus_a_few_bytes_per_row() -> None:
    paths = [f"/data/kinetics400/train/playing didgeridoo/{i:011d}_000010_000020.mp4" for i in range(10_000)]
    records = VideoRecords(paths, np.arange(10_000) % 400)
    path_bytes = sum(len(p) + 1 for p in paths)
    assert records.nbytes <= path_bytes + 12 * len(paths)  # 8 (offset) + 4 (label); rows implicit
    assert records[1234] == VideoRecord(paths[1234], 1234 % 400, 1234)


def test_digest_tells_records_apart() -> None:
    records = VideoRecords(PATHS, [0, 1, 2, 3, 4])
    assert records.digest() == VideoRecords(list(PATHS), np.arange(5)).digest() == records[0:5].digest()
    others = [VideoRecords(PATHS[:4] + ["/d/f.webm"], np.arange(5)), VideoRecords(PATHS, [0, 1, 2, 3, 3]), VideoRecords(PATHS, np.arange(5), np.arange(1, 6)),
              VideoRecords(["/d/a.mp", "4"] + PATHS[1:4], np.arange(5))]
    assert len({records.digest()} | {o.digest() for o in others}) == 5
