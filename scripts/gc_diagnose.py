#!/usr/bin/env python
"""What happens inside the Global Context blocks while a model trains: a Lightning callback
(GCDiagnostics) that logs, every few steps, for every GlobalContext3d of the model, the scale of
its add term against the residual branch it is added to, the spread of its transform's
LayerNorm input, the gradient norms of its transform and the training loss; and the runs and
figures made with it.

  # the first 6 epochs of the actions recipe (configs/demo.yaml's schedule, 28 epochs) with GC where
  # GCNet puts it, seeds 0 1 2: one JSON line per 10 steps in runs/gc_diag/<name>_seed<S>.jsonl
  # (the training goes through `videoattn fit`; anything after -- is passed to it)
  python scripts/gc_diagnose.py run --name gcnet --model gcnet-placement --epochs 6
  python scripts/gc_diagnose.py run --name base --model i3d_tiny --epochs 6      # no block
  # the preset (GC after each residual addition) over the whole actions ablation recipe
  python scripts/gc_diagnose.py run --name afteradd --model i3d_tiny_gc --config configs/ablation_actions.yaml --seeds 0 --epochs 16 --every 20
  # the figure of docs/gc_collapse.md: one colour per configuration, one line per seed
  python scripts/gc_diagnose.py plot runs/gc_diag/{gcnet,afteradd,base}_seed*.jsonl --out docs/gc_collapse.png

Logged per GC block (key prefix = the block's module path):
  x_rms       root mean square of the block's input: the residual branch after its last norm (GCNet's
              placement) or after its last conv (the preset's), what the add term is added to
  x_std_thw   std over T*H*W of the input, averaged over clips and channels: the space-time signal
  add_rms     root mean square of the add term channel_add_conv(context), one value per clip and channel
  add_std_n   std over the clips of a batch of the add term, averaged over channels (its clip-dependent part)
  ln_spread   std over the bottleneck channels of the LayerNorm's input, averaged over clips
              (LayerNorm divides by it: a small spread is a large gain from context to add term)
  ln_std_n    std over clips of the LayerNorm's input, averaged over channels (how much the context varies)
  out_dead    fraction of zeros after the residual block's ReLU
  g_mask, g_w1, g_ln, g_w2   gradient norms of conv_mask, the transform's first conv, LayerNorm weight, last conv
  w2          norm of the transform's last conv weight
and for the whole model (any model, with or without GC): loss (training loss of the step),
res2/out_dead .. res5/out_dead (fraction of zeros after the ReLU of each stage's last residual
block; the after16 run of docs/gc_collapse.md logged the stage's output, after its GC), g_stem
(gradient norm of the stem conv), g_head (of the classifier).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn

from videoattn.blocks import GlobalContext3d
from videoattn.models import res_stage_paths
from videoattn.models.resnet import ResBlock

ROOT = Path(__file__).resolve().parent.parent


class GCPlaced(nn.Module):
    """A tiny backbone with GC in every res3-res5 bottleneck, placed as ``position`` says (see
    videoattn.models.insert_blocks): "inside" = where GCNet puts it, after the last norm of the
    residual branch (the configuration that collapses from scratch with AdamW); "after" = after the
    residual block (its addition and ReLU). For ``run --model gcnet-placement|gc-after-block``."""

    def __init__(self, backbone: str = "i3d_tiny", position: str = "inside", num_classes: int = 14, dropout: float = 0.2,
                 fusions: tuple[str, ...] = ("add",)) -> None:
        super().__init__()
        from videoattn.models import create_model
        from videoattn.models.presets import ALL, Placement, apply_placement

        model = create_model(backbone, num_classes=num_classes, dropout=dropout)
        placement = Placement("gc", {3: ALL, 4: ALL, 5: ALL}, position, {"ratio": 1 / 16, "fusions": tuple(fusions)})
        self.net = apply_placement(model, placement)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


PLACED = {"gcnet-placement": {"position": "inside"}, "gc-after-block": {"position": "after"}}


def _key(name: str) -> str:
    """A module path from the backbone's blocks on (blocks.3.res_blocks.0....)."""
    return name[name.index("blocks."):] if "blocks." in name else name


def _norm(t: torch.Tensor | None) -> float:
    return float(t.detach().norm()) if t is not None else float("nan")


