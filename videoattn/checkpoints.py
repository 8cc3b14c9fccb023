"""Reading checkpoint files safely, and what a checkpoint says about the data its model was trained on.

Every path that opens a checkpoint (``weights=``, ``--ckpt_path``, ``visualize``, ``export``,
``VideoClassifier.load_from_checkpoint``) goes through :func:`load_checkpoint`:
``torch.load(weights_only=True)``, so nothing in the file can run code, and one
:class:`CheckpointError` line naming the file instead of torch's traceback when it is refused.
The line says which of three things is wrong: the file is not a checkpoint at all (a text
file, a video...), it is a checkpoint cut short or damaged, or it holds Python objects that
would run code when unpickled.

Building the model a checkpoint holds is on the models side
(:func:`videoattn.models.classifier_from_checkpoint`); this module only reads files.
"""
from __future__ import annotations

import os
import pickle
import pickletools
import re
import warnings
import zipfile
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping

import torch

__all__ = ["CheckpointError", "checkpoint_problem", "data_settings", "load_checkpoint", "unsafe_checkpoint"]

# what a file that is not a checkpoint starts with, for the error message
_SIGNATURES = (
    (4, b"ftyp", "an MP4/QuickTime video"),
    (0, b"\x1aE\xdf\xa3", "a Matroska/WebM video"),
    (0, b"RIFF", "a RIFF file (AVI video or WAV audio)"),
    (0, b"\x89PNG", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"\x93NUMPY", "a NumPy .npy array"),
    (0, b"\x1f\x8b", "a gzip archive"),
    (0, b"\x7fELF", "an executable"),
)


# torch.save before torch 1.6 (``_use_new_zipfile_serialization=False``): a pickle of this magic number first
_LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."


class CheckpointError(ValueError):
    """A checkpoint file is missing, not a checkpoint, damaged, or would run code when unpickled."""


def _first_line(err: Exception) -> str:
    """An exception's first message line (its type's name if it has no message)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def unsafe_checkpoint(what: str, path: str | os.PathLike, err: Exception, hint: str = " Re-save only the state dict.") -> CheckpointError:
    """The one-line error for a checkpoint that ``torch.load(weights_only=True)`` refused
    because unpickling it would import and call something (``err`` names it)."""
    found = re.search(r"GLOBAL\s+([\w.]+)", str(err))
    named = f": {found.group(1)}" if found else f" ({_first_line(err)})"
    return CheckpointError(
        f"{what}: refusing to load {str(path)!r}: it holds Python objects that would run code when "
        f"unpickled (torch.load weights_only=True rejected a global{named}).{hint}"
    )


def _not_a_checkpoint(head: bytes) -> str | None:
    """Why a file starting with ``head`` cannot be a PyTorch checkpoint (None: it may be one).
    torch.save writes a zip archive (``PK\\x03\\x04``), or before torch 1.6 a pickle (``\\x80``
    and the protocol number)."""
    if not head:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04") or (head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5):
        return None
    for offset, magic, kind in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return f"it is {kind}"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"it starts with {head[:8]!r}, not a zip archive or a pickle"
    shown = text.strip().splitlines()[0][:40] if text.strip() else ""
    return f"it is a text file (starting {shown!r})"


def checkpoint_problem(path: str | os.PathLike, err: Exception, what: str = "checkpoint") -> CheckpointError:
    """The one-line :class:`CheckpointError` for ``err``, raised by ``torch.load`` on the file at
    ``path``: not a checkpoint at all, truncated or corrupt, or code that would run."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(64)
    reason = _not_a_checkpoint(head)
    if reason is not None:
        return CheckpointError(f"{what}: {str(path)!r} is not a PyTorch checkpoint: {reason}")
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as zerr:
            return _damaged(what, path, f"a zip archive whose end is missing or unreadable: {_first_line(zerr)}")
        if not any(n.endswith("/data.pkl") for n in names):
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            return CheckpointError(f"{what}: {str(path)!r} is not a PyTorch checkpoint: it is a zip archive without data.pkl ({shown})")
    elif not _pickles_complete(path):
        return _damaged(what, path, "a pickle stream cut short")
    if isinstance(err, pickle.UnpicklingError) and "GLOBAL" in str(err):
        return unsafe_checkpoint(what, path, err)
    if not head.startswith((b"PK\x03\x04", _LEGACY_MAGIC)):
        return CheckpointError(f"{what}: {str(path)!r} is not a PyTorch checkpoint: it is a Python pickle that torch.save did not write")
    return _damaged(what, path, "it ends before its data does" if isinstance(err, EOFError) else _torch_reason(err))


