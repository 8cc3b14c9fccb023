"""A folder per class (``root/<class>/<video>``: torchvision's and pytorchvideo's layout), and
every video file under a folder, recursively (what ``predict`` and ``check-data`` take). Folders
are listed with ``os.scandir`` (no Path object per file), in sorted order.
"""
from __future__ import annotations

import os

from videoattn.data.formats.base import VIDEO_EXTENSIONS, RawAnnotations, is_video_name

__all__ = ["NAME", "find_videos", "read"]

NAME = "folders"


def _entries(folder: str) -> list[os.DirEntry]:
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: e.name)


def read(path: str, root: str = ".", *, subset: str = "train", split: int | None = None) -> RawAnnotations:
    """``path/<class>/<video>``: rows in sorted (class, file) order. A folder holding videos
    directly and no sub-folder gives unlabelled records (e.g. for prediction)."""
    folder = os.fspath(path)
    entries = _entries(folder)
    sub = [e for e in entries if e.is_dir()]
    if not sub:
        loose = [e.path for e in entries if is_video_name(e.name) and e.is_file()]
        if loose:
            return RawAnnotations(loose, None, folder)
    paths: list[str] = []
    labels: list[str | int | None] = []
    for class_dir in sub:
        videos = [e.path for e in _entries(class_dir.path) if is_video_name(e.name)]
        paths += videos
        labels += [class_dir.name] * len(videos)
    if not paths:
        raise ValueError(f"{folder}: no video files ({', '.join(VIDEO_EXTENSIONS[:4])}, ...) in class sub-folders")
    return RawAnnotations(paths, labels, folder)


def find_videos(folder: str) -> list[str]:
    """Every video file under ``folder``, recursively, sorted by path components (as Path sorts)."""
    found: list[str] = []
    for parent, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.join(parent, name) for name in files if is_video_name(name)]
    return sorted(found, key=lambda p: p.split(os.sep))
