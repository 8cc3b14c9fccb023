"""The two computations of the Local Relation op (videoattn.blocks.local_relation3d) against each
other: "window" (one pass per neighbourhood offset, memory linear in T*H*W) and "dense" (one
(T*H*W)^2 weight matrix per head, batched matmuls), forward + backward of LocalRelation3d
(C 128, 8 heads) on maps from smaller than the neighbourhood to several times its size. The
ratio window / dense crosses 1 where "auto" should switch: DENSE_FACTOR, maps of at most
DENSE_FACTOR * K positions (K = kt * kh * kw) are computed densely.

Time: CPU time (time.process_time) of one forward + backward, median of --repeats, one thread.

Usage: python scripts/bench_lr_paths.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # scripts/: the results file helper
import results_file  # noqa: E402

from videoattn.blocks import LocalRelation3d
from videoattn.blocks.local_relation3d import DENSE_FACTOR

# (kernel, batch, maps (T, H, W)): I3D's 3x7x7 and C2D's 1x7x7 neighbourhoods
CASES = [
    ((3, 7, 7), 8, [(8, 4, 4), (8, 6, 6), (8, 8, 8), (8, 10, 10), (8, 12, 12)]),
    ((1, 7, 7), 32, [(1, 8, 8), (1, 12, 12), (1, 14, 14), (1, 20, 20)]),
]


def step_seconds(impl: str, kernel: tuple[int, int, int], x: torch.Tensor, repeats: int) -> float:
    torch.manual_seed(0)
    layer = LocalRelation3d(x.shape[1], kernel_size=kernel, heads=8, impl=impl)
    times = []
    for i in range(repeats + 1):
        start = time.process_time()
        layer(x).sum().backward()
        if i:  # the first is a warm-up
            times.append(time.process_time() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    results_file.add_argument(parser, "bench_lr_paths")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    records = []
    print(f"DENSE_FACTOR = {DENSE_FACTOR}; CPU ms per forward + backward, median of {args.repeats}")
    print(f"{'kernel':>9} {'batch':>5} {'T x H x W':>11} {'THW / K':>8} {'window':>8} {'dense':>8} {'window/dense':>12} {'auto':>6}")
    for kernel, batch, maps in CASES:
        k = math.prod(kernel)
        for size in maps:
            x = torch.randn(batch, 128, *size, requires_grad=True)
            window, dense = (step_seconds(impl, kernel, x, args.repeats) for impl in ("window", "dense"))
            auto = "dense" if LocalRelation3d(128, kernel_size=kernel)._dense(math.prod(size)) else "window"
            print(f"{'x'.join(map(str, kernel)):>9} {batch:>5} {'x'.join(map(str, size)):>11} {math.prod(size) / k:>8.2f} "
                  f"{window * 1e3:>8.1f} {dense * 1e3:>8.1f} {window / dense:>12.2f} {auto:>6}", flush=True)
            records.append({"kernel": "x".join(map(str, kernel)), "batch": batch, "map": "x".join(map(str, size)),
                            "thw_over_k": round(math.prod(size) / k, 3), "window_ms": round(window * 1e3, 2), "dense_ms": round(dense * 1e3, 2),
                            "window_over_dense": round(window / dense, 3), "auto": auto, "repeats": args.repeats})
    path = results_file.chosen(args.results, "bench_lr_paths")
    if path:
        print(f"results: {results_file.write(path, records)}")


if __name__ == "__main__":
    main()
