"""`videoattn shard LIST --root ROOT --out DIR [-j N]`: write the videos of an annotation list
(any format videoattn reads: a list, a Kinetics CSV, class folders, UCF101, HMDB51, SSv2, with
--format, --split and --subset for a dataset's annotation folder) as LitData shards for clusters: each video's encoded bytes
unchanged with its label, row, path, frame count, frame rate and frame timestamps (probed
once here, so training never probes). Parallel, with a progress bar, resumable (run the same
command again after an interruption); unreadable videos are left out and listed with their
reason in DIR/unreadable_videos.tsv, as `videoattn check-data` writes it.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

from videoattn.data.annotations import FORMATS, infer_classes, read_raw_annotations, resolve_classes, to_records
from videoattn.data.shards import CHECKS, CLASSES_FILE, UNREADABLE_FILE, write_shards
from videoattn.tools.check_data import _kind

__all__ = ["main"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="videoattn shard", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("list", metavar="LIST", help="annotation file or folder (relative to --root)")
    parser.add_argument("--root", default=".", help="dataset root the annotation and video paths are relative to")
    parser.add_argument("--out", required=True, help="local folder for the shards (upload it to S3/GCS as is to stream from there)")
    parser.add_argument("--classes", default=None, help=f"class-list file (one name per line) giving the label indices; default: the sorted "
                        f"names found in LIST. Give val/test shards the train shards' {CLASSES_FILE}")
    parser.add_argument("--workers", "-j", type=int, default=os.cpu_count() or 1, help="parallel processes")
    parser.add_argument("--check", choices=CHECKS, default="quick", help="probe: frame count/rate only; quick (default): also decode "
                        "the first, middle and last frames; full: decode every frame (as check-data)")
    parser.add_argument("--part-size", type=int, default=256, help="videos per part (the unit of parallel work and of resuming)")
    parser.add_argument("--chunk-bytes", default="64MB", help="LitData chunk size: bytes, or with a unit (64MB, 1GB)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--format", choices=list(FORMATS), default=None, help="annotation format of LIST (default: detected)")
    parser.add_argument("--split", type=int, choices=(1, 2, 3), default=None, help="UCF101/HMDB51 official split (default: from the "
                        "file name, else 1)")
    parser.add_argument("--subset", choices=("train", "val", "test"), default="train", help="which videos of a dataset's annotation "
                        "folder: train (default) or test (UCF101/HMDB51 test lists, SSv2 validation.json)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.root):
        parser.error(f"--root {args.root!r} is not a directory")
    try:
        raw = read_raw_annotations(args.list, args.root, format=args.format, subset=args.subset, split=args.split)
        classes = resolve_classes(args.classes, args.root) or infer_classes([raw])
        records = to_records(raw, classes, args.list)
        summary = write_shards(
            records, args.out, classes=classes, workers=max(1, args.workers), part_size=args.part_size, check=args.check,
            chunk_bytes=int(args.chunk_bytes) if args.chunk_bytes.isdigit() else args.chunk_bytes, source=os.path.abspath(os.path.join(args.root, args.list)), progress=not args.no_progress,
        )
    except (ValueError, ImportError) as exc:
        parser.error(str(exc))
    print(f"{summary.written} of {summary.videos} videos in shards ({summary.bytes / 2**30:.2f} GiB) -> {summary.out}")
    print(f"{len(classes)} classes -> {os.path.join(summary.out, CLASSES_FILE)}"
          + ("" if args.classes else " (inferred from LIST: pass the train shards' classes.txt as --classes for val/test)"))
    if summary.unreadable:
        print(f"{len(summary.unreadable)} unreadable videos left out -> {os.path.join(summary.out, UNREADABLE_FILE)}")
        for kind, n in Counter(_kind(reason) for reason in summary.unreadable.values()).most_common(10):
            print(f"  {n:6d}  {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
