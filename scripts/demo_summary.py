#!/usr/bin/env python
"""The last line of `make demo`: the demo model's multi-view top-1 on the test split, against the
baseline of the same recipe without blocks, read from the relations ablation's per-run results
(docs/results/ablation_relations.jsonl, written by `scripts/ablation.py --task relations`).

  python scripts/demo_summary.py runs/demo/test_predictions.csv
  -> demo: i3d_probe_nl multi-view top-1 0.951 (baseline 0.497, from docs/results/ablation_relations.jsonl: i3d_probe, same recipe, mean of 3 seeds)
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ("docs/results/ablation_relations.jsonl",)


def top1(predictions: Path) -> tuple[float, int]:
    """Per-video top-1 of a predictions CSV (``videoattn test --model.predictions_csv``) and its row count."""
    rows = list(csv.DictReader(predictions.open()))
    if not rows:
        raise SystemExit(f"demo_summary: {predictions} has no rows")
    return sum(r["label"] == r["class_1"] for r in rows) / len(rows), len(rows)


def baseline(results: list[Path]) -> tuple[float, int, Path, str] | None:
    """Mean video top-1 of the baseline rows of the first results file that exists."""
    for path in results:
        if path.is_file():
            runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            base = [r for r in runs if r.get("variant") == "baseline"]
            if base:
                return statistics.mean(r["video_top1"] for r in base), len(base), path, base[0].get("model", "baseline")
    return None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("predictions", type=Path, help="the demo's test predictions CSV")
    p.add_argument("--model", default="i3d_probe_nl", help="the demo's model (default %(default)s)")
    p.add_argument("--results", type=Path, nargs="+", default=[ROOT / r for r in RESULTS],
                   help="ablation results to take the baseline from, the first that exists (default: %(default)s)")
    args = p.parse_args(argv)
    score, n = top1(args.predictions)
    found = baseline(args.results)
    if found is None:
        where = "baseline not measured: no " + " or ".join(str(r) for r in args.results)
    else:
        mean, seeds, path, name = found
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        where = f"baseline {mean:.3f}, from {shown}: {name}, same recipe, mean of {seeds} seeds"
    print(f"demo: {args.model} multi-view top-1 {score:.3f} ({where}; {n} test videos)")


if __name__ == "__main__":
    main()
