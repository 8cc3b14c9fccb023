#!/usr/bin/env python
"""Render the tables, quoted figures and charts of README.md and docs/ from the results files
under docs/results/ (written by scripts/ablation.py and scripts/bench_*.py): nothing in them is
typed by hand.

A page asks for a rendering with a pair of markers; everything between them is replaced:

  <!-- results:ablation:relations -->          a block: a table, a paragraph
  ...
  <!-- /results -->
  NL adds <!-- results:ablation-delta:relations:nl -->+0.363 [+0.337, +0.389]<!-- /results --> ...   inline

The name before the first ":" picks a renderer (RENDERERS), the rest are its arguments. The
ablation charts (docs/ablation_<task>.png) are drawn again from their results files.

  python scripts/render_docs.py            # rewrite every page and chart
  python scripts/render_docs.py --check    # exit 1, naming each block that differs (tests run this)
  python scripts/render_docs.py --list     # the renderers and what each shows
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RESULTS = DOCS / "results"
MARKER = re.compile(r"<!-- results:(?P<name>[\w.:,/-]+) -->(?P<body>.*?)<!-- /results -->", re.S)


def _script(name: str):
    """A module of scripts/ loaded by path (scripts/ is not a package)."""
    key = f"_render_docs_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, ROOT / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[key]


def read(name: str) -> list[dict]:
    """Every line of docs/results/NAME.jsonl, in file order (an error naming the file if it is missing)."""
    records = _script("results_file").read(RESULTS / f"{name}.jsonl")
    if not records:
        raise RenderError(f"docs/results/{name}.jsonl is missing or empty")
    return records


class RenderError(ValueError):
    """A marker that cannot be rendered: an unknown renderer, bad arguments, a missing results file."""


# ------------------------------------------------------------------------------------- helpers
def runs(records: list[dict]) -> list[list[dict]]:
    """Records grouped by their ``run`` field, runs in the order they first appear in the file."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(str(r.get("run", r.get("date"))), []).append(r)
    return list(groups.values())


def last_runs(records: list[dict], n: int) -> list[list[dict]]:
    return runs(records)[-n:]


def latest_by(records: list[dict], *keys: str) -> list[dict]:
    """The last record for each combination of ``keys`` (a later run replaces an earlier one), in
    the order the combinations first appear."""
    out: dict[tuple, dict] = {}
    for r in records:
        out[tuple(r.get(k) for k in keys)] = r
    return list(out.values())


def link(page: Path, target: Path) -> str:
    """Relative link from ``page`` to ``target`` (both paths under the repository)."""
    return Path(os.path.relpath(target, page.parent)).as_posix()


def provenance(records: list[dict], page: Path, name: str) -> str:
    """One line under a table: the results file, and the commits, machines, dates and sources of the lines shown."""
    def distinct(key: str) -> list[str]:
        return list(dict.fromkeys(str(r[key]) for r in records if r.get(key)))

    dates = sorted({str(r.get("date", ""))[:10] for r in records if r.get("date")})
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}" if dates else "date not recorded"
    parts = [f"[`results/{name}.jsonl`]({link(page, RESULTS / f'{name}.jsonl')})",
             f"commit {', '.join(distinct('commit')) or 'not recorded'}", "; ".join(distinct("machine")) or "machine not recorded", when]
    sources = distinct("source")
    if sources:
        parts.append("; ".join(sources))
    return "<small>Source: " + "; ".join(parts) + ".</small>"


def span(values: list[float], fmt: str = "{:.2f}", suffix: str = "") -> str:
    """"a" for one value (or equal values), "lo-hi" for several."""
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    lo, hi = min(values), max(values)
    text = fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}-{fmt.format(hi)}"
    return text + suffix


def table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A Markdown table; ``align`` one letter per column (l or r), left by default."""
    align = align or "l" * len(header)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- ablations
def _ablation(task: str) -> tuple[list[dict], object]:
    records = read(f"ablation_{task}")
    module = _script("ablation")
    return module.latest_runs(records), module


def render_ablation(page: Path, task: str) -> str:
    """The summary table of an ablation: clip and multi-view top-1 per model, differences to the
    baseline with Welch's 95% intervals, parameters, GFLOPs per view, train time."""
    results, ablation = _ablation(task)
    return ablation.summary_table(results) + "\n\n" + provenance(results, page, f"ablation_{task}")


