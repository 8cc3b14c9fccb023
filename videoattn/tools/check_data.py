"""`videoattn check-data SOURCE... --root ROOT`: scan videos in parallel with a progress bar and
write the unreadable ones, with the reason for each, to a TSV file, and optionally
(--clean-dir) copies of the annotation files without those rows, so a Kinetics copy can be
cleaned before training. A SOURCE is what the data module reads: an annotation file in any
format videoattn reads (every video of a dataset's lists: UCF101's and HMDB51's train and test
videos of the split, SSv2's train, validation and test), a dataset's annotation folder, or,
as predict takes them, a folder (every video file under it, recursively), a glob or a video.
"""
from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from videoattn.data.annotations import FORMATS, VIDEO_EXTENSIONS, read_predict_source, read_raw_annotations
from videoattn.data.decode import DecodeError, check_video
from videoattn.data.formats import detect_format
from videoattn.data.formats.ssv2 import LABELS_FILE
from videoattn.data.formats.ucf101 import CLASS_FILE

__all__ = ["main", "scan", "source_videos", "write_clean_copy"]

_DATASET_FOLDERS = ("ucf101", "hmdb51", "ssv2")


def _check_one(job: tuple[str, bool]) -> tuple[str, str | None]:
    path, full = job
    try:
        check_video(path, full=full)
    except DecodeError as exc:
        return path, exc.reason
    except Exception as exc:  # noqa: BLE001 - a crash on one file is that file's reason
        return path, f"{type(exc).__name__}: {exc}"
    return path, None


def scan(paths: list[str], *, workers: int = 1, full: bool = True, progress: bool = True) -> dict[str, str]:
    """{path: reason} for every unreadable video among ``paths`` (checked in ``workers`` processes)."""
    jobs = [(p, full) for p in dict.fromkeys(paths)]
    bad: dict[str, str] = {}
    bar = tqdm(total=len(jobs), unit="video", disable=not progress, desc="check-data")
    if workers <= 1:
        results = map(_check_one, jobs)
        for path, reason in results:
            if reason is not None:
                bad[path] = reason
            bar.update()
    else:
        context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with context.Pool(workers) as pool:  # fork: no decoder is open in this process
            for path, reason in pool.imap_unordered(_check_one, jobs, chunksize=8):
                if reason is not None:
                    bad[path] = reason
                bar.update()
    bar.close()
    return bad


def source_videos(source: str, root: str, *, format: str | None = None, split: int | None = None) -> list[str]:
    """The video paths of one check-data SOURCE (see the module docstring), in row order."""
    path = source if os.path.isabs(os.path.expanduser(source)) else os.path.join(root, source)
    path = os.path.expanduser(path)
    is_folder = os.path.isdir(path)
    if any(ch in source for ch in "*?[") or (is_folder and format is None and detect_format(path) not in _DATASET_FOLDERS) or (
        os.path.isfile(path) and format is None and path.lower().endswith(VIDEO_EXTENSIONS)
    ):
        return read_predict_source(source, root).paths
    return read_raw_annotations(source, root, format=format, subset="all", split=split).paths


def write_clean_copy(annotation: Path, row_paths: list[str], bad: dict[str, str], clean_dir: Path) -> Path | None:
    """Copy ``annotation`` into ``clean_dir`` without the rows whose video is in ``bad``; blank
    and comment lines and a CSV header are kept verbatim; an SSv2 JSON list loses those
    entries; the class list next to a UCF101 list (classInd.txt) or an SSv2 file (labels.json)
    is copied along. Folders are skipped (None)."""
    if annotation.is_dir():
        return None
    if annotation.suffix.lower() == ".json":
        return _clean_json(annotation, row_paths, bad, clean_dir)
    lines = annotation.read_text(encoding="utf-8").splitlines(keepends=True)
    header = [c.strip().lower() for c in lines[0].split(",")] if lines else []
    is_csv = all(c in header for c in ("youtube_id", "time_start", "time_end"))
    kept, row = [], 0
    for number, line in enumerate(lines):
        data_line = (number > 0 if is_csv else bool(line.strip()) and not line.lstrip().startswith("#"))
        if data_line and line.strip():
            if row_paths[row] not in bad:
                kept.append(line)
            row += 1
        else:
            kept.append(line)
    if row != len(row_paths):  # the file changed under us, or a format corner case: do not guess
        raise ValueError(f"{annotation}: found {row} rows, expected {len(row_paths)}; clean copy not written")
    clean_dir.mkdir(parents=True, exist_ok=True)
    out = clean_dir / annotation.name
    out.write_text("".join(kept), encoding="utf-8")
    _copy_class_list(annotation, CLASS_FILE, clean_dir)
    return out


