#!/usr/bin/env python
"""Summarise the block_dynamics.jsonl files that BlockDynamics
(videoattn.callbacks.block_dynamics) writes per run, one row per run: whether its train top-1 has
plateaued (its gain over the last quarter of the epochs), and for its inserted blocks when they
start to act: the norm of their zero-initialised output layers and their share of their output
(``||block(x) - x|| / ||x||``) at the first, middle and last epochs, and the optimizer's relative
step on the block parameters against the rest of the network (mean over the epochs of the first
quarter and of the last). A block whose output layer stays near zero while its gradient is not
small points at the recipe (its step); one whose layer grows late but keeps growing is a slow start.

  python scripts/block_dynamics.py runs/ablation/actions_long/*_seed*            # run folders (or the .jsonl files)
  python scripts/block_dynamics.py runs/ablation/actions_long/*_seed* --out docs/results/block_dynamics_actions_long.md
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def read(path: Path) -> list[dict]:
    """The per-epoch records of one run: ``path`` is its block_dynamics.jsonl or its run folder."""
    file = path / "block_dynamics.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise SystemExit(f"{path}: no block_dynamics.jsonl (was the run trained with the BlockDynamics callback?)")
    records = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    if not records:
        raise SystemExit(f"{file}: empty")
    return records


def _mean(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def summary(name: str, records: list[dict]) -> dict:
    """Plateau and block measurements of one run (see the module docstring)."""
    top1 = [r["train_top1"] for r in records]
    quarter = max(1, len(records) // 4)
    tail = [t for t in top1[-quarter - 1:] if t is not None]
    picks = sorted({0, len(records) // 2, len(records) - 1})
    blocks = {}
    for path, first in records[0]["blocks"].items():
        blocks[path] = {"type": first["type"], "epochs": [records[i]["epoch"] for i in picks],
                        "zero_init_norm": [sum(layer["norm"] for layer in records[i]["blocks"][path]["zero_init"].values()) for i in picks],
                        "output_share": [records[i]["blocks"][path]["output_share"] for i in picks]}
    steps = {}
    for group in ("attention", "rest"):
        steps[group] = [_mean([r["groups"][group]["relative_step"] for r in part]) for part in (records[:quarter], records[-quarter:])]
    return {"run": name, "epochs": len(records), "train_top1": top1[-1], "last_quarter_gain": (max(tail) - tail[0]) if tail else None,
            "blocks": blocks, "relative_step": steps}


def _f(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def table(rows: list[dict]) -> str:
    lines = ["| run | epochs | train top-1 | gain, last quarter | block | zero-init output norm (first / mid / last) | "
             "output share (first / mid / last) | relative step, blocks: rest (first quarter / last) |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        att, rest = row["relative_step"]["attention"], row["relative_step"]["rest"]
        ratio = " / ".join(_f(a / r if a is not None and r else None, ".2f") for a, r in zip(att, rest))
        head = f"| {row['run']} | {row['epochs']} | {_f(row['train_top1'])} | {_f(row['last_quarter_gain'], '+.3f')} |"
        if not row["blocks"]:
            lines.append(f"{head} — | — | — | — |")
        for path, b in row["blocks"].items():
            norms = " / ".join(_f(v, ".3g") for v in b["zero_init_norm"])
            shares = " / ".join(_f(v, ".3g") for v in b["output_share"])
            lines.append(f"{head} {b['type']} `{path}` | {norms} | {shares} | {ratio} |")
            head = "| | | | |"
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run folders holding block_dynamics.jsonl, or the files")
    p.add_argument("--out", type=Path, help="also write the table to this Markdown file and the summaries to <out>.jsonl")
    args = p.parse_args(argv)
    rows = [summary(path.parent.name if path.is_file() else path.name, read(path)) for path in args.runs]
    text = table(rows)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        args.out.with_suffix(".jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(text)
    return text


if __name__ == "__main__":
    main()
