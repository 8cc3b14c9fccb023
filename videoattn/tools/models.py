"""`videoattn models`: list the registered models (backbones and presets)."""
from __future__ import annotations

import argparse

from videoattn.models import get_model_entry, list_models


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="videoattn models", description="List the registered models.")
    parser.add_argument("pattern", nargs="?", default="", help="show only names containing this text")
    args = parser.parse_args(argv)
    names = [n for n in list_models() if args.pattern in n]
    if not names:
        print(f"no model name contains {args.pattern!r}; models: {', '.join(list_models())}")
        return 1
    width = max(map(len, names))
    for name in names:
        entry = get_model_entry(name)
        frames = "+".join(map(str, entry.frames))
        print(f"{name:<{width}}  {frames:>4}x{entry.crop_size:<3}  {entry.description}")
    return 0