def _clean_json(annotation: Path, row_paths: list[str], bad: dict[str, str], clean_dir: Path) -> Path:
    entries = json.loads(annotation.read_text(encoding="utf-8-sig"))
    if not isinstance(entries, list) or len(entries) != len(row_paths):
        raise ValueError(f"{annotation}: found {len(entries) if isinstance(entries, list) else 'no'} entries, expected {len(row_paths)}; clean copy not written")
    clean_dir.mkdir(parents=True, exist_ok=True)
    out = clean_dir / annotation.name
    out.write_text(json.dumps([e for e, p in zip(entries, row_paths) if p not in bad], indent=1), encoding="utf-8")
    _copy_class_list(annotation, LABELS_FILE, clean_dir)
    return out


def _copy_class_list(annotation: Path, name: str, clean_dir: Path) -> None:
    """A dataset's class list lies next to its lists: the clean copies need it too."""
    companion = annotation.parent / name
    if annotation.name != name and companion.is_file() and not (clean_dir / name).exists():
        shutil.copyfile(companion, clean_dir / name)


def _kind(reason: str) -> str:
    """A short class of a reason for the summary: the first backend's exception or message."""
    first = reason.split(";")[0].removeprefix("pyav: ").removeprefix("decord: ")
    return first.split(":")[0] if ":" in first else first


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="videoattn check-data",
        description="Find unreadable videos: those of annotation files in any format videoattn reads (path-label lists, Kinetics CSVs, "
        "UCF101, HMDB51, SSv2) or every video file under a folder, recursively. Exit status 1 if any video is unreadable.",
    )
    parser.add_argument("lists", nargs="+", metavar="SOURCE", help="annotation file or dataset annotation folder, a folder of videos "
                        "(searched recursively), a glob or a video (relative to --root)")
    parser.add_argument("--root", default=".", help="dataset root the annotation and video paths are relative to")
    parser.add_argument("--output", "-o", default="unreadable_videos.tsv", help="TSV of unreadable files: path, reason")
    parser.add_argument("--workers", "-j", type=int, default=os.cpu_count() or 1, help="parallel processes")
    parser.add_argument("--quick", action="store_true", help="decode first, middle and last frames only (default: every frame)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--clean-dir", default=None, help="also write each annotation file without its unreadable rows into this folder")
    parser.add_argument("--format", choices=list(FORMATS), default=None, help="annotation format of the SOURCEs (default: detected)")
    parser.add_argument("--split", type=int, choices=(1, 2, 3), default=None, help="UCF101/HMDB51 official split (default: from the "
                        "file name, else 1)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        parser.error(f"--root {args.root!r} is not a directory")
    paths: list[str] = []
    per_source: dict[str, list[str]] = {}
    for source in args.lists:
        try:
            per_source[source] = source_videos(source, args.root, format=args.format, split=args.split)
        except ValueError as exc:
            parser.error(str(exc))
        paths += per_source[source]
    total = len(dict.fromkeys(paths))
    bad = scan(paths, workers=args.workers, full=not args.quick, progress=not args.no_progress)
    with open(args.output, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["path", "reason"])
        for path in sorted(bad):
            writer.writerow([path, bad[path]])
    if args.clean_dir:
        for source, rows in per_source.items():
            annotation = Path(args.root, source) if not os.path.isabs(source) else Path(source)
            if any(ch in source for ch in "*?[") or annotation.suffix.lower() in VIDEO_EXTENSIONS:
                continue  # videos, not an annotation file
            try:
                written = write_clean_copy(annotation, rows, bad, Path(args.clean_dir))
            except ValueError as exc:
                print(f"clean copy: {exc}", file=sys.stderr)
                continue
            if written:
                print(f"clean copy: {written}")
    kinds = Counter(_kind(reason) for reason in bad.values())
    print(f"checked {total} videos: {total - len(bad)} readable, {len(bad)} unreadable -> {args.output}")
    for kind, n in kinds.most_common(10):
        print(f"  {n:6d}  {kind}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