def render_ablation_runs(page: Path, task: str) -> str:
    """One row per run of an ablation (model, seed, clip and multi-view top-1, train time)."""
    results, ablation = _ablation(task)
    return ablation.runs_table(results)


def render_ablation_setup(page: Path, task: str) -> str:
    """What an ablation ran: recipe, clips, dataset, seeds, threads and jobs, machine."""
    results, _ = _ablation(task)
    first = results[0]
    seeds = sorted({r["seed"] for r in results})
    epochs = sorted({r.get("max_epochs") or r.get("epochs") for r in results} - {None})
    threads = sorted({r.get("threads") for r in results} - {None})
    jobs = sorted({r.get("jobs") for r in results} - {None})
    data = first.get("dataset", {})
    views = first.get("test_views", [10, 3])
    machines = "; ".join(dict.fromkeys(r.get("machine", "?") for r in results))
    return (f"Recipe `{first.get('config')}` ({'/'.join(map(str, epochs))} epochs, {first.get('clip')} clips, from scratch), "
            f"only the model changes. Dataset `videoattn synth --task {task}`: {first.get('num_classes')} classes, "
            f"train/val/test {data.get('train')}/{data.get('val')}/{data.get('test')} videos. Seeds {', '.join(map(str, seeds))}; "
            f"{len(results)} runs, {'/'.join(map(str, threads))} torch thread(s) each, {'/'.join(map(str, jobs))} at a time, on: "
            f"{machines}. Multi-view: {views[0]} temporal x {views[1]} spatial views per test video.")


def render_ablation_brief(page: Path, task: str, variants: str = "") -> str:
    """The README's table of an ablation: multi-view top-1 per seed, mean ± std, difference to the
    baseline [95% CI]; ``variants``: a comma-separated subset of the rows."""
    results, ablation = _ablation(task)
    rows = []
    chosen = [v for v in variants.split(",") if v]
    shown: list[dict] = []
    for variant in [v for v in ablation.present(results) if not chosen or v in chosen]:
        mine = sorted((r for r in results if r["variant"] == variant), key=lambda r: r["seed"])
        mean, std = ablation.mean_std([r["video_top1"] for r in mine])
        rows.append([f"{ablation.label(variant)}", " / ".join(f"{r['video_top1']:.3f}" for r in mine), f"{mean:.3f} ± {std:.3f}",
                     ablation.delta(results, variant, "video_top1")])
        shown += mine
    backbone = next((r["model"] for r in results if r["variant"] == "baseline"), "baseline")
    return table([f"model (`{backbone}` + block)", "multi-view top-1 per seed", "mean ± std", "Δ vs baseline [95% CI]"], rows) \
        + "\n\n" + provenance(shown, page, f"ablation_{task}")


def render_ablation_delta(page: Path, task: str, variant: str, key: str = "video_top1") -> str:
    """Inline: a block's difference to the baseline with its 95% interval, e.g. ``+0.363 [+0.337, +0.389]``."""
    results, ablation = _ablation(task)
    if not any(r["variant"] == variant for r in results):
        raise RenderError(f"no variant {variant!r} in docs/results/ablation_{task}.jsonl")
    return ablation.delta(results, variant, key)


def render_ablation_mean(page: Path, task: str, variant: str, key: str = "video_top1") -> str:
    """Inline: a row's mean ± standard deviation over seeds, e.g. ``0.876 ± 0.012``."""
    results, ablation = _ablation(task)
    values = [r[key] for r in results if r["variant"] == variant]
    if not values:
        raise RenderError(f"no variant {variant!r} in docs/results/ablation_{task}.jsonl")
    mean, std = ablation.mean_std(values)
    return f"{mean:.3f} ± {std:.3f}"


