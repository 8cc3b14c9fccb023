"""GPU benchmark, one run of a few minutes on a CUDA device:
  models : train step (forward, cross-entropy, backward, SGD) time and peak memory of videoattn's
           i3d_r50_nl against pytorchvideo's i3d_r50 with its NonLocal at the same five places
           (scripts/bench_models.py builds it), in fp32, bf16-mixed, channels_last_3d and
           torch.compile; batch 8, 8x224x224
  blocks : NonLocal3d against pytorchvideo's NonLocal (softmax, pool (1, 2, 2); builders from
           scripts/bench_blocks.py) at res3 (C=512, 28x28) with 8 and 32 frames, forward + backward
  data   : train clips/s through KineticsDataModule's train loader with 8 workers, batch 8, 8x8
           clips, from files and from LitData shards of the same files, each uint8 batch moved
           to the device and normalised there (on_after_batch_transfer), as in training; clips
           finished in the workers and on the device (finish_on_device); finish_clips on the
           device against the CPU
  decode : torchcodec decoding 8x8 clips on the GPU (NVDEC, device="cuda") against the CPU
           (torchcodec and PyAV, one thread), clips/s on the same clips
Times are medians after warm-up, ratios against pytorchvideo (or the CPU) in the same run;
memory is torch.cuda.max_memory_allocated over one step.

  python scripts/bench_gpu.py                 # on a CUDA machine
  python scripts/bench_gpu.py --smoke         # same code, tiny sizes, on the CPU (a test runs it)
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmarks' builders
import results_file  # noqa: E402  (the results file helper)

RECORDS: list[dict] = []  # what this run measured, one dict per results line (the parts append)


def _num(value: float) -> float | None:
    return None if value != value else round(value, 5)  # NaN (a failed measurement) -> null

VARIANTS = ("fp32", "bf16-mixed", "channels_last_3d", "compile")


# --------------------------------------------------------------------------------- timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> tuple[float, float]:
    """(median seconds of ``fn``, peak MiB allocated during one call; nan on the CPU)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    peak = math.nan
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), peak


def _autocast(device: torch.device, variant: str):
    return torch.autocast(device.type, dtype=torch.bfloat16) if variant == "bf16-mixed" else nullcontext()


# ------------------------------------------------------------------------------ models


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, variant: str, device: torch.device, *, smoke: bool) -> Callable[[], None]:
    """One SGD step of ``model`` in ``variant``. (bench_models.make_step is CPU-only: its
    autocast is the CPU's and it has no compile.)"""
    model = model.to(device).train()
    x, y = x.to(device), y.to(device)
    if variant == "channels_last_3d":
        model = model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    # on the CPU smoke run, dynamo traces the model but no code is generated (no compiler needed)
    # static shapes (training runs one clip size), a fresh dynamo cache per model: both models
    # share pytorchvideo's ResNet code, whose second compile would otherwise go dynamic
    if variant == "compile":
        torch.compiler.reset()
    forward = torch.compile(model, backend="eager" if smoke else "inductor", dynamic=False) if variant == "compile" else model
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with _autocast(device, variant):
            loss = nn.functional.cross_entropy(forward(x), y)
        loss.backward()
        opt.step()

    return step


