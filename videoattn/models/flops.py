"""FLOP and parameter counting with torch's ``FlopCounterMode``, in pytorchvideo's model-zoo
convention (one multiply-add = one FLOP; norms, softmax, pooling and element-wise ops not
counted), and the model card: the cost of each inserted block.

``FlopCounterMode`` counts at dispatch level during a real forward pass, two FLOPs per
multiply-add (halved here). It has no formula for two operations the blocks dispatch to;
:data:`FLOP_FORMULAS` adds them: the CPU flash kernel of ``scaled_dot_product_attention``
(NonLocal3d's SDPA path, TransformerEncoder3d) and the Local Relation op
``videoattn::local_relation`` (forward and backward of both). Another custom operator without
a formula raises a warning naming it.

A block's count is its mathematics, not the path that computes it. Where a block's paths
differ in multiply-adds (NonLocal3d's ``"folded"`` path and its ``theta (phi^T g)`` reordering for
dot_product, :data:`COUNTED_IMPL`), it is counted on the path that computes the published
formula, as pytorchvideo's NonLocal does; every other path of every block dispatches the same
multiply-adds (tested block by block, impl by impl).
"""
from __future__ import annotations

import contextlib
import warnings
from collections import defaultdict
from dataclasses import dataclass
from math import prod
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from videoattn.blocks import local_relation3d  # noqa: F401  (registers videoattn::local_relation)
from videoattn.blocks.nonlocal3d import NonLocal3d
from videoattn.models.insert import Inserted
from videoattn.models.registry import get_model_entry

__all__ = ["BlockCost", "COUNTED_IMPL", "FLOP_FORMULAS", "FlopCount", "ModelCard", "flop_counter", "model_card", "model_inputs"]

aten = torch.ops.aten


# The formulas follow FlopCounterMode's convention (2 FLOPs per multiply-add, tensors given as shapes);
# flop_counter halves every count.
def _sdpa_for_cpu_flop(query: Sequence[int], key: Sequence[int], value: Sequence[int], *args: Any, **kwargs: Any) -> int:
    """The CPU flash kernel of scaled_dot_product_attention: q k^T and (attention) v."""
    return sdpa_flop_count(query, key, value)


def _sdpa_for_cpu_backward_flop(grad_out: Sequence[int], query: Sequence[int], key: Sequence[int], value: Sequence[int],
                                *args: Any, **kwargs: Any) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


def _local_relation_flop(query: Sequence[int], key: Sequence[int], value: Sequence[int], geometry: Sequence[int],
                         *args: Any, **kwargs: Any) -> int:
    """The Local Relation op: per output position, head and neighbour (K of them) the composability
    over the head's D key channels and the aggregation of its Cg value channels, whichever path
    (windowed or dense) computes them. query (N, G, D, To, Ho, Wo), value (N, G, Cg, ...), geometry (G, K)."""
    return 2 * prod(query[:2]) * prod(query[3:]) * geometry[1] * (query[2] + value[2])


def _local_relation_backward_flop(grad: Sequence[int], query: Sequence[int], key: Sequence[int], value: Sequence[int],
                                  *args: Any, **kwargs: Any) -> int:
    """Its backward: the gradients of the weights and values (Cg each) and of queries and keys (D each)."""
    positions, neighbours = prod(query[:2]) * prod(query[3:]), args[0][2]  # weights (N, G, K, To, Ho, Wo)
    return 4 * positions * neighbours * (query[2] + value[2])


FLOP_FORMULAS: dict[Any, Callable[..., int]] = {
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_for_cpu_flop,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_for_cpu_backward_flop,
    torch.ops.videoattn.local_relation: _local_relation_flop,
    torch.ops.videoattn.local_relation_backward: _local_relation_backward_flop,
}
"""Formulas for the operations that torch's counter does not know, added to its own."""

COUNTED_IMPL: dict[type[nn.Module], str] = {NonLocal3d: "matmul"}
"""Blocks whose paths differ in multiply-adds, and the path (``impl``) that computes the
published formula: the one they are counted on, whatever path they are set to run."""


@dataclass(frozen=True)
class FlopCount:
    """Multiply-adds of one forward pass, per module path ("" = the model) and operator."""

    counts: dict[str, dict[str, int]]

    def total(self) -> int:
        """Multiply-adds of the whole forward pass."""
        return sum(self.counts.get("", {}).values())

    def by_operator(self) -> dict[str, int]:
        """Multiply-adds per operator name (``"convolution"``, ``"bmm"``, ``"local_relation"``, ...)."""
        return dict(self.counts.get("", {}))

    def by_module(self) -> dict[str, int]:
        """Multiply-adds per module path, each including its submodules' ("" = the model)."""
        return {path: sum(ops.values()) for path, ops in self.counts.items()}