# ------------------------------------------------------------------------------- benchmarks
BLOCK_LABELS = {
    "NonLocal3d softmax auto": "`NonLocal3d` softmax (auto)",
    "NonLocal3d softmax chunked": "`NonLocal3d` softmax, chunked (affinity never stored)",
    "NonLocal3d softmax sdpa": "`NonLocal3d` softmax, SDPA",
    "NonLocal3d softmax matmul": "`NonLocal3d` softmax, matmul",
    "NonLocal3d dot_product auto": "`NonLocal3d` dot_product (auto)",
    "NonLocal3d dot_product matmul": "`NonLocal3d` dot_product, matmul",
    "CGNL3d dot g=8": "`CGNL3d` dot, 8 groups",
    "CGNL3d gaussian g=8 order 3": "`CGNL3d` gaussian, 8 groups, order 3",
    "GlobalContext3d att add 1/16": "`GlobalContext3d`",
    "SqueezeExcite3d 1/16": "`SqueezeExcite3d`",
    "LocalRelationBlock3d 3x7x7 m=8": "`LocalRelationBlock3d` 3x7x7, 8 heads",
    "RelationModule3d 16 heads auto": "`RelationModule3d` 16 heads (auto)",
    "RelationModule3d 16 heads matmul": "`RelationModule3d` 16 heads, matmul",
    "RelationModule3d 16 heads sdpa": "`RelationModule3d` 16 heads, SDPA with the bias as a float mask",
    "RelationModule3d 8 heads auto": "`RelationModule3d` 8 heads",
    "TransformerEncoder3d pool 1,2,2": "`TransformerEncoder3d` keys pooled (1,2,2) (preset)",
    "TransformerEncoder3d no pool": "`TransformerEncoder3d` all tokens (DETR)",
}
SIZE_LABELS = {"res3": "res3 (C=512, 8x28x28)", "res4": "res4 (C=1024, 8x14x14)", "res3_t4": "res3, 4 frames (C=512, 4x28x28)"}


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def render_bench_blocks(page: Path, size: str, family: str = "all") -> str:
    """Blocks against pytorchvideo's NonLocal at one size (scripts/bench_blocks.py, latest record
    of each block): time and peak memory over the anchor's, time over our NonLocal3d softmax.
    ``family``: "attention" (NL, CGNL, GC, SE), "relation" (LR, Relation, Transformer) or "all"."""
    records = [r for r in read("bench_blocks") if r["size"] == size and not r["block"].startswith("pytorchvideo")]
    if not records:
        raise RenderError(f"no bench_blocks record at size {size!r}")
    relation = ("LocalRelation", "RelationModule", "TransformerEncoder")
    if family == "attention":
        records = [r for r in records if not r["block"].startswith(relation)]
    elif family == "relation":
        records = [r for r in records if r["block"].startswith(relation)]
    shown = latest_by(records, "block")
    with_ours = any(r.get("time_vs_ours") is not None for r in shown)
    header = ["block at " + SIZE_LABELS.get(size, size), "time / anchor", "peak memory / anchor"] + (["time / `NonLocal3d`"] if with_ours else [])
    rows = [[BLOCK_LABELS.get(r["block"], r["block"]), _x(r["time_vs_anchor"]), _x(r.get("memory_vs_anchor"))]
            + ([_x(r.get("time_vs_ours"))] if with_ours else []) for r in shown]
    anchors = ", ".join(dict.fromkeys(f"`{r['anchor']}`" for r in shown))
    settings = ", ".join(dict.fromkeys(f"batch {r.get('batch')}, {r.get('threads')} thread(s), medians of {r.get('repeats')}" for r in shown))
    return (table(header, rows, "l" + "r" * (len(header) - 1)) + f"\n\nAnchor: {anchors} in the same run; forward + backward, fp32, "
            f"CPU time; {settings}.\n\n" + provenance(shown, page, "bench_blocks"))


DATA_OVERHEAD_ROWS = (("files", "files, finished in the worker"), ("shards", "shards, finished in the worker"),
                      ("files_dev", "files, finished on the device"), ("shards_dev", "shards, finished on the device"),
                      ("torch", "files, worker, torch's transport (`pool_slots=0`)"))


