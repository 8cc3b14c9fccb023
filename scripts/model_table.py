"""Parameters and GFLOPs per view of every registered model (or those named), at each recipe's
input, as one JSON line per model: model, input, params, gflops (and flops, the exact count of
multiply-adds), the inserted blocks (count, class, params, gflops, flops) and the run's commit,
machine and date. GFLOPs: torch's FlopCounterMode, one multiply-add = one FLOP
(videoattn.models.flops.model_card, as `videoattn flops NAME`).

  python scripts/model_table.py                         # all models -> docs/results/models.jsonl
  python scripts/model_table.py i3d_r50 i3d_r50_nl --out /tmp/models.jsonl
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

import torch

from videoattn.models import list_models
from videoattn.models.flops import ModelCard, model_card

ROOT = Path(__file__).resolve().parents[1]


def _commit() -> str:
    """The checkout's short commit, "+dirty" when files differ from it; "unknown" outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _machine() -> str:
    """CPU model, architecture, Python and torch versions (the count itself does not depend on them)."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"{cpu} ({platform.machine()}), Python {platform.python_version()}, torch {torch.__version__}"


def row(card: ModelCard, **run: str) -> dict:
    """One JSON line of the table for ``card``."""
    blocks = sorted({b.block for b in card.blocks})
    return {
        "model": card.name,
        "input": card.input_shape,
        "params": card.params,
        "gflops": round(card.flops / 1e9, 4),
        "flops": card.flops,
        "blocks": len(card.blocks),
        "block": ", ".join(blocks) or None,
        "block_params": sum(b.params for b in card.blocks),
        "block_gflops": round(sum(b.flops for b in card.blocks) / 1e9, 4),
        "block_flops": sum(b.flops for b in card.blocks),
        **run,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="model names (default: every registered model)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "models.jsonl", help="JSON-lines file to write")
    parser.add_argument("--num-classes", type=int, default=400)
    args = parser.parse_args(argv)
    names = args.models or list_models()
    unknown = [n for n in names if n not in list_models()]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; see `videoattn models`")
    run = {"commit": _commit(), "machine": _machine(), "date": datetime.date.today().isoformat()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as f:
        for name in names:
            line = row(model_card(name, num_classes=args.num_classes), **run)
            f.write(json.dumps(line) + "\n")
            print(f"{name}: {line['params'] / 1e6:.2f} M parameters, {line['gflops']:.2f} GFLOPs", flush=True)
    print(f"wrote {len(names)} models to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
