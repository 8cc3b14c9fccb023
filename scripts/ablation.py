#!/usr/bin/env python
"""Ablation on a synthetic task: the same tiny backbone and the same recipe, without a block
(baseline) and with EVERY block of the registry (videoattn.blocks.list_blocks(): a block added
to the registry gets its row with no change here), several seeds each. Every run is
`videoattn fit` then `videoattn test` in a subprocess; results are appended to
<work>/<task>/results.jsonl (an interrupted ablation resumes where it stopped), then summarised
per task as a Markdown table (clip and multi-view top-1, mean ± std over seeds, the difference to
the baseline with a 95% Welch's t confidence interval, params, GFLOPs per view, train time), a
PNG chart with error bars and the per-run JSON lines.

Tasks (dataset generated if missing, seed 0):
  relations  `videoattn synth --task relations`, configs/relations.yaml, i3d_probe[_<block>]
             (a 27 px receptive field: no row sees both objects without a block)
  actions    `videoattn synth --task actions`, configs/ablation_actions.yaml, i3d_tiny[_<block>]
  temporal   `videoattn synth --task temporal`, configs/temporal.yaml, i3d_probe[_<block>]
             (a 16-frame temporal field: no row without a block sees both events, 25 frames apart)
  actions_long  the actions dataset, configs/ablation_actions_long.yaml (48 epochs; every run also
             writes block_dynamics.jsonl, summarised by scripts/block_dynamics.py)

  python scripts/ablation.py --task relations --jobs 2      # every variant x 3 seeds -> docs/results/ablation_relations.jsonl, docs/ablation_relations.{md,png}
  python scripts/ablation.py --task actions --jobs 2
  python scripts/ablation.py --task temporal --jobs 2
  python scripts/ablation.py --task relations --variants baseline nl --seeds 0 --epochs 2 --out runs/ablation/look  # a quick look
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Task:
    """What one task's ablation runs: its recipe, its backbone, and how its dataset is made."""

    config: str
    backbone: str
    videos_per_class: int
    title: str
    synth: str | None = None  # the `videoattn synth --task` of its dataset, if not the task's own name


TASKS = {
    "relations": Task("configs/relations.yaml", "i3d_probe", 500, "the relations task (two objects farther apart than the backbone's field)"),
    "actions": Task("configs/ablation_actions.yaml", "i3d_tiny", 150, "the actions task (classes told apart by the order of frames)"),
    "temporal": Task("configs/temporal.yaml", "i3d_probe", 500, "the temporal task (two events farther apart in time than the backbone's field)"),
    "actions_long": Task("configs/ablation_actions_long.yaml", "i3d_tiny", 150, "the actions task, 48 epochs (3x the schedule)", synth="actions"),
}


def variants() -> list[str]:
    """"baseline" and every block name of the registry, in registry order."""
    from videoattn.blocks import list_blocks

    return ["baseline", *list_blocks()]


def model_name(backbone: str, variant: str) -> str:
    return backbone if variant == "baseline" else f"{backbone}_{variant}"


# rows named as the README's block table names them; acronyms (nl, gc, se, cgnl, lr) in capitals
WORDS = {"relation": "Relation", "transformer": "Transformer"}


def label(variant: str) -> str:
    return "baseline" if variant == "baseline" else f"+{WORDS.get(variant, variant.upper())}"


