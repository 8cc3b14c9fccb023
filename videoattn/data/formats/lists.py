"""``path label`` lists (space or tab: PySlowFast, mmaction2's video lists) and ``path,label``
lines (pytorchvideo). The label is the last field, so paths may hold spaces; an integer label
is a class index, anything else a class name; a line with only a path is unlabelled; blank
lines and ``#`` comments are skipped.
"""
from __future__ import annotations

import os

from videoattn.data.formats.base import VIDEO_EXTENSIONS, RawAnnotations, joiner, read_text

__all__ = ["NAME", "parse_label", "read"]

NAME = "list"


def parse_label(token: str) -> str | int:
    """An integer label as ``int``, a class name as ``str`` (surrounding quotes dropped)."""
    token = token.strip()
    digits = token[1:] if token[:1] == "-" else token
    if digits.isdigit() and digits.isascii():
        return int(token)
    return token.strip('"')


def _data_lines(text: str) -> list[tuple[int, str]]:
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")]


def read(path: str, root: str, *, subset: str = "train", split: int | None = None) -> RawAnnotations:
    """Read a list file; video paths are relative to ``root`` (or absolute)."""
    text = read_text(path)
    join = joiner(root)
    prefix = join("")
    plain = os.sep == "/"  # a relative path is prefix + path (else: join, for Windows drives)
    paths: list[str] = []
    labels: list[str | int | None] = []
    add_path, add_label = paths.append, labels.append
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] == "#":
            continue
        if "," in line:
            video, _, token = line.rpartition(",")
        else:
            parts = line.rsplit(maxsplit=1)
            video, token = (parts[0], parts[1]) if len(parts) == 2 else ("", line)
        label: str | int | None
        token = token.strip()
        if not video:  # a path alone
            video, label = line, None
        elif token.isdigit() and token.isascii():  # the common case, without a call of ours
            label = int(token)
        else:
            label = parse_label(token)
            if isinstance(label, str) and label.lower().endswith(VIDEO_EXTENSIONS):
                video, label = line, None  # a path with a space and no label
        video = video.strip()
        if not video:
            raise ValueError(f"{_where(text, path, len(paths))}: empty path in line {line!r}")
        add_path(prefix + video if plain and video[0] not in "/~." else join(video))
        add_label(label)

    def locate(row: int) -> str:
        return _where(text, path, row)

    return RawAnnotations(paths, labels if labels.count(None) < len(labels) else None, str(path), locate=locate)


def _where(text: str, path: str | os.PathLike, row: int) -> str:
    lines = _data_lines(text)
    return f"{path}:{lines[row][0]}" if row < len(lines) else f"{path}:{len(text.splitlines())}"