def bench_models(device: torch.device, *, batch: int, frames: int, size: int, repeats: int, variants: list[str], smoke: bool) -> None:
    from bench_models import pytorchvideo_i3d_nl

    from videoattn.models import create_model

    print(f"\n[models] train step, batch {batch}, {frames}x{size}x{size}, median of {repeats}")
    print(f"  {'variant':<18}{'pytorchvideo s':>15}{'videoattn s':>13}{'ratio':>7}{'ptv MiB':>10}{'ours MiB':>10}{'ratio':>7}")
    x = torch.randn(batch, 3, frames, size, size)
    y = torch.randint(0, 400, (batch,))
    for variant in variants:
        row, failed = {}, {}
        for name, build in (("ptv", lambda: pytorchvideo_i3d_nl(frames, size)), ("ours", lambda: create_model("i3d_r50_nl"))):
            torch.manual_seed(0)
            model = build()
            try:
                row[name] = timed(train_step(model, x, y, variant, device, smoke=smoke), device, repeats, warmup=2 if variant == "compile" else 1)
            except Exception as exc:  # noqa: BLE001 - e.g. a compile failure: report it, go on
                failed[name] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''}"
                row[name] = (math.nan, math.nan)
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
        (pt, pm), (ot, om) = row["ptv"], row["ours"]
        print(f"  {variant:<18}{pt:>15.4f}{ot:>13.4f}{ot / pt:>7.2f}{pm:>10.0f}{om:>10.0f}{om / pm if pm == pm else math.nan:>7.2f}", flush=True)
        for name, reason in failed.items():
            print(f"    {variant} FAILED for {'pytorchvideo' if name == 'ptv' else 'videoattn'}: {reason}", flush=True)
        RECORDS.append({"part": "models", "model": "i3d_r50_nl", "batch": batch, "input": f"{frames}x{size}x{size}", "variant": variant,
                        "pytorchvideo_s": _num(pt), "videoattn_s": _num(ot), "pytorchvideo_mib": _num(pm), "videoattn_mib": _num(om),
                        "repeats": repeats, **({"note": "; ".join(f"{k}: {v}" for k, v in failed.items())} if failed else {})})


# ------------------------------------------------------------------------------ blocks


def bench_blocks(device: torch.device, *, batch: int, size: int, frame_counts: list[int], repeats: int) -> None:
    from bench_blocks import candidates

    builders = candidates()
    names = {"pytorchvideo": "pytorchvideo NL softmax", "videoattn": "NonLocal3d softmax auto"}
    print(f"\n[blocks] NonLocal softmax at res3 (C=512, {size}x{size}), batch {batch}, forward + backward, median of {repeats}")
    print(f"  {'frames':<8}{'pytorchvideo s':>15}{'videoattn s':>13}{'ratio':>7}{'ptv MiB':>10}{'ours MiB':>10}{'ratio':>7}")
    for t in frame_counts:
        torch.manual_seed(0)
        x = torch.randn(batch, 512, t, size, size, device=device, requires_grad=True)
        grad = torch.randn_like(x)
        row = {}
        for key, name in names.items():
            block = builders[name][1](512).to(device).train()

            def step(block: nn.Module = block) -> None:
                block(x).backward(grad)
                block.zero_grad(set_to_none=True)
                x.grad = None

            row[key] = timed(step, device, repeats)
        (pt, pm), (ot, om) = row["pytorchvideo"], row["videoattn"]
        print(f"  {t:<8}{pt:>15.4f}{ot:>13.4f}{ot / pt:>7.2f}{pm:>10.0f}{om:>10.0f}{om / pm if pm == pm else math.nan:>7.2f}", flush=True)
        RECORDS.append({"part": "blocks", "size": "res3", "frames": t, "batch": batch, "pytorchvideo_s": _num(pt), "videoattn_s": _num(ot),
                        "pytorchvideo_mib": _num(pm), "videoattn_mib": _num(om), "repeats": repeats})


# -------------------------------------------------------------------------------- data


def make_videos(root: Path, count: int, *, seconds: int, width: int, height: int, workers: int) -> list[str]:
    """Kinetics-like H.264 files (bench_data.kinetics_like_video), written in parallel."""
    import multiprocessing as mp

    jobs = [(root / f"k{i}.mp4", i, seconds, width, height) for i in range(count)]
    with mp.get_context("fork").Pool(max(1, workers)) as pool:
        pool.starmap(_video_job, jobs)
    return [str(path) for path, *_ in jobs]


def _video_job(path: Path, seed: int, seconds: int, width: int, height: int) -> None:
    from bench_data import kinetics_like_video

    if not path.exists():
        kinetics_like_video(path, seed, seconds=seconds, width=width, height=height)