# ------------------------------------------------------------------------------------ statistics
def _t_cdf(t: float, df: float) -> float:
    """CDF of Student's t with ``df`` (real, > 0) degrees of freedom: Simpson's rule on the density
    over [0, |t|] (smooth and bounded: 2000 intervals are exact to ~1e-10 for the values used here)."""
    if t == 0:
        return 0.5
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    pdf = lambda x: math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))  # noqa: E731
    n, b = 2000, abs(t)
    h = b / n
    area = pdf(0) + pdf(b) + sum((4 if i % 2 else 2) * pdf(i * h) for i in range(1, n))
    half = area * h / 3
    return 0.5 + half if t > 0 else 0.5 - half


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t with ``df`` degrees of freedom (bisection)."""
    if not 0.5 < p < 1 or not df > 0:
        raise ValueError(f"t_quantile needs 0.5 < p < 1 and df > 0, got p={p}, df={df}")
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def welch_ci(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Difference of means ``mean(a) - mean(b)`` and its ``level`` confidence interval by Welch's t
    (unequal variances, Welch-Satterthwaite degrees of freedom). Needs at least 2 values per side;
    with no spread on either side the interval is the point itself."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's interval needs at least 2 values per group, got {len(a)} and {len(b)}")
    diff = statistics.mean(a) - statistics.mean(b)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = t_quantile(0.5 + level / 2, df) * se
    return diff, diff - half, diff + half


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


# ------------------------------------------------------------------------------------------ runs
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


def one_run(args: argparse.Namespace, task: Task, variant: str, seed: int, threads: int) -> dict:
    run_dir = Path(args.work) / args.task / f"{variant}_seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "log.txt"
    model = model_name(task.backbone, variant)
    common = ["--config", str(ROOT / task.config), "--model.backbone", model, "--data.init_args.root", str(args.data),
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
    return {"task": args.task, "variant": variant, "model": model, "seed": seed, "clip_top1": _clip_top1(run_dir),
            "video_top1": _video_top1(predictions), "train_minutes": train_time / 60, "epochs": args.epochs, "threads": threads}


# --------------------------------------------------------------------------------------- summary
def _costs(names: dict[str, str], crop: int, frames: int, num_classes: int) -> dict[str, tuple[float, float]]:
    from videoattn.models.flops import model_card

    out = {}
    for variant, name in names.items():
        card = model_card(name, num_classes=num_classes, frames=(frames,), crop_size=crop)
        out[variant] = (card.params / 1e6, card.flops / 1e9)
    return out


def latest_runs(results: list[dict]) -> list[dict]:
    """The last line of each (variant, seed) of a results file: a rerun replaces the run it repeats."""
    out: dict[tuple, dict] = {}
    for r in results:
        out[(r["variant"], r["seed"])] = r
    return list(out.values())


def present(results: list[dict]) -> list[str]:
    """The variants that have runs, in registry order (variants no longer registered last)."""
    known = variants()
    have = list(dict.fromkeys(r["variant"] for r in results))
    return [v for v in known if v in have] + [v for v in have if v not in known]


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return _mean_std(values)


def delta(results: list[dict], variant: str, key: str = "video_top1") -> str:
    """``variant``'s difference of means to the baseline on ``key`` with its 95% Welch interval,
    "+0.363 [+0.337, +0.389]"; "—" for the baseline or with fewer than 2 runs on a side."""
    mine = [r[key] for r in results if r["variant"] == variant]
    base = [r[key] for r in results if r["variant"] == "baseline"]
    if variant == "baseline" or len(mine) < 2 or len(base) < 2:
        return "—"
    d, lo, hi = welch_ci(mine, base)
    return f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def summary_table(results: list[dict]) -> str:
    """One row per variant: seeds, clip and multi-view top-1 (mean ± std), both differences to the
    baseline with 95% Welch intervals, params, GFLOPs per view, train time (mean ± std)."""
    views = results[0].get("test_views", [10, 3])
    rows = []
    for v in present(results):
        mine = [r for r in results if r["variant"] == v]
        clip, video, minutes = (_mean_std([r[k] for r in mine]) for k in ("clip_top1", "video_top1", "train_minutes"))
        params = f"{mine[-1]['params_m']:.3f}" if mine[-1].get("params_m") is not None else "—"
        gflops = f"{mine[-1]['gflops']:.3f}" if mine[-1].get("gflops") is not None else "—"
        rows.append(f"| {label(v)} (`{mine[0]['model']}`) | {len(mine)} | {clip[0]:.3f} ± {clip[1]:.3f} | {video[0]:.3f} ± {video[1]:.3f} | "
                    f"{delta(results, v, 'video_top1')} | {delta(results, v, 'clip_top1')} | {params} | {gflops} | "
                    f"{minutes[0]:.1f} ± {minutes[1]:.1f} |")
    return "\n".join([
        f"| model | seeds | clip top-1 | multi-view top-1 ({views[0]}x{views[1]}) | multi-view Δ vs baseline [95% CI] | "
        "clip Δ vs baseline [95% CI] | params (M) | GFLOPs / view | train time (min) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ])


def runs_table(results: list[dict]) -> str:
    """One row per run: model, seed, clip and multi-view top-1, train time."""
    rows = [f"| {label(v)} | {r['seed']} | {r['clip_top1']:.3f} | {r['video_top1']:.3f} | {r['train_minutes']:.1f} |"
            for v in present(results) for r in sorted((r for r in results if r["variant"] == v), key=lambda r: r["seed"])]
    return "\n".join(["| model | seed | clip top-1 | multi-view top-1 | train time (min) |", "|---|---:|---:|---:|---:|", *rows])


def chart_title(results: list[dict], task: str) -> str:
    seeds = {r["seed"] for r in results}
    base = next((r["model"] for r in results if r["variant"] == "baseline"), results[0]["model"])
    return f"{base} on the {task} task: mean ± std over {len(seeds)} seeds"


PAGE = """# Ablation on {title}

