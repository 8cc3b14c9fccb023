"""Capture of what a native library writes to the process's C-level stderr (file descriptor 2),
so that it becomes an error's reason instead of console noise (decord prints its own error lines
there, with the video's bytes as its name when reading from memory).
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

__all__ = ["captured_native_stderr"]


@contextmanager
def captured_native_stderr() -> Iterator[list[str]]:
    """Send fd 2 to a scratch file while the block runs; the list it yields holds what was
    written, once the block ends. Serialised by a lock, as fd 2 is shared by the process's
    threads."""
    captured: list[str] = []
    with _LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no fd 2 (closed): nothing to keep quiet
            yield captured
            return
        sink = _sink()
        os.ftruncate(sink, 0)
        os.lseek(sink, 0, os.SEEK_SET)
        os.dup2(sink, 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.lseek(sink, 0, os.SEEK_SET)
            captured.append(os.read(sink, 65536).decode("utf-8", "replace"))


def _sink() -> int:
    """A scratch file (already unlinked) per process, reused: cheaper than a new one per call."""
    global _SINK
    if _SINK is None or _SINK[0] != os.getpid():
        handle, path = tempfile.mkstemp(prefix="videoattn-stderr-")
        os.unlink(path)
        _SINK = (os.getpid(), handle)
    return _SINK[1]


_SINK: tuple[int, int] | None = None
_LOCK = threading.Lock()


def _new_lock_in_child() -> None:  # a fork while another thread held the lock must not deadlock the child
    global _LOCK
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_in_child)