def render_bench_data_overhead(page: Path, n: str = "3") -> str:
    """The train loader's cost per clip against the decode floor (scripts/bench_data.py), the last ``n`` runs side by side."""
    shown = [run[0] for run in last_runs(read("bench_data"), int(n))]

    def cells(kind: str, key: str, fmt: str) -> str:
        values = [r["overhead"].get(kind, {}).get(key) for r in shown]
        return "" if all(v is None for v in values) else " / ".join("—" if v is None else fmt.format(v) for v in values)

    rows = [[label, cells(kind, "floor_ms", "{:.1f}"), cells(kind, "sample_x", "{:.2f}x"), cells(kind, "loader_x", "{:.2f}x"),
             cells(kind, "loader_worker_cpu_x", "{:.2f}x")] for kind, label in DATA_OVERHEAD_ROWS]
    header = ["train clip (runs " + " / ".join(str(i + 1) for i in range(len(shown))) + ")", "decode floor (ms)", "sample in process",
              "train loader, wall", "train loader, worker CPU"]
    return table(header, rows) + "\n\n" + provenance(shown, page, "bench_data")


DATA_RATIO_ROWS = (("vs_pytorchvideo", "train", "train 8x8 clips/s, videoattn / pytorchvideo"),
                   ("vs_pytorchvideo", "train_2_per_decode", "the same, 2 clips per decode"),
                   ("vs_pytorchvideo", "test", "10x3-view test videos/s, videoattn / pytorchvideo"),
                   ("shards_vs_files", "train_w1", "shards / files, train clips/s, 1 worker"),
                   ("shards_vs_files", "train_w2", "shards / files, train clips/s, 2 workers"),
                   ("shards_vs_files", "test_w1", "shards / files, test videos/s, 1 worker"),
                   ("shards_vs_files", "test_w2", "shards / files, test videos/s, 2 workers"),
                   ("shards_vs_files", "cpu_train", "shards / files, CPU of a train sample in process"),
                   ("shards_vs_files", "cpu_test", "shards / files, CPU of a test video in process"))


def render_bench_data_ratios(page: Path, n: str = "3") -> str:
    """Throughput against pytorchvideo, and shards against files (scripts/bench_data.py), the last ``n`` runs."""
    shown = [run[0] for run in last_runs(read("bench_data"), int(n))]
    rows = []
    for group, key, label in DATA_RATIO_ROWS:
        values = [r.get(group, {}).get(key) for r in shown]
        if any(v is not None for v in values):
            rows.append([label] + ["—" if v is None else f"{v:.2f}x" for v in values])
    header = [""] + [f"run {i + 1}" for i in range(len(shown))]
    return table(header, rows, "l" + "r" * len(shown)) + "\n\n" + provenance(shown, page, "bench_data")


def render_bench_data_value(page: Path, group: str, key: str, n: str = "3") -> str:
    """Inline: one bench_data ratio over the last ``n`` runs, as a range (``8.32-8.60x``)."""
    shown = [run[0] for run in last_runs(read("bench_data"), int(n))]
    return span([r.get(group, {}).get(key) for r in shown], suffix="x")


def render_finetune(page: Path) -> str:
    """scripts/finetune_inserted.py: a block inserted into a trained network, then fine-tuned, against the plain network."""
    records = read("finetune_inserted")
    return _script("finetune_inserted").finetune_table(records) + "\n\n" + provenance(records, page, "finetune_inserted")

def render_bench_annotations(page: Path) -> str:
    """scripts/bench_data.py --only annotations: each reader of a Kinetics-size list against the csv module (latest run)."""
    r = read("bench_annotations")[-1]
    rows_n = r["rows"]
    lines = (
        ("`csv.reader` over the CSV, every row parsed, nothing kept (the floor)", "csv_module", "csv_module"),
        ("`list(csv.reader(...))`, the rows kept", "csv_lists", "csv_module"),
        ("`load_annotations` (class names and records)", "load", "csv_module"),
        ("`KineticsDataModule.setup(\"fit\")`", "setup", "csv_module"),
        ("`videoattn check-data` start-up (to the first video)", "check_data", "csv_module"),
        ("`videoattn shard` start-up (to the first part, LitData imported)", "shard", "csv_module"),
        ("`read_raw_annotations` on the same videos as a `path label` list", "list_read_raw", "list_csv_module"),
    )
    rows = [[what, f"{r[key + '_cpu']:.2f}", f"{r[key]:.2f}", f"{rows_n / r[key + '_cpu']:,.0f}", f"{r[key + '_cpu'] / r[floor + '_cpu']:.2f}x"]
            for what, key, floor in lines]
    text = table(["reader", "CPU s", "wall s", "rows per CPU s", "CPU / csv module's"], rows, "lrrrr")
    text += (f"\n\nA {rows_n:,}-row Kinetics CSV, medians of {r['repeats']} runs. Records held after `setup`: "
             f"{r['held_mb']:.1f} MB ({r['held_mb'] * 2**20 / rows_n:.0f} bytes per row, tracemalloc); peak during `setup`: {r['peak_mb']:.1f} MB.")
    return text + "\n\n" + provenance([r], page, "bench_annotations")


