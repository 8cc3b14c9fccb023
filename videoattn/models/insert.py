"""Insertion of blocks into any nn.Module at module paths or glob patterns: "after" a
module (e.g. after a residual block, as NL is placed) or "inside" a residual block
(after the last norm of its residual branch, before the addition: the GC and
SE-ResNet placement). The channel count of each block is read from the model.
"""
from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from videoattn.blocks import make_block

__all__ = ["Inserted", "insert_blocks", "match_paths", "out_channels"]

POSITIONS = ("after", "inside")
# Children that hold a residual block's shortcut (torchvision, pytorchvideo, timm names).
SHORTCUT_NAMES = ("downsample", "shortcut", "branch1_conv", "branch1_norm", "skip")
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


class Inserted(nn.Module):
    """``block(module(x))``: a module followed by an inserted block.

    The wrapped module keeps its parameters under ``<path>.module.*``; checkpoints saved
    without the wrapper still load (videoattn.models.load_weights maps the keys).
    """

    def __init__(self, module: nn.Module, block: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.module(x))


def _segments_match(path: str, pattern: str) -> bool:
    """Glob match where ``*`` stays inside one path segment (``a.*`` matches ``a.1``, not ``a.1.b``)."""
    parts, pats = path.split("."), pattern.split(".")
    return len(parts) == len(pats) and all(fnmatchcase(a, p) for a, p in zip(parts, pats))


def match_paths(model: nn.Module, where: str | Sequence[str]) -> list[str]:
    """Module paths of ``model`` matched by ``where`` (paths or globs), in model order, no repeats.

    A pattern that matches nothing raises ValueError listing the available paths.
    """
    patterns = [where] if isinstance(where, str) else list(where)
    if not patterns:
        raise ValueError("where: give at least one module path or glob pattern")
    names = [name for name, _ in model.named_modules() if name]
    matched: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if _segments_match(n, pattern)]
        if not hits:
            depth = pattern.count(".") + 1
            near = [n for n in names if n.count(".") + 1 == depth] or names
            raise ValueError(
                f"where: pattern {pattern!r} matches no module of {type(model).__name__}; "
                f"available paths at that depth: {', '.join(near)}"
            )
        matched += [h for h in hits if h not in matched]
    order = {n: i for i, n in enumerate(names)}
    return sorted(matched, key=order.__getitem__)


def out_channels(module: nn.Module) -> int:
    """Channels of ``module``'s output: those of its last conv or norm layer (in registration order)."""
    found = None
    for m in module.modules():
        if isinstance(m, Inserted):
            continue
        channels = getattr(m, "out_channels", None) or getattr(m, "num_features", None) or getattr(m, "num_channels", None)
        if isinstance(m, (nn.modules.conv._ConvNd, _NORMS)) and channels:
            found = channels
    if found is None:
        raise ValueError(f"cannot infer the channels of {type(module).__name__}: it has no conv or norm layer; pass in_channels=")
    return int(found)


def _residual_branch_end(block: nn.Module, path: str) -> str:
    """Path (relative to ``block``) of the last norm layer of its residual branch, as the host
    model defines it: blocks inserted before (the ``block`` of an :class:`Inserted`) are not
    residual branches of the host and are skipped. A norm already followed by inserted blocks is
    given as its outermost wrapper, so that a new block comes after them."""
    inserted = [f"{name}.block" if name else "block" for name, m in block.named_modules() if isinstance(m, Inserted)]
    candidates = [
        name for name, m in block.named_modules()
        if name and isinstance(m, _NORMS)
        and not any(seg in SHORTCUT_NAMES for seg in name.split("."))
        and not any(name == p or name.startswith(p + ".") for p in inserted)
    ]
    if not candidates:
        raise ValueError(
            f"position='inside': {path!r} ({type(block).__name__}) has no norm layer in a residual branch; "
            "use position='after' or point at the module directly"
        )
    end = candidates[-1]
    while end.endswith(".module") and isinstance(block.get_submodule(end[: -len(".module")]), Inserted):
        end = end[: -len(".module")]  # norm -> the Inserted wrapping it (-> the one wrapping that ...)
    return end


def insert_blocks(
    model: nn.Module,
    block: str | Callable[..., nn.Module],
    where: str | Sequence[str],
    *,
    position: str = "after",
    **block_kwargs: Any,
) -> tuple[nn.Module, list[str]]:
    """Insert one block at every module matched by ``where``, in place.

    Args:
        model: any module; modified in place and returned.
        block: a block name for ``videoattn.blocks.make_block`` ("nl", "gc", "se", "cgnl"), or a
            callable ``block(in_channels, **block_kwargs) -> nn.Module`` such as a block class.
        where: module paths or glob patterns, ``*`` matching within one path segment
            (``"blocks.3.res_blocks.*"``, ``"layer3.1"``).
        position: ``"after"`` the matched module, or ``"inside"`` a matched residual block, after
            the last norm layer of its residual branch (skipping children named as shortcuts:
            ``downsample``, ``shortcut``, ``branch1_*``, and blocks inserted before), i.e. before
            the addition; after the blocks already inserted there, if any.
        block_kwargs: passed to the block; ``in_channels`` is inferred unless given.

    Returns:
        ``(model, paths)``: the paths of the modules now followed by a block.
    """
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
    if isinstance(block, str):
        name = block
        build: Callable[..., nn.Module] = lambda channels, **kw: make_block(name, channels, **kw)  # noqa: E731
    elif callable(block):
        build = block
    else:
        raise ValueError(f"block must be a block name or a callable, got {type(block).__name__}")
    channels = block_kwargs.pop("in_channels", None)

    touched = []
    for path in match_paths(model, where):
        target = model.get_submodule(path)
        if position == "inside":
            path = f"{path}.{_residual_branch_end(target, path)}"
            target = model.get_submodule(path)
        new = build(channels if channels is not None else out_channels(target), **block_kwargs)
        parent_path, _, child = path.rpartition(".")
        model.get_submodule(parent_path).register_module(child, Inserted(target, new))
        touched.append(path)
    return model, touched
