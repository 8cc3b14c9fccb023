"""`videoattn synth OUT_DIR [--task actions|relations|temporal] [--videos-per-class N] [--seed S]`: generate a
synthetic dataset (real H.264 mp4s, train/val/test annotation files, classes.txt).
"""
from __future__ import annotations

import argparse
import time

from videoattn.synth import TASKS, generate_dataset


def _parser() -> argparse.ArgumentParser:
    tasks = "; ".join(f"{name}: {task.description}" for name, task in TASKS.items())
    p = argparse.ArgumentParser(prog="videoattn synth", description=f"Generate a synthetic video dataset ({tasks}).")
    p.add_argument("out_dir", help="output folder (created if missing)")
    p.add_argument("--task", default="actions", choices=list(TASKS), help="which task (default %(default)s)")
    p.add_argument("--videos-per-class", type=int, default=60, help="videos per class, split 70/10/20 into train/val/test (default 60)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed: the same seed gives the same videos (default 0)")
    lengths = ", ".join(f"{name} {t.frames[0]}-{t.frames[1]}" for name, t in TASKS.items())
    p.add_argument("--min-frames", type=int, help=f"shortest video length in frames (default: the task's; {lengths})")
    p.add_argument("--max-frames", type=int, help="longest video length in frames (default: the task's)")
    p.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    task = TASKS[args.task]
    try:
        paths = generate_dataset(
            args.out_dir,
            task=args.task,
            videos_per_class=args.videos_per_class,
            seed=args.seed,
            frames=(task.frames[0] if args.min_frames is None else args.min_frames, task.frames[1] if args.max_frames is None else args.max_frames),
            workers=args.workers,
            progress=not args.quiet,
        )
    except ValueError as err:
        print(f"videoattn synth: error: {err}")
        return 2
    counts = {s: sum(1 for _ in open(paths[s])) for s in ("train", "val", "test")}
    classes = len(TASKS[args.task].classes)
    print(
        f"wrote {sum(counts.values())} videos of {classes} classes ({args.task}) to {args.out_dir} in {time.perf_counter() - start:.1f} s "
        f"(train {counts['train']}, val {counts['val']}, test {counts['test']}; classes in {paths['classes']})"
    )
    return 0
