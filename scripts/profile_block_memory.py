"""What holds the memory of one block's forward + backward: the tensors alive at the peak.

Runs one training step (forward + backward of a random gradient, fp32, CPU) of NonLocal3d (any
``impl``) or pytorchvideo's NonLocal at the I3D-R50 res3/res4 sizes under torch.profiler with
profile_memory, replays the allocator's events and prints (1) the peak of live tensor bytes
allocated during the step (input, module and incoming gradient excluded, as in
scripts/bench_blocks.py), with the op running at the peak, and (2) the tensors alive there, each
with the op that allocated it. With --timeline, every allocation or free of 1 MiB or more.

This counts allocations, not touched pages: an allocation never written (native_batch_norm_backward
allocates its grad_input twice on the CPU and writes one) counts here but not in the peak RSS
that bench_blocks.py measures.

Usage: python scripts/profile_block_memory.py [--block nl:auto] [--size res4] [--batch 4] [--timeline]
  --block: pv (pytorchvideo NonLocal, softmax) or nl:IMPL (NonLocal3d softmax, IMPL in auto,
  matmul, folded, chunked, sdpa)
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

SIZES = {"res3": (512, 8, 28, 28), "res4": (1024, 8, 14, 14)}


def build(block: str, channels: int) -> nn.Module:
    if block == "pv":
        from pytorchvideo.layers.nonlocal_net import create_nonlocal

        return create_nonlocal(dim_in=channels, dim_inner=channels // 2, pool_size=(1, 2, 2), instantiation="softmax")
    if not block.startswith("nl:"):
        raise ValueError(f"--block: expected pv or nl:IMPL, got {block!r}")
    from videoattn.blocks import NonLocal3d

    return NonLocal3d(channels, pool_size=(1, 2, 2), impl=block[3:])


def trace_step(block: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> list[dict]:
    """The chrome-trace events of one profiled forward + backward (after a warm-up step)."""
    block(x).backward(grad)
    block.zero_grad(set_to_none=True)
    x.grad = None
    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        block(x).backward(grad)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        return json.loads(path.read_text())["traceEvents"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--block", default="nl:auto")
    parser.add_argument("--size", default="res4", choices=list(SIZES))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeline", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    c, t, h, w = SIZES[args.size]
    block = build(args.block, c).train()
    x = torch.randn(args.batch, c, t, h, w, requires_grad=True)
    events = trace_step(block, x, torch.randn_like(x))

    memory = sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"])
    ops = sorted((e for e in events if e.get("ph") == "X" and e.get("cat") == "cpu_op"), key=lambda e: e["ts"])

    def op_at(ts: float) -> str:  # the outermost three ops running at time ts
        names = [o["name"].replace("autograd::engine::evaluate_function: ", "") for o in ops if o["ts"] <= ts <= o["ts"] + o["dur"]]
        return " > ".join(names[:3]) or "(between ops)"

    live: dict[int, tuple[int, float]] = {}
    current = peak = 0
    at_peak: dict[int, tuple[int, float]] = {}
    peak_ts = 0.0
    mib = 2**20
    for e in memory:
        size, addr = e["args"]["Bytes"], e["args"]["Addr"]
        if size > 0:
            live[addr] = (size, e["ts"])
        else:
            live.pop(addr, None)
        current += size
        if args.timeline and abs(size) >= mib:
            print(f"{current / mib:8.1f} MiB  {size / mib:+8.2f}  {op_at(e['ts'])}")
        if current > peak:
            peak, at_peak, peak_ts = current, dict(live), e["ts"]
    print(f"{args.block} at {args.size} (C={c}, {t}x{h}x{w}), batch {args.batch}, fp32, forward + backward: "
          f"peak of live tensors allocated in the step {peak / mib:.1f} MiB, during {op_at(peak_ts)}")
    for size, ts in sorted(at_peak.values(), key=lambda v: -v[0]):
        if size >= mib // 4:
            print(f"  {size / mib:7.2f} MiB  allocated by {op_at(ts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
