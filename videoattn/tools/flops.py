"""`videoattn flops NAME`: parameters and GFLOPs per view of a model at its recipe's
input (torch's FlopCounterMode, one multiply-add = one FLOP), and what each inserted block adds.
"""
from __future__ import annotations

import argparse

from videoattn.models.flops import model_card


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="videoattn flops", description="Parameters and GFLOPs per view of a model (torch FlopCounterMode, one multiply-add = one FLOP).")
    parser.add_argument("name", help="a model name (see `videoattn models`)")
    parser.add_argument("--num-classes", type=int, default=400)
    parser.add_argument("--frames", type=int, nargs="+", help="frames per pathway (default: the recipe's)")
    parser.add_argument("--crop-size", type=int, help="spatial size (default: the recipe's)")
    args = parser.parse_args(argv)
    try:
        card = model_card(args.name, num_classes=args.num_classes, frames=args.frames, crop_size=args.crop_size)
    except ValueError as err:
        print(f"videoattn flops: {err}")
        return 2
    print(f"{card.name}: input {card.input_shape}, {card.params / 1e6:.2f} M parameters, {card.flops / 1e9:.2f} GFLOPs per view")
    if card.blocks:
        print(f"inserted blocks ({len(card.blocks)}): {sum(b.params for b in card.blocks) / 1e6:.3f} M parameters, "
              f"{sum(b.flops for b in card.blocks) / 1e9:.3f} GFLOPs")
        width = max(len(b.path) for b in card.blocks)
        for b in card.blocks:
            print(f"  {b.path:<{width}}  {b.block:<16} {b.params / 1e6:8.3f} M  {b.flops / 1e9:8.3f} GFLOPs")
    return 0