def render_bench_predict(page: Path) -> str:
    """scripts/bench_predict.py: the predict data path against pytorchvideo, ONNX Runtime against eager PyTorch."""
    shown = latest_by(read("bench_predict"), "part")
    rows = [[r["what"], f"{r['ratio']:.2f}x", ", ".join(f"{k} {r[k]}" for k in ("model", "batch", "input", "workers", "threads") if k in r)]
            for r in shown]
    return table(["measure", "ratio", "settings"], rows, "lrl") + "\n\n" + provenance(shown, page, "bench_predict")


def render_bench_models(page: Path) -> str:
    """scripts/bench_models.py: the i3d_r50_nl train step on the CPU against pytorchvideo's, one row per run."""
    records = read("bench_models")
    rows = []
    for i, r in enumerate(records, 1):
        rows.append([f"{i} ({r['steps']} steps{', `--nl-impl ' + r['nl_impl'] + '`' if r.get('nl_impl') not in (None, 'auto') else ''})",
                     f"{r['pytorchvideo_median_s']:.2f} ({r['pytorchvideo_min_s']:.2f})", f"{r['videoattn_median_s']:.2f} ({r['videoattn_min_s']:.2f})",
                     f"{r['videoattn_median_s'] / r['pytorchvideo_median_s']:.2f}",
                     f"{r['channels_last_3d_median_s'] / r['pytorchvideo_median_s']:.2f}" if r.get("channels_last_3d_median_s") else "—",
                     f"{r['bf16_autocast_median_s'] / r['pytorchvideo_median_s']:.2f}" if r.get("bf16_autocast_median_s") else "—"])
    header = ["run", "pytorchvideo fp32, median (min) s", "videoattn fp32, median (min) s", "ratio of medians",
              "videoattn channels_last_3d / pytorchvideo", "videoattn bf16 autocast / pytorchvideo"]
    return table(header, rows, "lrrrrr") + "\n\n" + provenance(records, page, "bench_models")


def render_bench_gpu(page: Path, part: str) -> str:
    """scripts/bench_gpu.py on a CUDA device, one part: models, blocks, data, compile or demo (latest run)."""
    records = [r for r in last_runs(read("bench_gpu"), 1)[0] if r.get("part") == part]
    if not records:
        raise RenderError(f"no bench_gpu record of part {part!r} in the latest run")
    if part in ("models", "blocks"):
        first = "variant" if part == "models" else "frames"
        rows = []
        for r in records:
            if r.get("videoattn_s") is None:
                rows.append([str(r[first]), f"{r['pytorchvideo_s']:.4f}", r.get("note", "failed"), "", "", "", ""])
                continue
            rows.append([str(r[first]), f"{r['pytorchvideo_s']:.4f}", f"{r['videoattn_s']:.4f}", f"{r['videoattn_s'] / r['pytorchvideo_s']:.2f}",
                         str(r["pytorchvideo_mib"]), str(r["videoattn_mib"]), f"{r['videoattn_mib'] / r['pytorchvideo_mib']:.2f}"])
        body = table([first, "pytorchvideo s", "videoattn s", "time ratio", "pytorchvideo MiB", "videoattn MiB", "memory ratio"], rows, "lrrrrrr")
    elif part == "data":
        rows = [[f"{r['workers']} workers, batch {r['batch']}", f"{r['files_clips_per_s']:.1f}", f"{r['shards_clips_per_s']:.1f}",
                 f"{r['shards_clips_per_s'] / r['files_clips_per_s']:.2f}x"] for r in records]
        body = table(["train loader", "clips/s from files", "clips/s from shards", "shards / files"], rows, "lrrr")
    elif part == "compile":
        rows = [[r["path"], f"{r['eager_s']:.4f}", r.get("note") or f"{r['compiled_s']:.4f} (first step {r['first_step_s']:.1f} s)",
                 str(r.get("compiled_mib", ""))] for r in records]
        body = table(["NonLocal3d path", "eager s / step", "compiled s / step", "compiled peak MiB"], rows, "lrrr")
    elif part == "demo":
        rows = [[r["precision"], r["nl_path"], r["result"], r.get("wall_time") or ""] for r in records]
        body = table(["precision", "NL path", "result", "wall time"], rows)
    else:
        raise RenderError(f"unknown bench_gpu part {part!r}")
    return body + "\n\n" + provenance(records, page, "bench_gpu")


