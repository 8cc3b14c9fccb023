"""`videoattn export --ckpt_path CKPT --out model.onnx [--frames T] [--size S] [--format onnx|torch]`
(or `videoattn export CKPT ...`): a trained classifier as an ONNX model (``torch.onnx.export(..., dynamo=True)``) or a ``torch.export``
program (``.pt2``, ``torch.export.save``), with a dynamic batch size. SlowFast takes its two
pathways as two inputs, ``slow`` (T / alpha frames) and ``fast`` (T frames).

The clip defaults to what ``videoattn predict`` feeds the checkpoint's model: its data settings
(``num_frames``, ``test_crop_size``, ``slowfast_alpha``), else the recipe of ``--model``.
The command checks its own output: it runs the exported model (onnxruntime, or the loaded
ExportedProgram) on a random clip of another batch size than the one exported with, prints the
largest difference to PyTorch, and fails if that exceeds float32 rounding. The whole input
contract travels in the file as JSON (ONNX ``metadata_props["videoattn"]``, or
``extra/videoattn.json`` in the .pt2 archive): the class names, the clip settings (frames, frame
stride, test short side, crop and views, SlowFast's alpha, mean and std), how the views' scores
are aggregated, and the preprocessing as steps (:func:`input_contract`): enough to reproduce
``videoattn predict``'s scores from the file alone (docs/training.md shows it with onnxruntime).
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

__all__ = ["FORMATS", "TwoPathways", "clip_shapes", "export_model", "input_contract", "run_exported", "main"]

FORMATS = {"onnx": ".onnx", "torch": ".pt2"}
EXPORT_BATCH, CHECK_BATCH = 2, 3  # export with 2 (torch.export specialises sizes 0 and 1), check with 3
SLOWFAST_ALPHA = 4  # the speed ratio our SlowFast builders are made for (videoattn.models.backbones)


class TwoPathways(nn.Module):
    """A SlowFast model taking ``(slow, fast)`` as two tensors (an ONNX graph's inputs are
    tensors, not a list) instead of ``[slow, fast]``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        return self.model([slow, fast])


