"""`videoattn visualize --ckpt_path CKPT --video PATH --out DIR` (``--checkpoint`` is the same): run a trained model on one clip
and write, for every Non-local block, the attention of a chosen query position over all the
clip's frames, and for every Global Context block its query-independent attention map, as
PNGs: the clip's frames on top, the same frames with the attention as a heat map below.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from videoattn.attention_maps import AttentionMap, AttentionRecorder

__all__ = ["load_classifier", "load_clip", "overlay_heatmap", "render_attention", "main"]

KINETICS_MEAN, KINETICS_STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


def load_classifier(checkpoint: str | Path, model: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The model of a videoattn/Lightning checkpoint in eval mode and the data module's
    hyperparameters (see :func:`videoattn.models.classifier_from_checkpoint`)."""
    from videoattn.models.from_checkpoint import classifier_from_checkpoint

    return classifier_from_checkpoint(checkpoint, model, what="--ckpt_path")


def load_clip(
    video: str | Path, *, num_frames: int, sampling_rate: int, size: int, mean: Sequence[float], std: Sequence[float]
) -> tuple[np.ndarray, torch.Tensor]:
    """The centre clip of ``video``, short side resized to ``size`` and centre-cropped: uint8 frames
    [T, size, size, 3] to display, and the normalised model input [1, 3, T, size, size]."""
    from videoattn.data import decode_frames
    from videoattn.data.sampling import centre_clip
    from videoattn.data.transforms import centre_crop, normalize, short_side_resize, to_tchw

    frames, inverse = decode_frames(str(video), lambda n: centre_clip(n, num_frames, sampling_rate))
    clip = centre_crop(short_side_resize(to_tchw(frames), size), size)[inverse]  # [T, 3, S, S] uint8
    return clip.permute(0, 2, 3, 1).numpy().copy(), normalize(clip, mean, std).unsqueeze(0)


def overlay_heatmap(frames: np.ndarray, heat: np.ndarray, *, alpha: float = 0.6) -> np.ndarray:
    """Blend ``heat`` (float [T, h, w], any resolution) over ``frames`` (uint8 [T, H, W, 3]) with
    the jet colour map, scaled over the whole clip: its minimum blue, its maximum red (a constant
    map is shown in the middle colour, green)."""
    from matplotlib import colormaps

    t, h, w, _ = frames.shape
    heat = torch.as_tensor(heat, dtype=torch.float32)
    heat = F.interpolate(heat.unsqueeze(1), size=(h, w), mode="bilinear", align_corners=False).squeeze(1)  # [T, H, W]
    span = heat.max() - heat.min()
    if span <= 1e-6 * heat.abs().max():  # a constant map (e.g. uniform attention): one mid colour
        heat = torch.full_like(heat, 0.5)
    else:
        heat = (heat - heat.min()) / span
    colours = colormaps["jet"](heat.numpy())[..., :3] * 255  # [T, H, W, 3]
    return (frames * (1 - alpha) + colours * alpha).round().astype(np.uint8)