def render_attention_share(page: Path) -> str:
    """scripts/attention_share.py: attention of a query on one object that falls on its partner, over the uniform share."""
    records = read("attention_share")
    rows = [[r["model"], r["block"], f"{r['mean']:.2f}", "—" if r.get("median") is None else f"{r['median']:.2f}", str(r.get("videos", ""))]
            for r in records]
    return table(["model", "block", "mean", "median", "test videos"], rows, "llrrr") + "\n\n" + provenance(records, page, "attention_share")


def render_gc_diagnose(page: Path, kind: str = "table") -> str:
    """The Global Context diagnosis (scripts/gc_diagnose.py): ``table``, the per-seed measures of each
    placement; ``curve``, validation top-1 over the 16-epoch recipe (seed 0)."""
    records = read("gc_diagnose")
    configs = list(dict.fromkeys(r["config"] for r in records))
    labels = {r["config"]: r["config_label"] for r in records}
    fmt = lambda v: f"{v:g}"  # noqa: E731  (as measured: 0.3, 26.8, 0.944)
    if kind == "table":
        measures = list(dict.fromkeys(r["measure"] for r in records if "seed" in r and "epoch" not in r and not r["measure"].startswith("multiview")))
        rows = []
        for m in measures:
            mine = [r for r in records if r["measure"] == m]
            row = [mine[0]["label"]]
            for c in configs:
                values = [r["value"] for r in sorted((r for r in mine if r["config"] == c), key=lambda r: r["seed"])]
                row.append(" / ".join(fmt(v) for v in values) if values else "—")
            rows.append(row)
        return table(["seeds 0 / 1 / 2", *(labels[c] for c in configs)], rows) + "\n\n" + provenance(records, page, "gc_diagnose")
    if kind == "curve":
        mine = [r for r in records if r["measure"] == "val_top1_16_epochs"]
        epochs = sorted({r["epoch"] for r in mine})
        shown = [c for c in configs if any(r["config"] == c for r in mine)]
        final = {r["config"]: r["value"] for r in records if r["measure"] == "multiview_top1_16_epochs"}
        rows = [[labels[c], *(next((fmt(r["value"]) for r in mine if r["config"] == c and r["epoch"] == e), "—") for e in epochs),
                 fmt(final[c]) if c in final else "—"] for c in shown]
        return (table(["seed 0, actions recipe", *(f"val top-1, epoch {e}" for e in epochs), "multi-view top-1"], rows, "l" + "r" * (len(epochs) + 1))
                + "\n\n" + provenance(mine, page, "gc_diagnose"))
    raise RenderError(f"unknown gc-diagnose kind {kind!r}: table or curve")


def render_latest(page: Path, name: str) -> str:
    """The latest run of any results file as a table of its fields (for benchmarks without a dedicated renderer)."""
    path = RESULTS / f"{name}.jsonl"
    script = f"scripts/{name}.py"
    if not path.is_file():
        return f"No run recorded yet: `python {script}` appends one to `docs/results/{name}.jsonl`."
    shown = last_runs(read(name), 1)[0]
    keys = [k for k in dict.fromkeys(k for r in shown for k in r) if k not in ("commit", "machine", "date", "run", "source")]
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    return table(keys, [[fmt(r.get(k, "")) for k in keys] for r in shown]) + "\n\n" + provenance(shown, page, name)