def clip_shapes(model: nn.Module, info: dict[str, Any], *, frames: int | None = None, size: int | None = None, model_name: str | None = None) -> list[tuple[int, int, int, int]]:
    """The (3, T, S, S) shape of each input of ``model``: explicit values first, then the data
    settings of the checkpoint (``info``), then the recipe of registered model ``model_name``."""
    entry = None
    if model_name is not None:
        from videoattn.models import get_model_entry

        entry = get_model_entry(model_name)
    frames = frames or info.get("num_frames") or (entry.frames[-1] if entry else None)
    size = size or info.get("test_crop_size") or info.get("crop_size") or (entry.crop_size if entry else None)
    if frames is None or size is None:
        missing = " and ".join(f"--{n}" for n, v in (("frames", frames), ("size", size)) if v is None)
        raise ValueError(f"{missing}: the checkpoint holds no data settings; pass {missing} (or --model NAME for its recipe)")
    if getattr(model, "num_pathways", 1) == 1:
        return [(3, frames, size, size)]
    alpha = info.get("slowfast_alpha") or (entry.frames[1] // entry.frames[0] if entry else SLOWFAST_ALPHA)
    if frames % alpha:
        raise ValueError(f"--frames: {frames} frames for the fast pathway is not divisible by the SlowFast alpha {alpha}")
    return [(3, frames // alpha, size, size), (3, frames, size, size)]


PREPROCESSING = [
    "frames: clip.test_views[0] clips of clip.num_frames frames, one every clip.sampling_rate frames (times fps / clip.target_fps "
    "when target_fps is set), index start + round(i * stride); span = round((num_frames - 1) * stride) + 1, slack = max(frames "
    "of the video - span, 0); starts round(linspace(0, slack, clips)), or slack // 2 for one clip; an index past the last frame "
    "is clamped to it (clip.short_video 'clamp') or wraps around ('loop')",
    "decode: RGB, uint8 [T, H, W, 3] in presentation order",
    "resize: the short side to clip.test_short_side, the long side to floor(long * test_short_side / short), uint8 to uint8, "
    "antialiased bilinear (torchvision.transforms.v2.functional.resize(antialias=True))",
    "crop: clip.test_views[1] squares of clip.test_crop_size: 1 = the centre; 3 = the start, centre and end of the long side, "
    "centred on the short side (offsets (long - size) // 2 and (short - size) // 2)",
    "views: temporal-major, view k * crops + s is clip k, crop s",
    "scale and normalise: float32 (x / 255 - clip.mean) / clip.std per RGB channel, laid out [views, 3, T, S, S]",
    "slowfast (clip.slowfast_alpha set): inputs slow = the frames linspace(0, T - 1, T // alpha) (floored) of fast, fast = the clip",
    "run: all the views of a video as one batch; aggregate their logits [views, classes] as 'aggregate' says (the checkpoint's "
    "test_aggregate, as videoattn predict --ckpt_path applies it): 'mean' = mean of the softmax, 'max' = class-wise max of the "
    "softmax, 'mean_logits' = softmax of the mean",
]


def input_contract(info: dict[str, Any], names: Sequence[str], shapes: Sequence[tuple[int, int, int, int]]) -> dict[str, Any]:
    """The JSON metadata of an exported model: its inputs and output, the class names, the clip
    settings as ``videoattn predict`` applies them (the checkpoint's, with the exported frames and
    size), the aggregation of the views' scores and the preprocessing steps (``PREPROCESSING``)."""
    from videoattn.data.clip import ClipSettings

    default = ClipSettings()
    frames, size = shapes[-1][1], shapes[-1][2]

    def get(key: str) -> Any:
        value = info.get(key)
        return getattr(default, key) if value is None and key not in ("target_fps", "slowfast_alpha") else value

    clip = {
        "num_frames": frames,
        "sampling_rate": get("sampling_rate"),
        "target_fps": info.get("target_fps"),
        "short_video": get("short_video"),
        "test_short_side": max(int(get("test_short_side")), size),
        "test_crop_size": size,
        "test_views": list(get("test_views")),
        "slowfast_alpha": shapes[-1][1] // shapes[0][1] if len(shapes) == 2 else None,
        "mean": list(get("mean")),
        "std": list(get("std")),
    }
    return {
        "inputs": {name: ["batch", *shape] for name, shape in zip(names, shapes)},
        "output": "logits",
        "class_names": info.get("class_names"),
        "mean": clip["mean"],
        "std": clip["std"],
        "clip": clip,
        "aggregate": info.get("test_aggregate") or "mean",
        "preprocessing": PREPROCESSING,
    }


def _inputs(shapes: Sequence[tuple[int, ...]], batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, *shape, generator=gen) for shape in shapes)


def export_model(module: nn.Module, example: tuple[torch.Tensor, ...], out: Path, *, fmt: str, names: Sequence[str], metadata: dict[str, Any]) -> None:
    """Write ``module`` (eval mode, one tensor per input) to ``out`` with a dynamic batch size."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic = tuple({0: batch} for _ in example)
    if fmt == "onnx":
        with warnings.catch_warnings():  # SlowFast's two inputs share the batch axis: the exporter says so
            warnings.filterwarnings("ignore", message=r".*axis name: batch will not be used")
            program = torch.onnx.export(
                module, example, dynamo=True, dynamic_shapes=dynamic, input_names=list(names), output_names=["logits"], verbose=False
            )
        program.model.metadata_props["videoattn"] = json.dumps(metadata)
        program.save(str(out))
    else:
        program = torch.export.export(module, example, dynamic_shapes=dynamic)
        torch.export.save(program, str(out), extra_files={"videoattn.json": json.dumps(metadata)})


def run_exported(path: Path, inputs: tuple[torch.Tensor, ...], *, fmt: str) -> torch.Tensor:
    """The logits of the exported model at ``path`` (onnxruntime on the CPU, or the loaded program)."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {arg.name: x.numpy() for arg, x in zip(session.get_inputs(), inputs)}
        return torch.from_numpy(session.run(None, feed)[0])
    with torch.no_grad():
        return torch.export.load(str(path)).module()(*inputs)


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line naming the argument, exit code 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="videoattn export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", metavar="CKPT", nargs="?", help="a videoattn/Lightning checkpoint (or a bare state dict with --model)")
    parser.add_argument("--ckpt_path", help="the checkpoint, as the other subcommands name it (the same as CKPT)")
    parser.add_argument("--out", help="output file (default: CKPT with the suffix .onnx or .pt2)")
    parser.add_argument("--format", default="onnx", choices=list(FORMATS), help="onnx (default) or torch (torch.export, .pt2)")
    parser.add_argument("--frames", type=_positive, help="clip length T (SlowFast: the fast pathway's); default: the checkpoint's")
    parser.add_argument("--size", type=_positive, help="crop size S; default: the checkpoint's test crop")
    parser.add_argument("--model", help="registered model name, for a checkpoint that does not name its model")
    return parser


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.checkpoint and args.ckpt_path and args.checkpoint != args.ckpt_path:
        parser.error(f"two checkpoints given: CKPT {args.checkpoint} and --ckpt_path {args.ckpt_path}")
    args.checkpoint = args.checkpoint or args.ckpt_path
    if not args.checkpoint:
        parser.error("the checkpoint is required: --ckpt_path CKPT (or CKPT)")
    from videoattn.models.from_checkpoint import classifier_from_checkpoint

    try:
        model, info = classifier_from_checkpoint(args.checkpoint, args.model, what="--ckpt_path" if args.ckpt_path else "CKPT")
        shapes = clip_shapes(model, info, frames=args.frames, size=args.size, model_name=args.model)
        if args.format == "onnx":
            import onnxruntime  # noqa: F401  (checked before the export, which takes a while)
            import onnxscript  # noqa: F401
    except ImportError as err:
        parser.exit(2, f"{parser.prog}: error: --format onnx needs {err.name}: pip install 'videoattn[export]'\n")
    except ValueError as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(FORMATS[args.format])
    two = len(shapes) == 2
    module = (TwoPathways(model) if two else model).eval()
    names = ["slow", "fast"] if two else ["video"]
    metadata = input_contract(info, names, shapes)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        export_model(module, _inputs(shapes, EXPORT_BATCH, seed=0), out, fmt=args.format, names=names, metadata=metadata)
    except Exception as err:  # an op the exporter does not support, ...: name it in one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        parser.exit(1, f"{parser.prog}: error: exporting to {args.format} failed: {type(err).__name__}: {first}\n")
    inputs = _inputs(shapes, CHECK_BATCH, seed=1)
    with torch.no_grad():
        expected = module(*inputs)
    got = run_exported(out, inputs, fmt=args.format)
    diff = (got - expected).abs().max().item()
    scale = expected.abs().max().item()
    shape_text = " + ".join(f"{n} [batch, {', '.join(map(str, s))}]" for n, s in zip(names, shapes))
    print(f"wrote {out} ({args.format}): inputs {shape_text} float32, output logits [batch, {expected.shape[1]}]")
    runner = "onnxruntime" if args.format == "onnx" else "the loaded ExportedProgram"
    print(f"check: {runner} against PyTorch on a random clip (batch {CHECK_BATCH}): max |difference| {diff:.2e} (logits up to {scale:.2e})")
    if not diff <= 1e-5 + 1e-4 * scale:
        print(f"{parser.prog}: error: the exported model differs from PyTorch by {diff:.2e}, beyond float32 rounding", file=sys.stderr)
        return 1
    return 0
