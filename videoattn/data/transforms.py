"""Clip transforms on tensors (pytorchvideo.transforms does not import with current torchvision):
short-side resize on uint8 frames (antialiased bilinear, ~4x faster than float interpolate, so
it runs before the float conversion), random / centre / three-way crops, a random crop of frames
scaled to a short side that resizes only the window it keeps (the train clips'), horizontal flip,
normalisation to float (``normalize``: frames [..., T, 3, H, W] -> [..., 3, T, H, W];
``normalize_video``: uint8 clips [..., 3, T, H, W] as the datasets give them, on any device, the
same numbers), and SlowFast pathway packing.
"""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = [
    "KINETICS_MEAN",
    "KINETICS_STD",
    "centre_crop",
    "finish_clips",
    "horizontal_flip",
    "normalize",
    "normalize_video",
    "pack_pathways",
    "random_crop",
    "random_scaled_crop",
    "resize_square",
    "scaled_crop_window",
    "short_side_resize",
    "spatial_crops",
    "to_tchw",
]

KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)


def to_tchw(frames: torch.Tensor) -> torch.Tensor:
    """Decoded frames uint8 [T, H, W, 3] -> [T, 3, H, W] (a view)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3], got {tuple(frames.shape)}")
    return frames.permute(0, 3, 1, 2)


def short_side_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize [..., H, W] so that min(H, W) == size, keeping the aspect ratio (antialiased
    bilinear; uint8 in, uint8 out). Small videos are upscaled."""
    if min(x.shape[-2:]) == size:
        return x
    # Long side floor(long * size / short), as PySlowFast. Decoded frames permuted to [T, 3, H, W]
    # are channels-last in memory, which the uint8 antialiased kernel resizes ~2x faster than
    # channels-first: do not make them contiguous.
    from torchvision.transforms.v2 import functional as TF  # here: importing torchvision costs ~1 s (torch._dynamo)

    return TF.resize(x, size, antialias=True)


def _check_crop(x: torch.Tensor, size: int) -> None:
    h, w = x.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"crop size {size} is larger than the frame {h}x{w}: the short side must be >= the crop size")