Every row is the same tiny backbone and recipe, without a block (baseline) and with one block of
the registry where its paper puts it, trained from scratch with several seeds and tested with
the multi-view protocol. Mean ± standard deviation over seeds; Δ: the difference of the means to
the baseline's, with its 95% confidence interval by Welch's t (unequal variances); see
[reading an ablation](tutorials/read_ablation.md).

<!-- results:ablation-setup:{task} -->
<!-- /results -->

<!-- results:ablation:{task} -->
<!-- /results -->

![ablation](ablation_{task}.png)

Per run:

<!-- results:ablation-runs:{task} -->
<!-- /results -->

Reproduce: `python scripts/ablation.py --task {task} --jobs 2` (hours on a 2-core CPU); one line
per run in [results/ablation_{task}.jsonl](results/ablation_{task}.jsonl).
"""


def summarise(results: list[dict], args: argparse.Namespace, task: Task) -> str:
    """Record the runs (with what they ran: recipe, clips, dataset, params and GFLOPs, commit,
    machine, date) in the results file, draw the chart, render the page (made from PAGE if
    missing) and return the summary table."""
    import yaml

    recipe = yaml.safe_load((ROOT / task.config).read_text())
    data = recipe["data"]["init_args"]
    clip = data.get("clip", data)  # ClipSettings (data.clip); older recipes held the keys flat
    crop, frames, views = clip["crop_size"], clip["num_frames"], clip.get("test_views", [10, 3])
    num_classes = len((Path(args.data) / "classes.txt").read_text().split())
    counts = {s: len((Path(args.data) / f"{s}.csv").read_text().splitlines()) for s in ("train", "val", "test")}
    costs = _costs({v: model_name(task.backbone, v) for v in present(results)}, crop, frames, num_classes)
    results = [{**r, "max_epochs": r["epochs"] or recipe["trainer"]["max_epochs"], "params_m": round(costs[r["variant"]][0], 4),
                "gflops": round(costs[r["variant"]][1], 4), "config": task.config, "clip": f"{frames}x{crop}x{crop}",
                "test_views": list(views), "dataset": counts, "num_classes": num_classes, "jobs": args.jobs} for r in results]
    results_file = _results_file()
    key = lambda r: (r["variant"], r["seed"], r["clip_top1"], r["video_top1"], r["train_minutes"])  # noqa: E731
    recorded = {key(r) for r in results_file.read(Path(args.results))}
    results_file.write(Path(args.results), [r for r in results if key(r) not in recorded])  # a summary run again adds nothing
    stem = Path(args.out)
    chart(results, stem.with_suffix(".png"), chart_title(results, args.task))
    page = stem.with_suffix(".md")
    if not page.is_file():
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(PAGE.format(title=task.title, task=args.task))
    if Path(args.results).resolve() == (ROOT / "docs" / "results" / f"ablation_{args.task}.jsonl").resolve():
        render = _script("render_docs")
        page.write_text(render.render_text(page.read_text(), page.resolve()))
    return summary_table(results)


def _script(name: str):
    """Another module of scripts/, loaded by path."""
    import importlib.util

    key = f"_ablation_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, ROOT / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def _results_file():
    return _script("results_file")


def chart(results: list[dict], path: Path, title: str) -> None:
    """Bars: mean clip and multi-view top-1 per variant, error bars one standard deviation; dots: the runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = present(results)
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 4))
    width = 0.38
    for k, (key, name, colour) in enumerate((("clip_top1", "clip top-1", "#8fb3d9"), ("video_top1", "multi-view top-1", "#2b6cb0"))):
        xs = [i + (k - 0.5) * width for i in range(len(names))]
        stats = [_mean_std([r[key] for r in results if r["variant"] == v]) for v in names]
        ax.bar(xs, [m for m, _ in stats], width, yerr=[s for _, s in stats], capsize=3, label=name, color=colour)
        for x, v in zip(xs, names):
            runs = [r[key] for r in results if r["variant"] == v]
            ax.plot([x] * len(runs), runs, "o", color="black", ms=2.5, zorder=3)
    ax.set_xticks(range(len(names)), [label(v) for v in names])
    ax.set_ylabel("top-1 accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)  # below the axes, off the bars
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)


