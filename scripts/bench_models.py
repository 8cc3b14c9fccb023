"""Benchmark: training-step time (forward, cross-entropy, backward, SGD step) of
videoattn's i3d_r50_nl against pytorchvideo's hub i3d_r50 with pytorchvideo's
NonLocal inserted at the same five places, in one run, alternating the models.
Prints medians and ratios (ours / pytorchvideo: < 1 means ours is faster).

  .venv/bin/python scripts/bench_models.py                       # batch 2, 8x224x224, as the brief
  .venv/bin/python scripts/bench_models.py --size 112 --repeats 5  # quicker
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import nullcontext
from typing import Callable

import torch
import torch.nn as nn
from pytorchvideo.layers.nonlocal_net import create_nonlocal
from pytorchvideo.models import hub

from videoattn.models import create_model, insert_blocks, placement_paths
from videoattn.models.presets import PRESETS

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # scripts/: the results file helper
import results_file  # noqa: E402


def pytorchvideo_i3d_nl(frames: int, size: int) -> nn.Module:
    """pytorchvideo's hub i3d_r50 with pytorchvideo's NonLocal at the i3d_r50_nl places."""
    model = hub.i3d_r50(pretrained=False, head_pool_kernel_size=(frames // 2, size // 32, size // 32))
    places = placement_paths(model, PRESETS["i3d_r50"]["nl"])
    build = lambda c: create_nonlocal(dim_in=c, dim_inner=c // 2, pool_size=(1, 2, 2), instantiation="softmax")  # noqa: E731
    insert_blocks(model, build, places)
    return model


def bench_blocks(batch: int, frames: int, size: int, repeats: int, nl_kwargs: dict) -> None:
    """Forward + backward of the five NL blocks alone at their i3d_r50 feature shapes: the only
    code that differs between the two models (the backbones are pytorchvideo's and videoattn's
    equal modules, with the same weights)."""
    from videoattn.blocks import NonLocal3d

    t = frames // 2  # after the temporal max-pool behind res2
    shapes = [(512, t, size // 8)] * 2 + [(1024, t, size // 16)] * 3  # res3 x2, res4 x3
    total = {"pytorchvideo": [], "videoattn": []}
    for _ in range(repeats):
        run = {"pytorchvideo": 0.0, "videoattn": 0.0}
        for c, tt, hw in shapes:
            x = torch.randn(batch, c, tt, hw, hw, requires_grad=True)
            theirs = create_nonlocal(dim_in=c, dim_inner=c // 2, pool_size=(1, 2, 2), instantiation="softmax")
            ours = NonLocal3d(c, instantiation="softmax", **nl_kwargs)
            ours.load_state_dict(theirs.state_dict())
            for name, block in (("pytorchvideo", theirs), ("videoattn", ours)):
                start = time.perf_counter()
                block(x).sum().backward()
                run[name] += time.perf_counter() - start
        for name in run:
            total[name].append(run[name])
    theirs, ours = statistics.median(total["pytorchvideo"]), statistics.median(total["videoattn"])
    print(f"NonLocal3d impl: {nl_kwargs.get('impl', 'block default')}")
    print(f"five NL blocks alone, forward+backward, median of {repeats}: pytorchvideo NonLocal {theirs:.3f} s, "
          f"videoattn NonLocal3d {ours:.3f} s, ratio {ours / theirs:.2f}")


def make_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, channels_last: bool, bf16: bool) -> Callable[[], None]:
    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else nullcontext

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per variant (after one warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--nl-impl", help="NonLocal3d impl for videoattn (default: the block's own choice)")
    parser.add_argument("--blocks-only", action="store_true", help="time only the five NL blocks (fast, low noise)")
    parser.add_argument("--variants", nargs="+", default=["fp32", "channels_last"], choices=["fp32", "channels_last", "bf16"])
    results_file.add_argument(parser, "bench_models")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    nl_kwargs = {"impl": args.nl_impl} if args.nl_impl else {}
    if args.blocks_only:
        bench_blocks(args.batch, args.frames, args.size, max(args.repeats, 5), nl_kwargs)
        return
    x = torch.randn(args.batch, 3, args.frames, args.size, args.size)
    y = torch.randint(0, 400, (args.batch,))

    steps: dict[str, Callable[[], None]] = {}
    for variant in args.variants:
        opts = dict(channels_last=variant == "channels_last", bf16=variant == "bf16")
        steps[f"pytorchvideo i3d_r50+NonLocal {variant}"] = make_step(pytorchvideo_i3d_nl(args.frames, args.size), x, y, **opts)
        steps[f"videoattn i3d_r50_nl {variant}"] = make_step(create_model("i3d_r50_nl", **nl_kwargs), x, y, **opts)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for name, step in steps.items():  # warm-up
        step()
    for _ in range(args.repeats):
        for name, step in steps.items():  # interleaved, so machine noise hits all alike
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)

    print(f"NonLocal3d impl: {args.nl_impl or 'block default'}")
    print(f"train step, batch {args.batch}, {args.frames}x{args.size}x{args.size}, {args.threads} threads, "
          f"median of {args.repeats} (torch {torch.__version__})")
    anchor = statistics.median(times[f"pytorchvideo i3d_r50+NonLocal {args.variants[0]}"])
    print(f"{'model':<42} {'median s':>9} {'min s':>7} {'vs pytorchvideo ' + args.variants[0]:>26}")
    for name, ts in times.items():
        median = statistics.median(ts)
        print(f"{name:<42} {median:9.2f} {min(ts):7.2f} {median / anchor:26.2f}")
    path = results_file.chosen(args.results, "bench_models")
    if path:  # one line per run: the fp32 pair, and videoattn's other variants against pytorchvideo's fp32
        def stat(model: str, variant: str, fn: Callable[[list[float]], float]) -> float | None:
            name = f"pytorchvideo i3d_r50+NonLocal {variant}" if model == "pytorchvideo" else f"videoattn i3d_r50_nl {variant}"
            return round(fn(times[name]), 4) if name in times else None
        first = args.variants[0]
        record = {"steps": args.repeats, "nl_impl": args.nl_impl or "auto", "batch": args.batch, "input": f"{args.frames}x{args.size}x{args.size}",
                  "threads": args.threads, "variant": first,
                  "pytorchvideo_median_s": stat("pytorchvideo", first, statistics.median), "pytorchvideo_min_s": stat("pytorchvideo", first, min),
                  "videoattn_median_s": stat("videoattn", first, statistics.median), "videoattn_min_s": stat("videoattn", first, min),
                  "channels_last_3d_median_s": stat("videoattn", "channels_last", statistics.median),
                  "bf16_autocast_median_s": stat("videoattn", "bf16", statistics.median),
                  "pytorchvideo_bf16_median_s": stat("pytorchvideo", "bf16", statistics.median)}
        record["ratio"] = round(record["videoattn_median_s"] / record["pytorchvideo_median_s"], 4)
        print(f"results: {results_file.write(path, [record])}")


if __name__ == "__main__":
    main()