def render_models(page: Path) -> str:
    """Parameters and GFLOPs per view of the registered models at their recipe input (docs/results/models.jsonl)."""
    shown = latest_by(read("models"), "model", "input")
    rows = []
    for r in shown:
        params = r["params"] / 1e6 if r["params"] > 1e4 else r["params"]  # a count, or millions
        rows.append([f"`{r['model']}`", str(r["input"]), f"{params:.2f}", f"{r['gflops']:.2f}"])
    return table(["model", "input", "params (M)", "GFLOPs / view"], rows, "llrr") + "\n\n" + provenance(shown, page, "models")


# ----------------------------------------------------------------------------- README speed
def render_speed(page: Path) -> str:
    """The README's speed table: videoattn against pytorchvideo, one row per benchmark, each linking to its page."""
    bench = DOCS / "benchmarks"
    rows = []
    blocks = latest_by(read("bench_blocks"), "size", "block")
    for size in ("res3", "res4"):
        r = next((r for r in blocks if r["size"] == size and r["block"] == "NonLocal3d softmax auto"), None)
        if r:
            rows.append([f"`NonLocal3d` forward + backward at {SIZE_LABELS[size]}", f"{r['time_vs_anchor']:.2f}x the time, "
                         f"{r['memory_vs_anchor']:.2f}x the memory", f"CPU, batch {r['batch']}, {r['threads']} thread",
                         f"[blocks]({link(page, bench / 'blocks.md')})"])
    data = [run[0] for run in last_runs(read("bench_data"), 3)]
    for key, what in (("train", "train 8x8 clips/s (decode, augment, load)"), ("test", "10x3-view test videos/s")):
        rows.append([what, span([r["vs_pytorchvideo"].get(key) for r in data], suffix="x the throughput"),
                     f"CPU, 1 worker, {len(data)} run(s)", f"[data]({link(page, bench / 'data.md')})"])
    predict = {r["part"]: r for r in latest_by(read("bench_predict"), "part")}
    if "predict" in predict:
        rows.append(["`videoattn predict` data path, 10x3-view videos/s", f"{predict['predict']['ratio']:.1f}x the throughput",
                     "CPU, 1 worker", f"[inference]({link(page, bench / 'inference.md')})"])
    models = read("bench_models")
    rows.append(["`i3d_r50_nl` train step, batch 2, 8x224x224", span([r["videoattn_median_s"] / r["pytorchvideo_median_s"] for r in models],
                 suffix="x the time"), f"CPU (shared, noisy), {len(models)} runs", f"[training step]({link(page, bench / 'train_step.md')})"])
    gpu = [r for r in last_runs(read("bench_gpu"), 1)[0] if r.get("part") == "models" and r.get("videoattn_s")]
    for r in gpu:
        if r["variant"] in ("fp32", "bf16-mixed"):
            rows.append([f"`i3d_r50_nl` train step, batch 8, 8x224x224, {r['variant']}",
                         f"{r['videoattn_s'] / r['pytorchvideo_s']:.2f}x the time, {r['videoattn_mib'] / r['pytorchvideo_mib']:.2f}x the memory",
                         f"{r['machine'].split(';')[0]}, one run", f"[GPU]({link(page, DOCS / 'gpu.md')})"])
    names = ("bench_blocks", "bench_data", "bench_predict", "bench_models", "bench_gpu")
    sources = ", ".join(f"[`{n}`]({link(page, RESULTS / f'{n}.jsonl')})" for n in names)
    return (table(["what", "videoattn / pytorchvideo", "where", "details"], rows, "lrll")
            + f"\n\n<small>Sources: {sources} under `docs/results/`, each line with its commit, machine and date.</small>")


# ----------------------------------------------------------------------------------- registry
RENDERERS: dict[str, Callable[..., str]] = {
    "ablation": render_ablation,
    "ablation-runs": render_ablation_runs,
    "ablation-setup": render_ablation_setup,
    "ablation-brief": render_ablation_brief,
    "ablation-delta": render_ablation_delta,
    "ablation-mean": render_ablation_mean,
    "bench-annotations": render_bench_annotations,
    "bench-blocks": render_bench_blocks,
    "bench-data-overhead": render_bench_data_overhead,
    "bench-data-ratios": render_bench_data_ratios,
    "bench-data-value": render_bench_data_value,
    "bench-predict": render_bench_predict,
    "bench-models": render_bench_models,
    "bench-gpu": render_bench_gpu,
    "attention-share": render_attention_share,
    "finetune": render_finetune,
    "gc-diagnose": render_gc_diagnose,
    "latest": render_latest,
    "models": render_models,
    "speed": render_speed,
}


