"""Annotation formats, one module each, read as they are distributed. Every reader gives a
:class:`~videoattn.data.formats.base.RawAnnotations` (paths and labels as columns, the format's
own class list) without opening a video:

  list      ``path label`` / ``path,label`` lines (PySlowFast, pytorchvideo, mmaction2 video lists)
  kinetics  the official Kinetics-400/600/700 CSVs (label,youtube_id,time_start,time_end,split)
  folders   a folder per class
  ucf101    classInd.txt with trainlist0N.txt / testlist0N.txt
  hmdb51    the per-class split files <class>_test_split<N>.txt
  ssv2      Something-Something v2's labels.json with train.json / validation.json / test.json

``read_source`` detects the format of a source unless it is named.
"""
from __future__ import annotations

import os
from types import ModuleType

from videoattn.data.formats import folders, hmdb51, kinetics, lists, ssv2, ucf101
from videoattn.data.formats.base import SUBSETS, RawAnnotations, check_subset

__all__ = ["FORMATS", "SUBSETS", "check_format", "detect_format", "read_source"]

FORMATS: dict[str, ModuleType] = {m.NAME: m for m in (lists, kinetics, folders, ucf101, hmdb51, ssv2)}


def detect_format(path: str) -> str:
    """The format of an existing file or folder: a dataset's annotation folder (UCF101's
    classInd.txt, HMDB51's split files, SSv2's labels.json) or else a folder per class; for a
    file, its name (trainlist0N.txt, <class>_test_splitN.txt, .json) or a Kinetics header,
    else a list."""
    for module in (ucf101, hmdb51, ssv2):
        if module.detect(path):
            return module.NAME
    if os.path.isdir(path):
        return folders.NAME
    return kinetics.NAME if kinetics.detect(path) else lists.NAME


def check_format(format: str | None) -> None:
    """A ValueError listing the formats when ``format`` is not one of them (None: detect)."""
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown annotation format {format!r}; expected one of {', '.join(FORMATS)} (or none: detected)")


def read_source(path: str, root: str, *, format: str | None = None, subset: str = "train", split: int | None = None) -> RawAnnotations:
    """Read the annotation file or folder ``path`` (resolved) in ``format`` (None: detected).

    Args:
        path: the annotation file or folder.
        root: the folder video paths are relative to.
        format: one of :data:`FORMATS`, None to detect it.
        subset: which videos of a dataset's split files ("train"; "val", "test": UCF101's and
            HMDB51's test lists, SSv2's validation.json; "predict": SSv2's test.json; "all").
        split: the official split of UCF101 and HMDB51 (1, 2, 3; default: from the file
            name, else 1).
    """
    check_format(format)
    check_subset(subset, "annotations")
    if not os.path.exists(path):
        raise ValueError(f"annotation file {path} does not exist (looked relative to root={root})")
    name = format or detect_format(path)
    module = FORMATS[name]
    if os.path.isdir(path) and name in (lists.NAME, kinetics.NAME):
        raise ValueError(f"{path} is a folder; the {name} format reads a file")
    if not os.path.isdir(path) and name == folders.NAME:
        raise ValueError(f"{path} is a file; the folders format reads a folder with one sub-folder per class")
    return module.read(path, root, subset=subset, split=split)