class GCDiagnostics(Callback):
    """Log the quantities listed in the module docstring to ``out`` (JSON lines) every ``every`` steps;
    with ``stop_after_epochs``, stop training after that many epochs (the LR schedule still spans
    the recipe's max_epochs)."""

    def __init__(self, out: str, every: int = 10, stop_after_epochs: int | None = None) -> None:
        self.out = Path(out)
        self.every = every
        self.stop_after_epochs = stop_after_epochs
        self._active = False
        self._row: dict[str, Any] = {}
        self._blocks: dict[str, GlobalContext3d] = {}
        self._handles: list[Any] = []

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._blocks = {n: m for n, m in pl_module.named_modules() if isinstance(m, GlobalContext3d)}
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text("")
        modules = dict(pl_module.named_modules())
        for name, block in self._blocks.items():
            key = _key(name)
            self._handles.append(block.register_forward_pre_hook(self._on_input(key)))
            if block.channel_add_conv is not None:
                self._handles.append(block.channel_add_conv.register_forward_hook(self._on_add(key)))
                self._handles.append(block.channel_add_conv[1].register_forward_pre_hook(self._on_ln(key)))
            res_block = name.split(".branch2.")[0]
            if res_block in modules and res_block != name:
                self._handles.append(modules[res_block].register_forward_hook(self._on_res_out(key)))
        for k, path in enumerate(res_stage_paths(pl_module)):  # the last residual block's output: after its ReLU, before a block placed after it
            last = [m for m in pl_module.get_submodule(path).modules() if isinstance(m, ResBlock)][-1]
            self._handles.append(last.register_forward_hook(self._on_res_out(f"res{k + 2}")))
        linears = [m for m in pl_module.modules() if isinstance(m, torch.nn.Linear)]
        convs = [m for m in pl_module.modules() if isinstance(m, torch.nn.Conv3d)]
        self._stem, self._head = convs[0], linears[-1]

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _on_input(self, key: str):
        def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            if self._active:
                x = args[0].detach()
                self._row[f"{key}/x_rms"] = float(x.pow(2).mean().sqrt())
                self._row[f"{key}/x_std_thw"] = float(x.flatten(2).std(dim=2).mean())  # (N, C, THW) -> std over THW

        return hook

    def _on_add(self, key: str):
        def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            if self._active:
                a = out.detach().flatten(1)  # (N, C, 1, 1, 1) -> (N, C)
                self._row[f"{key}/add_rms"] = float(a.pow(2).mean().sqrt())
                self._row[f"{key}/add_std_n"] = float(a.std(dim=0).mean()) if len(a) > 1 else 0.0

        return hook

    def _on_ln(self, key: str):
        def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            if self._active:
                h = args[0].detach().flatten(1)  # (N, P, 1, 1, 1) -> (N, P)
                self._row[f"{key}/ln_spread"] = float(h.std(dim=1).mean())
                self._row[f"{key}/ln_std_n"] = float(h.std(dim=0).mean()) if len(h) > 1 else 0.0

        return hook

    def _on_res_out(self, key: str):
        def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            if self._active:
                self._row[f"{key}/out_dead"] = float((out.detach() <= 0).float().mean())

        return hook

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.stop_after_epochs is not None and trainer.current_epoch + 1 >= self.stop_after_epochs:
            trainer.should_stop = True  # the recipe's schedule (max_epochs) is kept; only its first epochs run

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._active = trainer.global_step % self.every == 0
        self._row = {"step": trainer.global_step, "epoch": trainer.current_epoch} if self._active else {}

    def on_after_backward(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._active:
            return
        for name, block in self._blocks.items():
            key = _key(name)
            if block.pooling == "att":
                self._row[f"{key}/g_mask"] = _norm(block.conv_mask.weight.grad)
            t = block.channel_add_conv
            if t is not None:
                self._row[f"{key}/g_w1"] = _norm(t[0].weight.grad)
                self._row[f"{key}/g_ln"] = _norm(t[1].weight.grad)
                self._row[f"{key}/g_w2"] = _norm(t[3].weight.grad)
                self._row[f"{key}/w2"] = _norm(t[3].weight)
        self._row["g_stem"] = _norm(self._stem.weight.grad)
        self._row["g_head"] = _norm(self._head.weight.grad)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self._active:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self._row["loss"] = float(loss.detach())
        with self.out.open("a") as f:
            f.write(json.dumps(self._row) + "\n")
        self._active = False


def run(args: argparse.Namespace, fit_args: list[str]) -> None:
    out_dir = Path(args.work)
    for seed in args.seeds:
        stem = f"{args.name}_seed{seed}"
        log = out_dir / f"{stem}.jsonl"
        callbacks = out_dir / f"{stem}.callbacks.yaml"
        out_dir.mkdir(parents=True, exist_ok=True)
        callbacks.write_text(
            "trainer:\n  callbacks:\n    - class_path: gc_diagnose.GCDiagnostics\n"
            f"      init_args: {{out: {json.dumps(str(log))}, every: {args.every}, stop_after_epochs: {args.epochs}}}\n"
        )
        if args.model in PLACED:
            num_classes = len((Path(args.data) / "classes.txt").read_text().split())
            init = {"num_classes": num_classes, **PLACED[args.model]}
            model = ["--model.backbone", json.dumps({"class_path": "gc_diagnose.GCPlaced", "init_args": init}), "--model.backbone_kwargs", "{}"]
        else:
            model = ["--model.backbone", args.model]
        cmd = [sys.executable, "-m", "videoattn.cli", "fit", "--config", args.config, "--config", str(callbacks), *model, "--data.init_args.root", args.data, "--seed_everything", str(seed),
               "--trainer.default_root_dir", str(out_dir / stem), "--trainer.enable_progress_bar", "false", *fit_args]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "scripts"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
        print("$ " + " ".join(cmd), flush=True)
        with (out_dir / f"{stem}.log").open("w") as f:
            done = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
        if done.returncode:
            raise SystemExit(f"failed ({done.returncode}); see {out_dir / f'{stem}.log'}")
        print(f"wrote {log}", flush=True)


def _smooth(values: list[float], k: int) -> list[float]:
    out, acc = [], []
    for v in values:
        acc = (acc + [v])[-k:]
        out.append(sum(acc) / len(acc))
    return out


def _res5_gc(row: dict) -> str | None:
    """Key prefix of the GC block in res5's residual branch, if the run has one."""
    return next((k.rsplit("/", 1)[0] for k in row if k.startswith("blocks.5.") and k.endswith("/add_rms")), None)


PANELS = (
    ("training loss", lambda r, b: r["loss"], False),
    ("res5 output: fraction of zeros after ReLU", lambda r, b: r.get("res5/out_dead", r.get(f"{b}/out_dead", float("nan"))), False),
    ("res5 GC: add term rms / rms of what it is added to", lambda r, b: r[f"{b}/add_rms"] / max(r[f"{b}/x_rms"], 1e-12) if b else float("nan"), True),
    ("res5 GC: add term std over clips / its rms", lambda r, b: r[f"{b}/add_std_n"] / max(r[f"{b}/add_rms"], 1e-12) if b else float("nan"), True),
    ("gradient norm reaching the stem conv", lambda r, b: r["g_stem"], True),
)


def plot(args: argparse.Namespace) -> None:
    """One panel per quantity; one colour per configuration (the run name before _seed), one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {Path(p).stem: [json.loads(line) for line in Path(p).read_text().splitlines() if line.strip()] for p in args.logs}
    if not runs or not all(runs.values()):
        raise SystemExit(f"nothing to plot in {args.logs}")
    configs = list(dict.fromkeys(name.rsplit("_seed", 1)[0] for name in runs))
    colours = dict(zip(configs, ("#c53030", "#dd6b20", "#2b6cb0", "#718096", "#38a169")))
    labels = dict(zip(configs, args.labels or configs))
    fig, axes = plt.subplots(1, len(PANELS), figsize=(3.9 * len(PANELS), 3.4))
    for ax, (title, value, log_scale) in zip(axes, PANELS):
        for name, rows in sorted(runs.items()):
            config = name.rsplit("_seed", 1)[0]
            block = _res5_gc(rows[-1])
            steps = [row["step"] for row in rows]
            ax.plot(steps, _smooth([value(row, block) for row in rows], args.smooth), color=colours[config], lw=1.1, alpha=0.85,
                    label=labels[config] if name.endswith("seed0") or len([n for n in runs if n.startswith(config)]) == 1 else None)
        if log_scale:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("training step", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train with the callback (videoattn fit in a subprocess), one run per seed")
    r.add_argument("--name", default="gc", help="run name prefix")
    r.add_argument("--model", default="gcnet-placement",
                   help="a model name, or gcnet-placement / gc-after-block: i3d_tiny with GC after the branches' last norm / after "
                        "each residual block (GCPlaced)")
    r.add_argument("--config", default="configs/demo.yaml")
    r.add_argument("--data", default="runs/actions/synth", help="dataset folder (videoattn synth)")
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    r.add_argument("--epochs", type=int, default=6, help="stop after this many epochs (the schedule keeps the recipe's max_epochs)")
    r.add_argument("--every", type=int, default=10, help="log every N steps")
    r.add_argument("--work", default="runs/gc_diag")
    q = sub.add_parser("plot", help="figures from the JSON lines of runs")
    q.add_argument("logs", nargs="+")
    q.add_argument("--out", default="runs/gc_diag/gc_diagnose.png")
    q.add_argument("--smooth", type=int, default=3, help="moving average over N logged points")
    q.add_argument("--labels", nargs="+", help="legend label per configuration, in the order they first appear")
    argv = sys.argv[1:]
    fit_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, fit_args = argv[:cut], argv[cut + 1:]
    args = p.parse_args(argv)
    if args.command == "run":
        run(args, fit_args)
    else:
        plot(args)


if __name__ == "__main__":
    main()