def render(name: str, page: Path) -> str:
    """What the marker ``name`` (``renderer:arg:arg``) renders to on ``page``."""
    renderer, *args = name.split(":")
    if renderer not in RENDERERS:
        raise RenderError(f"unknown renderer {renderer!r}; known: {', '.join(RENDERERS)}")
    try:
        return RENDERERS[renderer](page, *args).strip()
    except TypeError as err:
        raise RenderError(f"{name}: {err}") from None
    except KeyError as err:
        raise RenderError(f"{name}: a results line lacks the field {err}") from None


def _shown(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


def render_text(text: str, page: Path) -> str:
    """``text`` with every marked block rendered again. A block whose opening marker ends its line
    is rendered as a block (blank lines around), otherwise inline."""
    def replace(match: re.Match) -> str:
        name, body = match.group("name"), match.group("body")
        try:
            out = render(name, page)
        except RenderError as err:
            raise RenderError(f"{_shown(page)}: {err}") from None
        if body.startswith("\n"):
            return f"<!-- results:{name} -->\n\n{out}\n\n<!-- /results -->"
        if "\n" in out:
            raise RenderError(f"{_shown(page)}: {name} renders several lines; put it on its own lines")
        return f"<!-- results:{name} -->{out}<!-- /results -->"

    opened = text.count("<!-- results:")
    if opened != len(MARKER.findall(text)):
        raise RenderError(f"{_shown(page)}: a `<!-- results:NAME -->` marker without its `<!-- /results -->`, or a NAME with "
                          "characters other than letters, digits and . : , / -")
    return MARKER.sub(replace, text)


def pages() -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def blocks(text: str) -> list[tuple[str, str]]:
    """(name, body) of every marked block of a page."""
    return [(m.group("name"), m.group("body")) for m in MARKER.finditer(text)]


def stale(page: Path) -> list[str]:
    """Names of the page's blocks whose content differs from what their results render."""
    text = page.read_text()
    fresh = dict(blocks(render_text(text, page)))
    return [name for name, body in blocks(text) if fresh.get(name) != body]


def charts() -> list[Path]:
    """Draw each ablation's chart (docs/ablation_<task>.png) from docs/results/ablation_<task>.jsonl."""
    ablation = _script("ablation")
    out = []
    for path in sorted(RESULTS.glob("ablation_*.jsonl")):
        task = path.stem[len("ablation_"):]
        results = ablation.latest_runs(read(path.stem))
        png = DOCS / f"ablation_{task}.png"
        ablation.chart(results, png, ablation.chart_title(results, task))
        out.append(png)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 naming the blocks that differ from their results")
    parser.add_argument("--list", action="store_true", help="the renderers and what each shows")
    parser.add_argument("--no-charts", action="store_true", help="do not draw the ablation charts again")
    args = parser.parse_args(argv)
    if args.list:
        for name, fn in RENDERERS.items():
            print(f"{name:22s} {(fn.__doc__ or '').split(chr(10))[0]}")
        return 0
    try:
        if args.check:
            bad = [f"{page.relative_to(ROOT)}: {name}" for page in pages() for name in stale(page)]
            for line in bad:
                print(f"stale: {line}")
            if bad:
                print("run `python scripts/render_docs.py` (or `make docs`) to render them from docs/results/")
            return 1 if bad else 0
        changed = []
        for page in pages():
            text = page.read_text()
            new = render_text(text, page)
            if new != text:
                page.write_text(new)
                changed.append(page)
        drawn = [] if args.no_charts else charts()
    except RenderError as err:
        print(f"render_docs: {err}", file=sys.stderr)
        return 2
    print(f"rendered {len(changed)} page(s){': ' + ', '.join(str(p.relative_to(ROOT)) for p in changed) if changed else ''}; "
          f"{len(drawn)} chart(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