# ------------------------------------------------------------------------------------------ main
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="relations", choices=list(TASKS))
    p.add_argument("--data", help="dataset folder (default runs/ablation/<task>/synth; generated if missing, seed 0)")
    p.add_argument("--videos-per-class", type=int, help="if the dataset is generated (default: the task's)")
    p.add_argument("--variants", nargs="+", help="baseline and block names (default: baseline + every registered block)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, help="override the recipe's max_epochs")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at a time; each gets cores/jobs threads (tiny models: 2 one-thread runs do twice the work of one 2-thread run)")
    p.add_argument("--work", default="runs/ablation", help="run folders and results.jsonl, under <work>/<task>/")
    p.add_argument("--out", help="page and chart: <out>.md/.png (default docs/ablation_<task>; the page is made if missing)")
    p.add_argument("--results", help="results file the runs are appended to, with commit, machine and date (default "
                                     "docs/results/ablation_<task>.jsonl; <out>.jsonl when --out is given)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    task = TASKS[args.task]
    valid = variants()
    chosen = args.variants or valid
    unknown = [v for v in chosen if v not in valid]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    args.data = Path(args.data or Path(args.work) / (task.synth or args.task) / "synth")
    if args.results is None:
        args.results = f"{args.out}.jsonl" if args.out else str(_results_file().default_path(f"ablation_{args.task}"))
    args.out = args.out or str(ROOT / "docs" / f"ablation_{args.task}")
    if not (args.data / "train.csv").is_file():
        subprocess.run([sys.executable, "-m", "videoattn.cli", "synth", str(args.data), "--task", task.synth or args.task, "--videos-per-class",
                        str(args.videos_per_class or task.videos_per_class), "--seed", "0"], check=True)
    results_path = Path(args.work) / args.task / "results.jsonl"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in results_path.read_text().splitlines()] if results_path.is_file() else []
    todo = [(v, s) for s in args.seeds for v in chosen  # seed-major: a partial ablation still covers every variant
            if not any(r["variant"] == v and r["seed"] == s and r["epochs"] == args.epochs for r in done)]
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    lock = threading.Lock()

    def run(variant: str, seed: int) -> None:
        print(f"== {args.task}: {variant} seed {seed} ({threads} threads)", flush=True)
        result = one_run(args, task, variant, seed, threads)
        with lock:  # results.jsonl is the resume point: one complete line per finished run
            print(json.dumps(result), flush=True)
            done.append(result)
            with results_path.open("a") as f:
                f.write(json.dumps(result) + "\n")

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run, v, s) for v, s in todo]
        try:
            for future in futures:
                future.result()  # re-raises the first failed run
        except BaseException:
            pool.shutdown(cancel_futures=True)  # finished runs are kept in results.jsonl; a rerun resumes
            raise
    mine = [r for r in done if r["variant"] in chosen and r["seed"] in args.seeds and r["epochs"] == args.epochs]
    print(summarise(mine, args, task))


if __name__ == "__main__":
    main()