def random_crop(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random ``size`` x ``size`` window of [..., H, W]."""
    _check_crop(x, size)
    h, w = x.shape[-2:]
    top = int(torch.randint(h - size + 1, (1,), generator=generator))
    left = int(torch.randint(w - size + 1, (1,), generator=generator))
    return x[..., top : top + size, left : left + size]


def scaled_crop_window(height: int, width: int, short_side: int, size: int, generator: torch.Generator | None = None) -> tuple[int, int, int]:
    """The square window ``(top, left, side)`` of a ``height`` x ``width`` frame that, resized to
    ``size``, is :func:`random_scaled_crop`'s crop (drawn the same way: one top and one left from
    ``generator``); ``side == size`` when the frame needs no scaling."""
    if short_side < size:
        raise ValueError(f"crop size {size} is larger than the frame scaled to a short side of {short_side}")
    h, w = height, width
    short = min(h, w)
    # the scaled frame's size, as short_side_resize (torchvision: long side floored)
    sh, sw = (short_side, int(short_side * w / h)) if h <= w else (int(short_side * h / w), short_side)
    top = int(torch.randint(sh - size + 1, (1,), generator=generator))
    left = int(torch.randint(sw - size + 1, (1,), generator=generator))
    if short == short_side:
        return top, left, size
    scale = short / short_side  # source pixels per scaled pixel
    side = min(max(1, round(size * scale)), h, w)
    return min(round(top * scale), h - side), min(round(left * scale), w - side), side


def random_scaled_crop(x: torch.Tensor, short_side: int, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """What ``random_crop(short_side_resize(x, short_side), size)`` gives, a random ``size`` x
    ``size`` window of the frames scaled to a ``short_side`` short side, drawn the same way (one
    top and one left from the same generator), but computed by cutting the matching window out of
    the unscaled frames (:func:`scaled_crop_window`) and resizing only it (antialiased bilinear,
    uint8): the resize makes size^2 pixels instead of the whole scaled frame's (1.7-2.7x fewer for
    224 crops of frames scaled to 256-320). The window's side and corner are rounded to whole
    source pixels, so the result differs from resize-then-crop by a sub-pixel shift (at most half
    a source pixel) and a scale off by at most half a pixel over the window."""
    top, left, side = scaled_crop_window(x.shape[-2], x.shape[-1], short_side, size, generator)
    return resize_square(x[..., top : top + side, left : left + side], size)


def resize_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """[..., s, s] -> [..., size, size] (antialiased bilinear; uint8 in, uint8 out, on any
    device); ``x`` itself when ``s == size``."""
    from torchvision.transforms.v2 import functional as TF

    return x if tuple(x.shape[-2:]) == (size, size) else TF.resize(x, [size, size], antialias=True)


def finish_clips(windows: torch.Tensor, sides: Sequence[tuple[int, bool]], size: int) -> torch.Tensor:
    """Train clips shipped unfinished -> uint8 [N, 3, T, size, size], on their device.

    ``windows`` uint8 [N, T, size, size, 3]: clip i's crop window in the top-left ``s`` x ``s``
    corner (``sides[i] = (s, flip)``), as decoded (channels last). Each window is resized to
    ``size`` (:func:`resize_square`, the worker's resize: the same numbers on the CPU), flipped
    when ``flip`` and laid out [3, T, size, size]: the clips the worker makes when it finishes
    them itself."""
    if windows.dtype != torch.uint8 or windows.ndim != 5 or windows.shape[-1] != 3 or windows.shape[0] != len(sides):
        raise ValueError(f"expected uint8 windows [N, T, H, W, 3] with N = {len(sides)} sides, got {windows.dtype} {tuple(windows.shape)}")
    n, t = windows.shape[:2]
    out = torch.empty((n, 3, t, size, size), dtype=torch.uint8, device=windows.device)
    for i, (side, flip) in enumerate(sides):
        clip = resize_square(windows[i, :, :side, :side].permute(0, 3, 1, 2), size)  # [T, 3, size, size]
        out[i].copy_((horizontal_flip(clip) if flip else clip).transpose(0, 1))
    return out


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    _check_crop(x, size)
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


def spatial_crops(x: torch.Tensor, size: int, num_crops: int) -> list[torch.Tensor]:
    """1 crop: the centre. 3 crops: start, centre and end of the long side (PySlowFast's
    uniform_crop, spatial_idx 0, 1, 2), centred on the short side."""
    if num_crops == 1:
        return [centre_crop(x, size)]
    if num_crops != 3:
        raise ValueError(f"the number of spatial crops must be 1 or 3, got {num_crops}")
    _check_crop(x, size)
    h, w = x.shape[-2:]
    crops = []
    for k in range(3):
        if w >= h:
            top, left = (h - size) // 2, [0, (w - size) // 2, w - size][k]
        else:
            top, left = [0, (h - size) // 2, h - size][k], (w - size) // 2
        crops.append(x[..., top : top + size, left : left + size])
    return crops


def horizontal_flip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def normalize(
    x: torch.Tensor,
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """uint8 [..., T, 3, H, W] -> float32 [..., 3, T, H, W], (x / 255 - mean) / std.
    ``out``: optional float32 storage to write into (at least as many elements as ``x``)."""
    if x.ndim < 4 or x.shape[-3] != 3:
        raise ValueError(f"expected [..., T, 3, H, W], got {tuple(x.shape)}")
    scale = torch.tensor([1.0 / (255.0 * s) for s in std], dtype=torch.float32).view(3, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(mean, std)], dtype=torch.float32).view(3, 1, 1)
    shape = (*x.shape[:-4], 3, x.shape[-4], *x.shape[-2:])
    y = torch.empty(shape, dtype=torch.float32) if out is None else out.view(-1)[: x.numel()].view(shape)
    y = y.transpose(-4, -3)  # [..., T, 3, H, W] view of the output
    y.copy_(x).mul_(scale).sub_(shift)  # in place: (x / 255 - mean) / std
    return y.transpose(-4, -3)  # [..., 3, T, H, W], contiguous


def normalize_video(
    video: torch.Tensor | list[torch.Tensor],
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
) -> torch.Tensor | list[torch.Tensor]:
    """uint8 clips [..., 3, T, H, W] (or SlowFast's ``[slow, fast]`` of them) -> float32
    ``(x / 255 - mean) / std`` on the clips' device: the numbers :func:`normalize` gives, with
    the same operations in the same order. The datasets yield uint8 clips (4x less to move between
    processes and to the device than float32); ``KineticsDataModule.on_after_batch_transfer``
    calls this once the batch is on the device."""
    if isinstance(video, (list, tuple)):
        return [normalize_video(v, mean, std) for v in video]
    if video.dtype != torch.uint8 or video.ndim < 4 or video.shape[-4] != 3:
        raise ValueError(f"expected uint8 clips [..., 3, T, H, W], got {video.dtype} {tuple(video.shape)}")
    # Python scalars, not tensors: a tensor made here would be copied to the device and wait
    # for it; float32 arithmetic with them gives the numbers of normalize's float32 tensors
    scale = [1.0 / (255.0 * s) for s in std]
    shift = [m / s for m, s in zip(mean, std)]
    out = video.to(torch.float32)
    if len(set(scale)) == 1 and len(set(shift)) == 1:
        return out.mul_(scale[0]).sub_(shift[0])
    for c in range(3):
        out.select(-4, c).mul_(scale[c]).sub_(shift[c])
    return out


def pack_pathways(video: torch.Tensor, alpha: int) -> list[torch.Tensor]:
    """SlowFast input ``[slow, fast]`` from [..., C, T, H, W]: fast is the clip, slow takes
    T // alpha frames evenly spaced (pytorchvideo's PackPathway)."""
    if alpha < 1:
        raise ValueError(f"slowfast_alpha must be >= 1, got {alpha}")
    t = video.shape[-3]
    if t < alpha:
        raise ValueError(f"a clip of {t} frames is too short for slowfast_alpha={alpha}")
    index = torch.linspace(0, t - 1, t // alpha).long()
    slow = torch.index_select(video, -3, index)
    return [slow, video]