class _CustomOps(TorchDispatchMode):
    """Records the operators outside aten and prim that run (custom ops), to name those without a formula."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[Any] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        if func.namespace not in ("aten", "prim"):
            self.seen.add(func._overloadpacket)
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _counted_paths(model: nn.Module) -> Iterator[None]:
    """Sets every block of :data:`COUNTED_IMPL` in ``model`` to its counted path, restored on exit."""
    changed = [(m, m.impl) for m in model.modules() if isinstance(m, tuple(COUNTED_IMPL))]
    try:
        for m, _ in changed:
            m.impl = next(impl for cls, impl in COUNTED_IMPL.items() if isinstance(m, cls))
        yield
    finally:
        for m, impl in changed:
            m.impl = impl


def flop_counter(model: nn.Module, inputs: torch.Tensor | Sequence[torch.Tensor]) -> FlopCount:
    """Multiply-adds of ``model(inputs)`` (one forward pass, without gradients), counted by torch's
    ``FlopCounterMode`` with :data:`FLOP_FORMULAS`, each block on its counted path (:data:`COUNTED_IMPL`).
    Warns if a custom operator ran that has no formula (it counts 0). ``model`` and ``inputs`` may
    be on the meta device (shapes only, nothing computed), as :func:`model_card` counts."""
    counter, custom = FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS), _CustomOps()
    with torch.no_grad(), _counted_paths(model), counter, custom:
        model(inputs)
    uncounted = sorted(str(op) for op in custom.seen if op not in counter.flop_registry)
    if uncounted:
        warnings.warn(f"FLOPs undercounted: no formula for the custom ops {', '.join(uncounted)} "
                      "(add one to videoattn.models.flops.FLOP_FORMULAS)", stacklevel=2)
    # FlopCounterMode's module names start with the model's class name: "I3D.blocks.1" -> "blocks.1"
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for module, ops in counter.get_flop_counts().items():
        if module == "Global":
            continue
        path = module.partition(".")[2]
        counts[path] = {str(op).rpartition(".")[2]: flops // 2 for op, flops in ops.items()}
    counts.setdefault("", {})
    return FlopCount(dict(counts))


def model_inputs(name: str, *, batch: int = 1, frames: Sequence[int] | None = None, crop_size: int | None = None) -> torch.Tensor | list[torch.Tensor]:
    """Zero input at the recipe's size of registered model ``name``: ``(N, 3, T, S, S)``,
    or ``[slow, fast]`` for two-pathway models."""
    entry = get_model_entry(name)
    frames = tuple(entry.frames if frames is None else frames)
    size = entry.crop_size if crop_size is None else crop_size
    clips = [torch.zeros(batch, 3, t, size, size) for t in frames]
    return clips[0] if len(clips) == 1 else clips


@dataclass(frozen=True)
class BlockCost:
    """Parameters and multiply-adds (one view) of one inserted block, at its module path."""

    path: str
    block: str
    params: int
    flops: int


@dataclass(frozen=True)
class ModelCard:
    """Parameters and multiply-adds per view of a model at its input, and of each inserted block."""

    name: str
    input_shape: str
    params: int
    flops: int
    blocks: list[BlockCost]


def model_card(name: str, *, num_classes: int = 400, frames: Sequence[int] | None = None, crop_size: int | None = None) -> ModelCard:
    """Parameters and FLOPs (one view at the recipe's input) of model ``name`` and of each inserted block.

    Counted on the meta device: shapes only, nothing computed (a second or less for any model).
    Every path of every block counts the same, so the paths a block takes there (those of a
    non-CPU device) give the CPU's count (tested)."""
    from videoattn.models import create_model  # local: the package imports this module's siblings

    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes).eval()
    inputs = model_inputs(name, frames=frames, crop_size=crop_size)
    shapes = inputs if isinstance(inputs, list) else [inputs]
    count = flop_counter(model, [t.to("meta") for t in shapes] if isinstance(inputs, list) else inputs.to("meta"))
    by_module = count.by_module()
    blocks = [
        BlockCost(path, type(m.block).__name__, sum(p.numel() for p in m.block.parameters()), by_module.get(f"{path}.block", 0))
        for path, m in model.named_modules() if isinstance(m, Inserted)
    ]
    shape = " + ".join("x".join(map(str, t.shape[2:])) for t in shapes)
    return ModelCard(name, shape, sum(p.numel() for p in model.parameters()), count.total(), blocks)