def _clips_per_second(dm, loader, batches: int, device: torch.device) -> float:
    """Clips per second over ``batches`` batches after the first (worker start-up excluded), each
    batch moved to ``device`` and normalised there, as Lightning does (on_after_batch_transfer)."""
    from lightning.pytorch.utilities import move_data_to_device

    it = iter(loader)
    next(it)
    clips, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(it)
        except StopIteration:
            break
        batch = dm.on_after_batch_transfer(move_data_to_device(batch, device), 0)
        clips += len(batch["label"])
    _sync(device)
    return clips / (time.perf_counter() - start)


def bench_data(root: Path, paths: list[str], device: torch.device, *, workers: int, batch: int, batches: int) -> None:
    from bench_data import write_bench_shards

    from videoattn.data import KineticsDataModule

    many = (paths * (batch * (batches + 2) // len(paths) + 1))[: batch * (batches + 2)]
    (root / "train.txt").write_text("".join(f"{p} 0\n" for p in many))
    shards = write_bench_shards(many, root / "shards_train")
    print(f"\n[data] train 8x8 clips/s through KineticsDataModule's loader, {workers} workers, batch {batch}, {len(many)} videos, "
          f"uint8 batches normalised on {device.type}; clips finished in the workers, and on {device.type} (finish_on_device)")
    rates: dict[tuple[str, bool], list[float]] = {}
    for _ in range(2):  # alternated, medians
        for on_device in (False, True):
            for kind, source in (("files", "train.txt"), ("shards", shards)):
                # the data module's defaults (8x8 clips, short side 256-320, crop 224) on both sides
                dm = KineticsDataModule(str(root), train=source, classes=["0"], batch_size=batch, num_workers=workers, persistent_workers=False,
                                        finish_on_device=on_device)
                dm.setup("fit")
                rates.setdefault((kind, on_device), []).append(_clips_per_second(dm, dm.train_dataloader(), batches, device))
    for on_device in (False, True):
        f, s = statistics.median(rates[("files", on_device)]), statistics.median(rates[("shards", on_device)])
        print(f"  finished {'on ' + device.type if on_device else 'in the workers'}: from files {f:8.1f} clips/s; from shards {s:8.1f} clips/s; "
              f"shards/files {s / f:.2f}x")
        RECORDS.append({"part": "data", "workers": workers, "batch": batch, "finished": device.type if on_device else "workers",
                        "files_clips_per_s": round(f, 2), "shards_clips_per_s": round(s, 2)})
    f = statistics.median(rates[("files", False)])
    print(f"  files, finished on {device.type} / in the workers: {statistics.median(rates[('files', True)]) / f:.2f}x")
    from videoattn.data.transforms import finish_clips

    g = torch.Generator().manual_seed(0)
    windows = torch.randint(0, 256, (batch, 8, 224, 224, 3), dtype=torch.uint8, generator=g)
    sides = [(int(s), bool(k % 2)) for k, s in enumerate(torch.randint(180, 225, (batch,), generator=g))]
    on_cpu, there = finish_clips(windows, sides, 224), finish_clips(windows.to(device), sides, 224).cpu()
    print(f"  finish_clips on {device.type} against the CPU (the workers' numbers): max difference {int((there.int() - on_cpu.int()).abs().max())} "
          f"of 255, {float((there != on_cpu).float().mean()):.4f} of the values differ")


# ------------------------------------------------------------------------------ decode


def bench_decode(paths: list[str], device: torch.device, *, clips: int) -> None:
    from videoattn.data.decode import available_backends, probe_video, read_frames
    from videoattn.data.sampling import random_clip

    have_torchcodec = "torchcodec" in available_backends()
    g = torch.Generator().manual_seed(0)
    data = {p: Path(p).read_bytes() for p in paths}
    infos = {p: probe_video(data[p]) for p in paths}
    jobs = [(p, random_clip(infos[p].num_frames, 8, 8, generator=g)) for p in (paths * clips)[:clips]]
    candidates: dict[str, Callable[[bytes, np.ndarray, object], torch.Tensor]] = {
        "pyav cpu": lambda b, i, info: read_frames(b, i, backend="pyav", fallback=False, info=info),
    }
    if have_torchcodec:
        candidates["torchcodec cpu"] = lambda b, i, info: read_frames(b, i, backend="torchcodec", fallback=False, info=info)
        if device.type == "cuda":
            candidates["torchcodec cuda"] = lambda b, i, info: read_frames(b, i, backend="torchcodec", fallback=False, info=info, device=device)
    print(f"\n[decode] 8x8 train clips from memory, one thread, {clips} clips" + ("" if have_torchcodec else ": torchcodec unavailable here (see its ImportError)"))
    reference = {k: read_frames(data[p], i, backend="pyav", fallback=False) for k, (p, i) in enumerate(jobs[:2])}
    rates = {}
    for name, fn in candidates.items():
        try:
            diff = 0
            for k, (p, i) in enumerate(jobs[:2]):  # warm-up, and the frames against PyAV's
                frames = fn(data[p], i, infos[p]).cpu()
                diff = max(diff, (frames.int() - reference[k].int()).abs().max().item())
            start = time.perf_counter()
            for p, i in jobs:
                fn(data[p], i, infos[p])
            _sync(device)
        except Exception as exc:  # noqa: BLE001 - e.g. no NVDEC here: say so, go on
            print(f"  {name:<16} FAILED: {type(exc).__name__}: {str(exc).strip()[:200]}", flush=True)
            continue
        rates[name] = clips / (time.perf_counter() - start)
        print(f"  {name:<16}{rates[name]:8.1f} clips/s   max |frames - PyAV| = {diff}", flush=True)
        RECORDS.append({"part": "decode", "decoder": name, "clips_per_s": round(rates[name], 2), "max_abs_diff_to_pyav": diff, "clips": clips})
    if "torchcodec cuda" in rates:
        print(f"  torchcodec cuda / pyav cpu: {rates['torchcodec cuda'] / rates['pyav cpu']:.2f}x")


# -------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: checks that every part runs")
    parser.add_argument("--parts", nargs="+", default=["models", "blocks", "data", "decode"], choices=["models", "blocks", "data", "decode"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default 10 on a GPU, 1 with --smoke)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default 8, 2 with --smoke)")
    parser.add_argument("--workdir", default=None, help="where to write videos and shards (default: a temp dir)")
    results_file.add_argument(parser, "bench_gpu")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if device.type != "cuda" and not args.smoke:
        parser.error("no CUDA device: run with --smoke for the CPU smoke test")
    smoke = args.smoke
    repeats = args.repeats or (1 if smoke else 10)
    workers = args.workers or (2 if smoke else 8)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke)"
    print(f"bench_gpu on {name}, torch {torch.__version__}{', smoke sizes' if smoke else ''}")
    failed: list[str] = []

    def part(title: str, run: Callable[[], None]) -> None:  # one failing part does not cost the others
        try:
            run()
        except Exception as exc:  # noqa: BLE001
            failed.append(title)
            print(f"\n[{title}] FAILED: {type(exc).__name__}: {exc}", flush=True)

    if "models" in args.parts:
        part("models", lambda: bench_models(device, batch=1 if smoke else 8, frames=4 if smoke else 8, size=32 if smoke else 224,
                                            repeats=repeats, variants=args.variants, smoke=smoke))
    if "blocks" in args.parts:
        part("blocks", lambda: bench_blocks(device, batch=1 if smoke else 8, size=4 if smoke else 28, frame_counts=[2, 4] if smoke else [8, 32],
                                            repeats=repeats))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        paths: list[str] = []
        if {"data", "decode"} & set(args.parts):
            count, seconds = (4, 2) if smoke else (16, 10)
            width, height = (96, 64) if smoke else (340, 256)
            paths = make_videos(root / "videos", count, seconds=seconds, width=width, height=height, workers=workers)
        if "data" in args.parts:
            part("data", lambda: bench_data(root, paths, device, workers=workers, batch=2 if smoke else 8, batches=2 if smoke else 20))
        if "decode" in args.parts:
            part("decode", lambda: bench_decode(paths, device, clips=4 if smoke else 64))
    path = None if smoke and args.results is None else results_file.chosen(args.results, "bench_gpu")  # smoke runs write nothing by default
    if path and RECORDS:
        print(f"results: {results_file.write(path, RECORDS, gpu=name)}")
    if failed:
        print(f"\nfailed parts: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