def _per_frame(weights: torch.Tensor, num_frames: int) -> torch.Tensor:
    """[Tk, h, w] feature-time maps -> [T, h, w] for the T input frames (frame t shows the
    feature time step it falls in)."""
    steps = weights.shape[0]
    return weights[[t * steps // num_frames for t in range(num_frames)]]


def _mark(img: np.ndarray, y: int, x: int, radius: int = 4) -> None:
    """A white cross with a black outline at (y, x) on a uint8 [H, W, 3] image, in place."""
    h, w = img.shape[:2]
    for colour, width in (((0, 0, 0), 1), ((255, 255, 255), 0)):
        for dy in range(-width, width + 1):
            img[np.clip(y + dy, 0, h - 1), max(0, x - radius) : x + radius + 1] = colour
            img[max(0, y - radius) : y + radius + 1, np.clip(x + dy, 0, w - 1)] = colour


def render_attention(frames: np.ndarray, amap: AttentionMap, *, query: Sequence[float] = (0.5, 0.5, 0.5), scale: int = 1) -> np.ndarray:
    """One image, uint8 [2*S + gap, T*(S + gap), 3] for S = frame size * ``scale``: the frames,
    and below them the attention of the first clip in the batch. NL: the weights of the query at
    relative position ``query`` = (t, y, x) in [0, 1] of the block's input grid, marked with a
    cross; GC: the context weights."""
    t = frames.shape[0]
    if amap.kind == "nl":
        tq, hq, wq = amap.query_grid
        q = [min(int(f * n), n - 1) for f, n in zip(query, (tq, hq, wq))]
        heat = _per_frame(amap.weights[0, q[0], q[1], q[2]].abs(), t)  # [T, Hk, Wk]
    else:
        heat = _per_frame(amap.weights[0], t)  # [T, H, W]
    over = overlay_heatmap(frames, heat.numpy())
    if amap.kind == "nl":
        h, w = frames.shape[1:3]
        for i in range(t):
            if i * tq // t == q[0]:  # the frames of the query's time step
                _mark(over[i], int((q[1] + 0.5) * h / hq), int((q[2] + 0.5) * w / wq))
    rows = [np.repeat(np.repeat(r, scale, axis=1), scale, axis=2) for r in (frames, over)]  # [T, S, S, 3]
    gap = 4
    size_h, size_w = rows[0].shape[1:3]
    out = np.full((2 * size_h + gap, t * (size_w + gap) - gap, 3), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        for i in range(t):
            out[r * (size_h + gap) : r * (size_h + gap) + size_h, i * (size_w + gap) : i * (size_w + gap) + size_w] = row[i]
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="videoattn visualize", description="Write PNGs of the NL and GC attention maps of a checkpoint on one video.")
    p.add_argument("--ckpt_path", "--checkpoint", dest="checkpoint", metavar="CKPT", required=True, help="videoattn/Lightning checkpoint (.ckpt)")
    p.add_argument("--video", required=True, help="video file")
    p.add_argument("--out", required=True, help="output folder for the PNGs")
    p.add_argument("--model", help="model name, for checkpoints that do not record it")
    p.add_argument("--query", default="0.5,0.5,0.5", help="NL query position t,y,x as fractions of the clip in [0, 1] (default: the centre)")
    p.add_argument("--num-frames", type=int, help="clip length (default: the checkpoint's data settings, else 8)")
    p.add_argument("--sampling-rate", type=int, help="frame stride (default: the checkpoint's, else 8)")
    p.add_argument("--size", type=int, help="short side and centre crop (default: the checkpoint's crop size, else 224)")
    p.add_argument("--scale", type=int, default=0, help="pixel zoom of the PNGs (default: to at least 128 px per frame)")
    return p


def _parse_query(text: str) -> tuple[float, float, float]:
    parts = re.split(r"[,\s]+", text.strip())
    try:
        values = tuple(float(v) for v in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0 <= v <= 1 for v in values):
        raise ValueError(f"--query must be three fractions t,y,x in [0, 1], got {text!r}")
    return values  # type: ignore[return-value]


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        query = _parse_query(args.query)
        if not Path(args.video).is_file():
            raise ValueError(f"--video: no such file {args.video!r}")
        model, info = load_classifier(args.checkpoint, args.model)
        size = args.size or info.get("crop_size") or 224
        frames, clip = load_clip(
            args.video,
            num_frames=args.num_frames or info.get("num_frames") or 8,
            sampling_rate=args.sampling_rate or info.get("sampling_rate") or 8,
            size=size,
            mean=info.get("mean") or KINETICS_MEAN,
            std=info.get("std") or KINETICS_STD,
        )
        with AttentionRecorder(model) as rec, torch.no_grad():
            probs = model(clip).softmax(-1)[0]
    except ValueError as err:
        print(f"videoattn visualize: error: {err}")
        return 2
    names = info.get("class_names") or [str(i) for i in range(len(probs))]
    top = probs.topk(min(5, len(probs)))
    print("prediction: " + ", ".join(f"{names[i]} {p:.2f}" for p, i in zip(top.values.tolist(), top.indices.tolist())))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scale = args.scale or max(1, -(-128 // size))
    from matplotlib.image import imsave

    for k, (name, amap) in enumerate(rec.maps.items()):
        path = out / f"{k:02d}_{amap.kind}_{name.replace('.', '-')}.png"
        imsave(path, render_attention(frames, amap, query=query, scale=scale))
        what = f"query t,y,x={args.query} on a {amap.query_grid} grid" if amap.kind == "nl" else "context weights"
        print(f"wrote {path} ({amap.kind.upper()} {name}: {what})")
    return 0
