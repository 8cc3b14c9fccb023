"""Overhead of videoattn's training step (VideoClassifier inside a Lightning Trainer: metrics,
logging, the per-step non-finite check, the per-step LR schedule) against a plain PyTorch
loop doing the same SGD step on the same model and batches. Prints the median time per step
of each and their ratio; absolute times are noise on a shared machine, the ratio is the point.
  python scripts/bench_train_step.py --model i3d_tiny --batch 4 --frames 8 --size 112
  python scripts/bench_train_step.py --model linear --size 8 --steps 200   # the fixed cost per step
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, Trainer
from torch.utils.data import DataLoader

from videoattn.models import create_model
from videoattn.module import VideoClassifier
from videoattn.optim import WarmupCosineLR, build_optimizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # scripts/: the results file helper
import results_file  # noqa: E402


def _batches(n: int, batch: int, frames: int, size: int, classes: int) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    return [
        {
            "video": torch.randn(batch, 3, frames, size, size, generator=g),
            "label": torch.randint(0, classes, (batch,), generator=g),
            "video_index": torch.arange(batch),
            "path": [f"v{i}.mp4" for i in range(batch)],
            "skipped": [],
        }
        for _ in range(n)
    ]


class _Linear(torch.nn.Module):
    """Almost no compute: the step time is then the loop's own overhead."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.head = torch.nn.Linear(3, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean((2, 3, 4)))  # [N, C, T, H, W] -> [N, K]


def plain_loop(model: torch.nn.Module, batches: list[dict[str, Any]]) -> list[float]:
    opt = build_optimizer(model, "sgd", lr=0.01, weight_decay=1e-4)
    sched = WarmupCosineLR(opt, total_steps=len(batches), warmup_steps=1)
    model.train()
    times = []
    for b in batches:
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(b["video"]), b["label"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        times.append(time.perf_counter() - t0)
    return times


class _StepTimer(Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, *args: Any) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, *args: Any) -> None:
        self.times.append(time.perf_counter() - self._t0)


def lightning_loop(model: torch.nn.Module, batches: list[dict[str, Any]], classes: int) -> list[float]:
    module = VideoClassifier(model, num_classes=classes, lr=0.01, warmup_epochs=1)
    timer = _StepTimer()
    trainer = Trainer(
        accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, use_distributed_sampler=False, callbacks=[timer],
    )
    trainer.fit(module, DataLoader(batches, batch_size=None))
    return timer.times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="i3d_tiny")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    results_file.add_argument(p, "bench_train_step")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    classes = 10
    batches = _batches(args.steps, args.batch, args.frames, args.size, classes)
    results: dict[str, list[float]] = {"plain": [], "lightning": []}
    for r in range(args.repeats):
        for name in ("plain", "lightning") if r % 2 == 0 else ("lightning", "plain"):  # alternate order
            torch.manual_seed(0)
            model = _Linear(classes) if args.model == "linear" else create_model(args.model, num_classes=classes)
            times = plain_loop(model, batches) if name == "plain" else lightning_loop(model, batches, classes)
            results[name].append(statistics.median(times[2:]))  # skip 2 warm-up steps
    plain, light = statistics.median(results["plain"]), statistics.median(results["lightning"])
    print(f"{args.model}, batch {args.batch}x3x{args.frames}x{args.size}x{args.size}, {args.steps} steps, "
          f"{args.repeats} repeats, {args.threads} threads")
    print(f"{'loop':<28}{'median ms/step':>16}{'ratio':>8}")
    print(f"{'plain PyTorch SGD step':<28}{plain * 1e3:>16.1f}{1.0:>8.2f}")
    print(f"{'VideoClassifier + Trainer':<28}{light * 1e3:>16.1f}{light / plain:>8.2f}")
    print(f"difference: {(light - plain) * 1e3:.1f} ms per step")
    path = results_file.chosen(args.results, "bench_train_step")
    if path:
        record = {"model": args.model, "batch": args.batch, "input": f"{args.frames}x{args.size}x{args.size}", "steps": args.steps,
                  "repeats": args.repeats, "threads": args.threads, "plain_ms": round(plain * 1e3, 2), "lightning_ms": round(light * 1e3, 2),
                  "ratio": round(light / plain, 4)}
        print(f"results: {results_file.write(path, [record])}")


if __name__ == "__main__":
    main()
