"""Decoding backends, picked by name and imported only when used: one module each
(`pyav`, `decord`, `torchcodec`), each holding a reader class with the `base.Reader` interface
and a `check()` that raises ``ImportError`` saying what to install. `videoattn.data.decode`
is the public front (`read_frames`, `decode_frames`, `probe_video`, `check_video`).
"""
from __future__ import annotations

import importlib
from types import ModuleType

import torch

from videoattn.data.backends.base import Reader, VideoInfo

__all__ = ["BACKENDS", "FALLBACK_BACKENDS", "available_backends", "check_backend", "load", "open_reader", "usable"]

BACKENDS = ("pyav", "decord", "torchcodec")
"""Every backend, in the default order."""
FALLBACK_BACKENDS = ("pyav", "decord")
"""Tried after a failing backend when ``fallback=True`` (torchcodec is never imported unless asked for)."""

_READER_CLASSES = {"pyav": "PyAVReader", "decord": "DecordReader", "torchcodec": "TorchCodecReader"}
_INSTALL = {"pyav": "the av package: pip install av", "decord": "the decord2 package: pip install decord2"}
_IMPORTED: dict[str, ModuleType | ImportError] = {}  # a failed import is not retried at every decode


def load(name: str) -> ModuleType:
    """The module of backend ``name``, imported on first use. ``ValueError`` for an unknown name,
    ``ImportError`` saying what to install if it cannot run here."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    module = _IMPORTED.get(name)
    if module is None:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ImportError as exc:  # pyav, decord: the library itself is missing (torchcodec checks in check())
            module = ImportError(f"backend {name!r} needs {_INSTALL.get(name, name)} ({exc})")
        _IMPORTED[name] = module
    if isinstance(module, ImportError):
        raise module
    module.check()
    return module


def check_backend(name: str) -> None:
    """Raise ``ImportError`` saying what to install if backend ``name`` cannot run here
    (``ValueError`` for an unknown name)."""
    load(name)


def usable(name: str) -> bool:
    """Whether backend ``name`` can run here."""
    try:
        load(name)
    except ImportError:
        return False
    return True


def available_backends() -> list[str]:
    """Backends usable here, in the default order (PyAV first; torchcodec needs FFmpeg's libraries)."""
    return [name for name in BACKENDS if usable(name)]


def open_reader(name: str, source: str | bytes, *, threads: int, info: VideoInfo | None, device: torch.device) -> Reader:
    """A reader of backend ``name`` on ``source`` (a path string or the encoded bytes)."""
    reader_class = getattr(load(name), _READER_CLASSES[name])
    return reader_class(source, threads=threads, info=info, device=device)