def _torch_reason(err: Exception) -> str:
    """The informative line of torch.load's error (its weights-only refusals open with a long notice)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if lines and lines[0].startswith("Weights only load failed"):
        detail = [line for line in lines[1:] if not line.startswith(("Please file an issue", "Check the documentation"))]
        if detail:
            return detail[0]
    return _first_line(err)


def _pickles_complete(path: Path) -> bool:
    """Whether none of the pickles at the start of the file is cut short (read with pickletools,
    which runs nothing): torch < 1.6 wrote five (magic number, protocol, system info, the object,
    its storage keys) before the raw storage bytes. A stream cut inside a pickle can end in the
    middle of a global's name, which torch then reports as a global it refuses."""
    with open(path, "rb") as f:
        for _ in range(5):
            if not f.peek(1):  # the end of the file, after complete pickles
                return True
            try:
                for _op in pickletools.genops(f):
                    pass
            except Exception:  # noqa: BLE001 - pickletools raises ValueError (or others) on a cut or garbled stream
                return False
    return True


def _damaged(what: str, path: Path, detail: str) -> CheckpointError:
    return CheckpointError(
        f"{what}: {str(path)!r} is a damaged PyTorch checkpoint, truncated or corrupt ({detail}); copy or save it again"
    )


def load_checkpoint(path: str | Path, *, what: str = "checkpoint") -> Mapping[str, Any]:
    """The dict held by checkpoint file ``path``, read with ``torch.load(weights_only=True)``
    on the CPU. ``what`` names the option in error messages (``--ckpt_path``, ``weights``...).

    Raises:
        CheckpointError: one line naming the file: missing, not a checkpoint (a text file, a
            video...), truncated or corrupt, would run code when unpickled, or not a dict.
    """
    import videoattn.data.clip  # noqa: F401  (allowlists ClipSettings, saved by data modules made in Python)

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what}: no such checkpoint file {str(path)!r}")
    try:
        with warnings.catch_warnings():  # torch warns about a pickle protocol it did not write before failing on it
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, KeyError... on bad files
        raise checkpoint_problem(path, err, what) from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{what}: {str(path)!r} holds a {type(obj).__name__}, expected a dict")
    return obj


def data_settings(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The data module's hyperparameters a Lightning checkpoint holds (``datamodule_hyper_parameters``),
    with its clip settings (:class:`~videoattn.data.clip.ClipSettings`, saved as ``clip``) as one
    flat dict: ``num_frames``, ``sampling_rate``, ``test_crop_size``, ``mean``... (older
    checkpoints saved them flat already), plus ``class_path`` when the checkpoint names the
    data module's class. Empty for a checkpoint without data settings."""
    info = dict(checkpoint.get("datamodule_hyper_parameters", {}) or {})
    info.pop("_instantiator", None)
    class_path = info.pop("_class_path", None)
    clip = info.pop("clip", None)
    if isinstance(clip, Mapping):
        info.update(clip)
    elif clip is not None and hasattr(clip, "__dataclass_fields__"):
        info.update({f.name: getattr(clip, f.name) for f in fields(clip)})
    if class_path:
        info["class_path"] = class_path
    return info


def __getattr__(name: str) -> Any:
    if name == "classifier_from_checkpoint":  # its home was here; it builds a model, so it lives in videoattn.models
        from videoattn.models.from_checkpoint import classifier_from_checkpoint

        return classifier_from_checkpoint
    raise AttributeError(f"module 'videoattn.checkpoints' has no attribute {name!r}")
