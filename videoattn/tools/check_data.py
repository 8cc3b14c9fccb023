"""`videoattn check-data LIST... --root ROOT`: scan the videos of annotation files (any format
videoattn reads) in parallel with a progress bar and write the unreadable ones, with the
reason for each, to a TSV file, and optionally (--clean-dir) copies of the annotation files
without those rows, so a Kinetics copy can be cleaned before training.
"""
from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import os
import sys
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from videoattn.data.annotations import read_raw_annotations
from videoattn.data.decode import DecodeError, check_video

__all__ = ["main", "scan", "write_clean_copy"]


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


def write_clean_copy(annotation: Path, row_paths: list[str], bad: dict[str, str], clean_dir: Path) -> Path | None:
    """Copy ``annotation`` into ``clean_dir`` without the rows whose video is in ``bad``; blank
    and comment lines and a CSV header are kept verbatim. Class folders are skipped (None)."""
    if annotation.is_dir():
        return None
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
    return out


def _kind(reason: str) -> str:
    """A short class of a reason for the summary: the first backend's exception or message."""
    first = reason.split(";")[0].removeprefix("pyav: ").removeprefix("decord: ")
    return first.split(":")[0] if ":" in first else first


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="videoattn check-data",
        description="Find unreadable videos in annotation files (path-label lists, Kinetics CSVs or class folders). "
        "Exit status 1 if any video is unreadable.",
    )
    parser.add_argument("lists", nargs="+", metavar="LIST", help="annotation file or class folder (relative to --root)")
    parser.add_argument("--root", default=".", help="dataset root the annotation and video paths are relative to")
    parser.add_argument("--output", "-o", default="unreadable_videos.tsv", help="TSV of unreadable files: path, reason")
    parser.add_argument("--workers", "-j", type=int, default=os.cpu_count() or 1, help="parallel processes")
    parser.add_argument("--quick", action="store_true", help="decode first, middle and last frames only (default: every frame)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--clean-dir", default=None, help="also write each annotation file without its unreadable rows into this folder")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        parser.error(f"--root {args.root!r} is not a directory")
    paths: list[str] = []
    per_source: dict[str, list[str]] = {}
    for source in args.lists:
        try:
            per_source[source] = [r.path for r in read_raw_annotations(source, args.root)]
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
            written = write_clean_copy(Path(args.root, source) if not os.path.isabs(source) else Path(source), rows, bad, Path(args.clean_dir))
            if written:
                print(f"clean copy: {written}")
    kinds = Counter(_kind(reason) for reason in bad.values())
    print(f"checked {total} videos: {total - len(bad)} readable, {len(bad)} unreadable -> {args.output}")
    for kind, n in kinds.most_common(10):
        print(f"  {n:6d}  {kind}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
