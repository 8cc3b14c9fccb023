"""BlockDynamics: per-epoch measurements of the inserted blocks during training, one JSON line per
epoch, to tell a block that starts slowly from a recipe that holds it back.

For each inserted block (``videoattn.models.insert.Inserted``): the norm of its zero-initialised
output layer (the block's weights that are exactly zero when training starts: NL's and LR's
``norm.weight``, GC's last conv, CGNL's ``gn.weight``, Relation's ``linear_out``, the
Transformer's ``conv_out``; SE has none), that layer's mean gradient norm and AdamW's second-moment
scale (sqrt of ``exp_avg_sq``, the divisor of its step), and how much the block changes its input
(``||block(x) - x|| / ||x||``). For the block parameters as a group against the rest of the
network: the learning rate, the gradient norm, and the effective step the optimizer took
(``||theta_after - theta_before||``, absolute and relative to ``||theta||``). Per-step values are
averaged over the epoch's measured steps: every ``every``-th batch of the epoch, the first one
included (measuring every step costs a few ms: a clone of the parameters and fused norms). Plus
the epoch's train top-1.

    trainer:
      callbacks:
        - class_path: videoattn.callbacks.block_dynamics.BlockDynamics   # -> <default_root_dir>/block_dynamics.jsonl
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from torch import nn

from videoattn.models.insert import Inserted

__all__ = ["BlockDynamics"]


class _Sums:
    """Running sums of named scalars over the steps of an epoch."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}
        self.count: dict[str, int] = {}

    def add(self, key: str, value: float) -> None:
        self.total[key] = self.total.get(key, 0.0) + value
        self.count[key] = self.count.get(key, 0) + 1

    def mean(self, key: str) -> float | None:
        return self.total[key] / self.count[key] if self.count.get(key) else None


def _norm(tensors: list[torch.Tensor]) -> float:
    """The L2 norm of all the tensors together (one fused pass: this runs at every step)."""
    if not tensors:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm([t.detach() for t in tensors]))))


class BlockDynamics(Callback):
    """Writes one JSON line per training epoch (see the module docstring) to ``out`` (default
    ``<trainer.default_root_dir>/block_dynamics.jsonl``, the run folder).

    Args:
        out: the JSON lines file: started afresh by a run from epoch 0, continued by a resumed one.
        every: measure the step of every ``every``-th batch of an epoch (batch 0 included).
    """

    def __init__(self, out: str | None = None, every: int = 10) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.out = out
        self.every = every
        self._measure = False
        self.blocks: dict[str, nn.Module] = {}
        self.zero_init: dict[str, dict[str, nn.Parameter]] = {}
        self.attention: list[nn.Parameter] = []
        self.rest: list[nn.Parameter] = []
        self._before: list[torch.Tensor] | None = None
        self._sums = _Sums()
        self._hooks: list[Any] = []

    # ------------------------------------------------------------------ setup
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.blocks = {path: m.block for path, m in pl_module.named_modules() if isinstance(m, Inserted)}
        in_blocks = {id(p) for b in self.blocks.values() for p in b.parameters()}
        self.attention = [p for p in pl_module.parameters() if p.requires_grad and id(p) in in_blocks]
        self.rest = [p for p in pl_module.parameters() if p.requires_grad and id(p) not in in_blocks]
        self.zero_init = {path: {name: p for name, p in block.named_parameters() if not name.endswith("bias") and not p.detach().any()}
                          for path, block in self.blocks.items()}
        self._hooks = [block.register_forward_hook(self._share_hook(path)) for path, block in self.blocks.items()]
        if self.out is None:
            self.out = str(Path(trainer.default_root_dir) / "block_dynamics.jsonl")
        if trainer.current_epoch == 0 and trainer.is_global_zero:
            Path(self.out).unlink(missing_ok=True)  # a fresh run: not appended to an earlier one's epochs

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def _share_hook(self, path: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if self._measure and module.training and torch.is_grad_enabled():  # measured training steps only
                x = args[0].detach()
                self._sums.add(f"share/{path}", float((output.detach() - x).norm() / x.norm().clamp_min(1e-12)))
        return hook

    # ---------------------------------------------------------------- per step
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._sums = _Sums()

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._measure = batch_idx % self.every == 0

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: torch.optim.Optimizer) -> None:
        if not self._measure:
            return
        for group, params in (("attention", self.attention), ("rest", self.rest)):
            self._sums.add(f"grad/{group}", _norm([p.grad for p in params if p.grad is not None]))
        for path, layers in self.zero_init.items():
            for name, p in layers.items():
                if p.grad is not None:
                    self._sums.add(f"zero_grad/{path}/{name}", _norm([p.grad]))
        self._before = [p.detach().clone() for p in (*self.attention, *self.rest)]

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._before is None:  # no optimizer step in this batch (gradient accumulation)
            return
        params = [*self.attention, *self.rest]
        deltas = torch._foreach_sub([p.detach() for p in params], self._before)
        n = len(self.attention)
        for group, d, p in (("attention", deltas[:n], params[:n]), ("rest", deltas[n:], params[n:])):
            step = _norm(d)
            self._sums.add(f"step/{group}", step)
            self._sums.add(f"relative_step/{group}", step / max(_norm(list(p)), 1e-12))
        self._before = None

    # --------------------------------------------------------------- per epoch
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        record = self._record(trainer, pl_module)
        self._write(record)

    def _record(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        state = optimizer.state if optimizer is not None else {}
        lrs = {id(p): g["lr"] for g in (optimizer.param_groups if optimizer is not None else []) for p in g["params"]}
        top1 = getattr(pl_module, "train_top1", None)
        record: dict[str, Any] = {"epoch": trainer.current_epoch, "step": trainer.global_step,
                                  "train_top1": float(top1.compute()) if top1 is not None and getattr(top1, "_update_count", 0) else None}
        groups = {}
        for group, params in (("attention", self.attention), ("rest", self.rest)):
            groups[group] = {"params": sum(p.numel() for p in params), "norm": _norm(list(params)),
                             "lr": max((lrs.get(id(p), 0.0) for p in params), default=None),
                             "grad_norm": self._sums.mean(f"grad/{group}"), "step": self._sums.mean(f"step/{group}"),
                             "relative_step": self._sums.mean(f"relative_step/{group}")}
        record["groups"] = groups
        blocks = {}
        for path, block in self.blocks.items():
            layers = {}
            for name, p in self.zero_init[path].items():
                v = state.get(p, {}).get("exp_avg_sq")
                layers[name] = {"norm": _norm([p]), "grad_norm": self._sums.mean(f"zero_grad/{path}/{name}"),
                                "adam_sqrt_v": float(v.sqrt().mean()) if v is not None else None}
            blocks[path] = {"type": type(block).__name__, "output_share": self._sums.mean(f"share/{path}"), "zero_init": layers}
        record["blocks"] = blocks
        return record

    @rank_zero_only
    def _write(self, record: dict[str, Any]) -> None:
        path = Path(self.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")
