"""Speed and peak memory of the blocks at the sizes where the I3D-R50 recipes put them
(res3: C=512, 8x28x28; res4: C=1024, 8x14x14), forward + backward, fp32 on the CPU, against
pytorchvideo's NonLocal (softmax / dot_product, pool (1, 2, 2)) in the same run; the last column
is the time against our NonLocal3d (softmax, auto). res3_t4 (C=512, 4x28x28, half of res3's
positions) shows how memory grows with T*H*W.

Time: CPU time (time.process_time) of one forward + backward, median over --repeats rounds,
  candidates interleaved round-robin. With --threads 1 (default) CPU time is the work done and
  is robust to other processes sharing the machine; wall time is printed as well.
Memory: each candidate runs in a fresh subprocess (malloc mmap threshold pinned at 64 KiB so
  that freed tensors return to the OS); after a warm-up iteration the kernel's peak-RSS mark is
  reset (/proc/self/clear_refs) and the peak RSS growth over one forward + backward is reported.
  Input, module and the incoming gradient exist before the measurement and are not counted.

Usage: python scripts/bench_blocks.py [--batch 2] [--repeats 7] [--threads 1] [--sizes res3 res4]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # scripts/: the results file helper
import results_file  # noqa: E402

SIZES = {"res3": (512, 8, 28, 28), "res4": (1024, 8, 14, 14), "res3_t4": (512, 4, 28, 28)}
DEFAULT_SIZES = ["res3", "res4"]
OURS = "NonLocal3d softmax auto"


def candidates() -> dict[str, tuple[str, Callable[[int], nn.Module]]]:
    """name -> (anchor name, builder(channels)). Anchors are pytorchvideo's NonLocal."""
    from pytorchvideo.layers.nonlocal_net import create_nonlocal

    from videoattn.blocks import (
        CGNL3d,
        GlobalContext3d,
        LocalRelationBlock3d,
        NonLocal3d,
        RelationModule3d,
        SqueezeExcite3d,
        TransformerEncoder3d,
    )

    def pv(inst: str) -> Callable[[int], nn.Module]:
        return lambda c: create_nonlocal(dim_in=c, dim_inner=c // 2, pool_size=(1, 2, 2), instantiation=inst)

    def nl(inst: str, impl: str) -> Callable[[int], nn.Module]:
        return lambda c: NonLocal3d(c, instantiation=inst, pool_size=(1, 2, 2), impl=impl)

    softmax, dot = "pytorchvideo NL softmax", "pytorchvideo NL dot_product"
    return {
        softmax: (softmax, pv("softmax")),
        "NonLocal3d softmax auto": (softmax, nl("softmax", "auto")),
        "NonLocal3d softmax chunked": (softmax, nl("softmax", "chunked")),
        "NonLocal3d softmax sdpa": (softmax, nl("softmax", "sdpa")),
        "NonLocal3d softmax matmul": (softmax, nl("softmax", "matmul")),
        dot: (dot, pv("dot_product")),
        "NonLocal3d dot_product auto": (dot, nl("dot_product", "auto")),
        "NonLocal3d dot_product matmul": (dot, nl("dot_product", "matmul")),
        "GlobalContext3d att add 1/16": (softmax, lambda c: GlobalContext3d(c)),
        "SqueezeExcite3d 1/16": (softmax, lambda c: SqueezeExcite3d(c)),
        "CGNL3d dot g=8": (softmax, lambda c: CGNL3d(c)),
        "CGNL3d gaussian g=8 order 3": (softmax, lambda c: CGNL3d(c, kernel="gaussian")),
        "LocalRelationBlock3d 3x7x7 m=8": (softmax, lambda c: LocalRelationBlock3d(c)),
        "RelationModule3d 16 heads auto": (softmax, lambda c: RelationModule3d(c)),
        "RelationModule3d 16 heads matmul": (softmax, lambda c: RelationModule3d(c, impl="matmul")),
        "RelationModule3d 16 heads sdpa": (softmax, lambda c: RelationModule3d(c, impl="sdpa")),
        "RelationModule3d 8 heads auto": (softmax, lambda c: RelationModule3d(c, heads=8)),
        "TransformerEncoder3d pool 1,2,2": (softmax, lambda c: TransformerEncoder3d(c, pool_size=(1, 2, 2))),
        "TransformerEncoder3d no pool": (softmax, lambda c: TransformerEncoder3d(c)),
        "TransformerEncoder3d d=C/2 pool": (
            softmax, lambda c: TransformerEncoder3d(c, inner_channels=c // 2, ffn_channels=c, pool_size=(1, 2, 2))),
    }


def _setup(name: str, size: str, batch: int, seed: int = 0):
    torch.manual_seed(seed)
    c, t, h, w = SIZES[size]
    block = candidates()[name][1](c).train()
    x = torch.randn(batch, c, t, h, w, requires_grad=True)
    grad = torch.randn(batch, c, t, h, w)
    return block, x, grad


def _step(block: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> None:
    block(x).backward(grad)
    block.zero_grad(set_to_none=True)
    x.grad = None


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_memory(name: str, size: str, batch: int) -> float:
    """Peak RSS growth (MiB) of one forward + backward; run in a fresh process."""
    block, x, grad = _setup(name, size, batch)
    _step(block, x, grad)  # warm-up: lazy initialisation, BLAS buffers
    import gc

    gc.collect()
    base = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    block(x).backward(grad)
    return (_rss_kib("VmHWM") - base) / 1024


def memory_in_subprocess(name: str, size: str, batch: int, threads: int) -> float:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, __file__, "--_memory", json.dumps([name, size, batch]), "--threads", str(threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def time_all(names: list[str], size: str, batch: int, repeats: int) -> dict[str, tuple[float, float]]:
    """name -> (median CPU seconds, median wall seconds) of one forward + backward, interleaved."""
    setups = {n: _setup(n, size, batch) for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    wall: dict[str, list[float]] = {n: [] for n in names}
    for n in names:
        _step(*setups[n])  # warm-up
    for _ in range(repeats):
        for n in names:
            c0, w0 = time.process_time(), time.perf_counter()
            _step(*setups[n])
            cpu[n].append(time.process_time() - c0)
            wall[n].append(time.perf_counter() - w0)
    return {n: (statistics.median(cpu[n]), statistics.median(wall[n])) for n in names}


def check_equal(size: str, batch: int) -> float:
    """Largest |difference| between every NonLocal3d impl and pytorchvideo at this size (same weights)."""
    worst = 0.0
    cands = candidates()
    for inst, impls in (("softmax", ("auto", "chunked", "sdpa", "matmul")), ("dot_product", ("auto", "matmul"))):
        ref, x, _ = _setup(f"pytorchvideo NL {inst}", size, 1)
        with torch.no_grad():
            nn.init.normal_(ref.norm.weight), nn.init.normal_(ref.norm.bias)
            expected = ref.eval()(x)
            for impl in impls:
                ours = cands[f"NonLocal3d {inst} {impl}"][1](x.shape[1]).eval()
                ours.load_state_dict(ref.state_dict())
                worst = max(worst, (ours(x) - expected).abs().max().item())
    return worst


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, choices=list(SIZES))
    parser.add_argument("--only", nargs="*", default=None, help="substrings of candidate names to keep")
    parser.add_argument("--no-memory", action="store_true", help="time only (memory runs one subprocess per candidate)")
    parser.add_argument("--_memory", help=argparse.SUPPRESS)
    results_file.add_argument(parser, "bench_blocks")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args._memory:
        print(measure_memory(*json.loads(args._memory)))
        return

    cands = candidates()
    names = [n for n in cands if args.only is None or any(s in n for s in args.only) or cands[n][0] == n or n == OURS]
    records = []
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, fp32, forward+backward, "
          f"median of {args.repeats}; ratios are against the anchor in the same run")
    for size in args.sizes:
        c, t, h, w = SIZES[size]
        print(f"\n{size}: N={args.batch}, C={c}, {t}x{h}x{w}   (max |ours - pytorchvideo| = {check_equal(size, args.batch):.2e})")
        times = time_all(names, size, args.batch, args.repeats)
        mems = {n: float("nan") if args.no_memory else memory_in_subprocess(n, size, args.batch, args.threads) for n in names}
        print(f"  {'block':34s} {'cpu s':>7s} {'wall s':>7s} {'peak MiB':>9s} {'time/anchor':>12s} {'mem/anchor':>11s} "
              f"{'time/NonLocal3d':>16s}  anchor")
        for n in names:
            anchor = cands[n][0]
            print(
                f"  {n:34s} {times[n][0]:7.3f} {times[n][1]:7.3f} {mems[n]:9.1f} "
                f"{times[n][0] / times[anchor][0]:12.2f} {mems[n] / mems[anchor]:11.2f} "
                f"{times[n][0] / times[OURS][0]:16.2f}  {anchor}",
                flush=True,
            )
            memory = None if mems[n] != mems[n] else round(mems[n] / mems[anchor], 4)  # NaN: --no-memory
            records.append({"size": size, "block": n, "anchor": anchor, "cpu_s": times[n][0], "wall_s": times[n][1],
                            "peak_mib": None if mems[n] != mems[n] else mems[n], "time_vs_anchor": round(times[n][0] / times[anchor][0], 4),
                            "memory_vs_anchor": memory, "time_vs_ours": round(times[n][0] / times[OURS][0], 4),
                            "batch": args.batch, "threads": args.threads, "repeats": args.repeats, "dtype": "float32"})
    path = results_file.chosen(args.results, "bench_blocks")
    if path:
        print(f"results: {results_file.write(path, records)}")


if __name__ == "__main__":
    main()
