#!/usr/bin/env python
"""Results files: what every benchmark and ablation script writes under docs/results/, one JSON
line per measurement, each carrying the commit, the machine and the date of its run. The tables
and the figures quoted in README.md and docs/ are rendered from these files by
scripts/render_docs.py (`make docs`), never typed by hand.

A script calls `write(name, records, ...)`: every record gets `commit` (the short hash of HEAD,
with "-dirty" when tracked files differ from it), `machine` (CPU model and core count, and the
GPU when one is named), `date` (UTC, ISO 8601) and `run` (the same for every line written by
one invocation, so a page can show the latest run or several). Lines are appended: re-running
a benchmark adds a run, and `git log -p docs/results/NAME.jsonl` is its history.

  python scripts/results_file.py            # the metadata this machine would record now
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "docs" / "results"
META_KEYS = ("commit", "machine", "date", "run")


def commit() -> str:
    """Short hash of the repository's HEAD, "-dirty" appended when tracked files have changes;
    "unknown" outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(gpu: str | None = None) -> str:
    """One line naming the hardware: CPU model and core count, and ``gpu`` when given."""
    text = f"{cpu_model()}, {os.cpu_count()} cores"
    return f"{gpu}; {text}" if gpu else text


def metadata(gpu: str | None = None) -> dict[str, str]:
    """The fields every results line carries: commit, machine, date (``run`` equals ``date``)."""
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    return {"commit": commit(), "machine": machine(gpu), "date": now, "run": now}


def default_path(name: str) -> Path:
    """docs/results/NAME.jsonl (under $VIDEOATTN_RESULTS_DIR instead when set: the tests that run
    the docs' commands keep the repository's results untouched)."""
    return Path(os.environ.get("VIDEOATTN_RESULTS_DIR") or RESULTS_DIR) / f"{name}.jsonl"


def write(name_or_path: str | Path, records: Iterable[dict], *, gpu: str | None = None, meta: dict | None = None) -> Path:
    """Append ``records`` to a results file (a bare name means docs/results/NAME.jsonl), each
    with the run's metadata (``meta``, else ``metadata(gpu)``). Returns the file's path."""
    path = Path(name_or_path)
    if path.suffix != ".jsonl" and len(path.parts) == 1:
        path = default_path(str(name_or_path))
    meta = meta or metadata(gpu)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for record in records:
            f.write(json.dumps({**record, **meta}) + "\n")
    return path


def read(name_or_path: str | Path) -> list[dict]:
    """Every line of a results file (a bare name means docs/results/NAME.jsonl); [] if missing."""
    path = Path(name_or_path)
    if path.suffix != ".jsonl" and len(path.parts) == 1:
        path = default_path(str(name_or_path))
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def add_argument(parser: argparse.ArgumentParser, name: str) -> None:
    """``--results FILE`` on a script's parser: docs/results/NAME.jsonl by default, "none" to write nothing."""
    parser.add_argument("--results", metavar="FILE",
                        help=f"results file the run appends to, one JSON line per measurement with commit, machine and date "
                             f"(default docs/results/{name}.jsonl; 'none': write nothing)")


def chosen(value: str | None, name: str) -> Path | None:
    """The path a ``--results`` value names: docs/results/NAME.jsonl when not given, None for "none"."""
    if value is None:
        return default_path(name)
    if not value or value.lower() == "none":
        return None
    return Path(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", help="name a GPU in the machine field")
    args = parser.parse_args(argv)
    print(json.dumps(metadata(args.gpu), indent=1))


if __name__ == "__main__":
    main()
