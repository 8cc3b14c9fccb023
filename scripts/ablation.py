#!/usr/bin/env python
"""Ablation on the synthetic action dataset: the same tiny I3D and the same budget (configs/demo.yaml),
baseline vs +NL vs +GC vs +SE vs +CGNL (the i3d_tiny presets), several seeds each. Every run is
`videoattn fit` then `videoattn test` (10x3 views) in a subprocess; results are appended to
<work>/results.jsonl (an interrupted ablation resumes where it stopped), then summarised as a
Markdown table (clip and multi-view top-1, mean and std over seeds, params, GFLOPs per view,
train time) and a PNG bar chart.

  python scripts/ablation.py                       # 5 variants x 3 seeds, docs/ablation.{md,png}
  python scripts/ablation.py --jobs 2              # two runs at a time, one thread each
  python scripts/ablation.py --variants baseline nl --seeds 0 --epochs 2   # a quick look
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

VARIANTS = {"baseline": "i3d_tiny", "nl": "i3d_tiny_nl", "gc": "i3d_tiny_gc", "se": "i3d_tiny_se", "cgnl": "i3d_tiny_cgnl"}
LABELS = {"baseline": "baseline", "nl": "+NL", "gc": "+GC", "se": "+SE", "cgnl": "+CGNL"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="runs/ablation/synth",
                   help="synthetic dataset folder (generated if missing, with the demo's settings: seed 0, --videos-per-class)")
    p.add_argument("--videos-per-class", type=int, default=150, help="if the dataset is generated (as scripts/demo.sh)")
    p.add_argument("--config", default="configs/demo.yaml", help="recipe shared by all runs")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, help="override the recipe's max_epochs")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at a time; each gets cores/jobs threads (tiny models: 2 one-thread runs do twice the work of one 2-thread run)")
    p.add_argument("--work", default="runs/ablation", help="run folders and results.jsonl")
    p.add_argument("--table", default="docs/ablation.md")
    p.add_argument("--chart", default="docs/ablation.png")
    return p


def _run(cmd: list[str], log: Path, threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with log.open("a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if done.returncode:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}; see {log}")


def _clip_top1(run_dir: Path) -> float:
    """test/clip_top1 from the CSV logger of the test run (the last logged value)."""
    files = sorted(run_dir.glob("logs/version_*/metrics.csv"), key=lambda p: p.stat().st_mtime)
    for path in reversed(files):
        values = [row["test/clip_top1"] for row in csv.DictReader(path.open()) if row.get("test/clip_top1")]
        if values:
            return float(values[-1])
    raise SystemExit(f"no test/clip_top1 in {run_dir}/logs")


def _video_top1(predictions: Path) -> float:
    rows = list(csv.DictReader(predictions.open()))
    return sum(r["label"] == r["class_1"] for r in rows) / len(rows)


def one_run(args: argparse.Namespace, variant: str, seed: int, threads: int) -> dict:
    run_dir = Path(args.work) / f"{variant}_seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "log.txt"
    common = ["--config", args.config, "--model.backbone", VARIANTS[variant], "--data.init_args.root", args.data,
              "--trainer.default_root_dir", str(run_dir), "--trainer.enable_progress_bar", "false"]
    fit = [sys.executable, "-m", "videoattn.cli", "fit", *common, "--seed_everything", str(seed)]
    if args.epochs:
        fit += ["--trainer.max_epochs", str(args.epochs)]
    start = time.perf_counter()
    _run(fit, log, threads)
    train_time = time.perf_counter() - start
    predictions = run_dir / "test_predictions.csv"
    _run([sys.executable, "-m", "videoattn.cli", "test", *common, "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"),
          "--model.predictions_csv", str(predictions)], log, threads)
    return {"variant": variant, "seed": seed, "clip_top1": _clip_top1(run_dir), "video_top1": _video_top1(predictions),
            "train_minutes": train_time / 60, "epochs": args.epochs, "threads": threads}


def _costs(variants: list[str], crop: int, frames: int, num_classes: int) -> dict[str, tuple[float, float]]:
    from videoattn.models.flops import model_card

    out = {}
    for v in variants:
        card = model_card(VARIANTS[v], num_classes=num_classes, frames=(frames,), crop_size=crop)
        out[v] = (card.params / 1e6, card.flops / 1e9)
    return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(results: list[dict], args: argparse.Namespace) -> None:
    import yaml

    recipe = yaml.safe_load(Path(args.config).read_text())
    data = recipe["data"]["init_args"]
    crop, frames = data["crop_size"], data["num_frames"]
    num_classes = len((Path(args.data) / "classes.txt").read_text().split())
    counts = {s: len((Path(args.data) / f"{s}.csv").read_text().splitlines()) for s in ("train", "val", "test")}
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in results)]
    costs = _costs(variants, crop, frames, num_classes)
    epochs = {r["epochs"] or recipe["trainer"]["max_epochs"] for r in results}
    threads = sorted({r.get("threads", os.cpu_count()) for r in results})
    raw = Path(args.table).with_suffix(".jsonl")
    rows, chart = [], {}
    for v in variants:
        mine = [r for r in results if r["variant"] == v]
        clip, video, minutes = (_mean_std([r[k] for r in mine]) for k in ("clip_top1", "video_top1", "train_minutes"))
        chart[v] = (clip, video)
        rows.append(f"| {LABELS[v]} (`{VARIANTS[v]}`) | {len(mine)} | {clip[0]:.3f} ± {clip[1]:.3f} | {video[0]:.3f} ± {video[1]:.3f} "
                    f"| {costs[v][0]:.3f} | {costs[v][1]:.3f} | {minutes[0]:.1f} ± {minutes[1]:.1f} |")
    table = "\n".join([
        "| model | seeds | clip top-1 | multi-view top-1 (10x3) | params (M) | GFLOPs / view | train time (min) |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ])
    text = (
        "# Ablation: attention blocks in a tiny I3D on the synthetic action dataset\n\n"
        f"Recipe `{args.config}` for every run ({'/'.join(map(str, sorted(epochs)))} epochs, {frames}x{crop}x{crop} clips, "
        f"AdamW, from scratch), only the model changes; dataset `videoattn synth` ({num_classes} classes; train/val/test "
        f"{counts['train']}/{counts['val']}/{counts['test']} videos), seeds {', '.join(map(str, sorted({r['seed'] for r in results})))}. Mean ± standard deviation over "
        "seeds. Clip top-1: every single view of every test video scored alone; multi-view: the softmax of the 10 temporal x "
        "3 spatial views averaged per video. GFLOPs per view (fvcore, one multiply-add = one FLOP). Train time: wall-clock minutes of "
        f"`videoattn fit` (training and validation) on a {os.cpu_count()}-core CPU with {'/'.join(map(str, threads))} torch thread(s) per run, "
        f"{max(1, (os.cpu_count() or 1) // threads[0])} run(s) at a time: compare the rows with each other, not with other machines.\n\n"
        f"{table}\n\n![ablation](ablation.png)\n\nGenerated by `python scripts/ablation.py`; one line per run in "
        f"[{raw.name}]({raw.name}) (a copy of `{args.work}/results.jsonl`).\n"
    )
    Path(args.table).parent.mkdir(parents=True, exist_ok=True)
    Path(args.table).write_text(text)
    raw.write_text("".join(json.dumps(r) + "\n" for r in results))
    _bar_chart(chart, Path(args.chart))
    print(text)


def _bar_chart(chart: dict[str, tuple[tuple[float, float], tuple[float, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(chart)
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.38
    for k, (label, colour) in enumerate((("clip top-1", "#8fb3d9"), ("multi-view top-1 (10x3)", "#2b6cb0"))):
        means = [chart[v][k][0] for v in names]
        stds = [chart[v][k][1] for v in names]
        xs = [i + (k - 0.5) * width for i in range(len(names))]
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=label, color=colour)
    ax.set_xticks(range(len(names)), [LABELS[v] for v in names])
    ax.set_ylabel("top-1 accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("tiny I3D on the synthetic dataset: mean ± std over seeds")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)  # below the axes, off the bars
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    args = _parser().parse_args()
    if not (Path(args.data) / "train.csv").is_file():
        subprocess.run([sys.executable, "-m", "videoattn.cli", "synth", args.data, "--videos-per-class", str(args.videos_per_class),
                        "--seed", "0"], check=True)
    results_path = Path(args.work) / "results.jsonl"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in results_path.read_text().splitlines()] if results_path.is_file() else []
    todo = [(v, s) for s in args.seeds for v in args.variants  # seed-major: a partial ablation still covers every variant
            if not any(r["variant"] == v and r["seed"] == s and r["epochs"] == args.epochs for r in done)]
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    lock = threading.Lock()

    def task(variant: str, seed: int) -> None:
        print(f"== {variant} seed {seed} ({threads} threads)", flush=True)
        result = one_run(args, variant, seed, threads)
        with lock:  # results.jsonl is the resume point: one complete line per finished run
            print(json.dumps(result), flush=True)
            done.append(result)
            with results_path.open("a") as f:
                f.write(json.dumps(result) + "\n")

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(task, v, s) for v, s in todo]
        try:
            for future in futures:
                future.result()  # re-raises the first failed run
        except BaseException:
            pool.shutdown(cancel_futures=True)  # finished runs are kept in results.jsonl; a rerun resumes
            raise
    summarise([r for r in done if r["variant"] in args.variants and r["seed"] in args.seeds and r["epochs"] == args.epochs], args)


if __name__ == "__main__":
    main()
