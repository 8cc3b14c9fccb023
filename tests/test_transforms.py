"""Tests for videoattn.data.transforms: short-side resize (against torchvision's own short-side
resize), crops (PySlowFast's uniform_crop positions), the train clips' scaled crop against
resize-then-crop, flip, normalisation, SlowFast packing
(pytorchvideo's PackPathway index rule), and normalize_video (uint8 clips) equal to normalize.
"""
from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from videoattn.data.transforms import (
    KINETICS_MEAN,
    KINETICS_STD,
    centre_crop,
    horizontal_flip,
    normalize,
    normalize_video,
    pack_pathways,
    random_crop,
    random_scaled_crop,
    short_side_resize,
    spatial_crops,
    to_tchw,
)


def video(t: int = 4, h: int = 48, w: int = 64) -> torch.Tensor:
    return torch.randint(0, 256, (t, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_short_side_resize_matches_torchvision_and_upscales() -> None:
    x = video()
    y = short_side_resize(x, 32)
    assert y.dtype == torch.uint8 and y.shape == (4, 3, 32, 42)
    assert torch.equal(y, TF.resize(x, 32, antialias=True))
    assert short_side_resize(x.transpose(-1, -2), 32).shape == (4, 3, 42, 32)
    assert short_side_resize(x, 96).shape == (4, 3, 96, 128)  # tiny video upscaled
    assert short_side_resize(x, 48) is x


def test_crops() -> None:
    x = torch.arange(6 * 10).view(1, 1, 6, 10)
    assert torch.equal(centre_crop(x, 4), x[..., 1:5, 3:7])
    left, mid, right = spatial_crops(x, 4, 3)  # long side = width: left, centre, right
    assert torch.equal(left, x[..., 1:5, 0:4]) and torch.equal(mid, x[..., 1:5, 3:7]) and torch.equal(right, x[..., 1:5, 6:10])
    top, _, bottom = spatial_crops(x.transpose(-1, -2), 4, 3)  # long side = height
    assert torch.equal(top, x.transpose(-1, -2)[..., 0:4, 1:5]) and torch.equal(bottom, x.transpose(-1, -2)[..., 6:10, 1:5])
    assert [torch.equal(c, centre_crop(x, 4)) for c in spatial_crops(x, 4, 1)] == [True]
    g = torch.Generator().manual_seed(0)
    seen = {tuple(random_crop(x, 4, g)[0, 0, 0, :1].tolist()) for _ in range(200)}
    assert len(seen) == 3 * 7  # every (top, left) position reachable
    with pytest.raises(ValueError, match="larger than the frame"):
        centre_crop(x, 7)
    with pytest.raises(ValueError, match="1 or 3"):
        spatial_crops(x, 4, 2)


def smooth_video(t: int = 2, h: int = 96, w: int = 128) -> torch.Tensor:
    """Slowly varying uint8 frames (sums of long-wave sines): resampling them differently moves
    a pixel by little, so crops of the same place agree closely."""
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    frames = [128 + 60 * torch.sin(x / 9 + c + f) + 50 * torch.cos(y / 7 - c) for f in range(t) for c in range(3)]
    return torch.stack(frames).view(t, 3, h, w).round().clamp(0, 255).to(torch.uint8)


@pytest.mark.parametrize("short_side", [96, 104, 120, 160])
def test_random_scaled_crop_is_resize_then_crop_to_a_sub_pixel(short_side: int) -> None:
    x = smooth_video()
    for seed in range(6):
        ours = random_scaled_crop(x, short_side, 64, generator=torch.Generator().manual_seed(seed))
        ref = random_crop(short_side_resize(x, short_side), 64, generator=torch.Generator().manual_seed(seed))
        assert ours.shape == ref.shape == (2, 3, 64, 64) and ours.dtype == torch.uint8
        # closer to the reference than the reference is to itself moved diagonally by one source
        # pixel (rounded to scaled pixels)
        scaled, k = short_side_resize(x, short_side).float(), max(1, round(short_side / 96))
        one_pixel = (scaled[..., k:, k:] - scaled[..., :-k, :-k]).abs().mean()
        assert (ours.float() - ref.float()).abs().mean() < one_pixel, (short_side, seed)
    if short_side == 96:  # no scaling: exactly the crop
        g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
        assert torch.equal(random_scaled_crop(x, 96, 64, g1), random_crop(x, 64, g2))


def test_random_scaled_crop_reaches_every_corner() -> None:
    x = torch.zeros(1, 3, 60, 80, dtype=torch.uint8)
    x[..., 0, 0], x[..., -1, -1] = 255, 254  # marks in two corners
    g = torch.Generator().manual_seed(0)
    crops = [random_scaled_crop(x, 66, 64, generator=g) for _ in range(400)]  # 1.1x: a window of 58 px
    assert any(c[0, 0, 0, 0] > 0 for c in crops) and any(c[0, 0, -1, -1] > 0 for c in crops)
    with pytest.raises(ValueError, match="crop size 64 is larger than the frame scaled to a short side of 48"):
        random_scaled_crop(x, 48, 64)


def test_flip_and_normalize() -> None:
    x = video(2, 4, 6)
    assert torch.equal(horizontal_flip(x)[..., 0], x[..., -1])
    y = normalize(x, (0.5, 0.4, 0.3), (0.2, 0.25, 0.5))
    assert y.dtype == torch.float32 and y.shape == (3, 2, 4, 6)  # [C, T, H, W]
    expected = (x[1, 2].float() / 255 - 0.3) / 0.5
    assert torch.allclose(y[2, 1], expected)
    assert normalize(torch.stack([x, x])).shape == (2, 3, 2, 4, 6)


def test_to_tchw() -> None:
    frames = torch.zeros(2, 5, 7, 3, dtype=torch.uint8)
    assert to_tchw(frames).shape == (2, 3, 5, 7)
    with pytest.raises(ValueError):
        to_tchw(torch.zeros(2, 3, 5, 7))


def test_pack_pathways_follows_pytorchvideo() -> None:
    clip = torch.arange(32.0).view(1, 32, 1, 1).expand(3, 32, 2, 2)  # [C, T, H, W]
    slow, fast = pack_pathways(clip, 4)
    assert fast is clip and slow.shape == (3, 8, 2, 2)
    # pytorchvideo PackPathway: index_select(frames, 1, linspace(0, T - 1, T // alpha).long())
    assert slow[0, :, 0, 0].tolist() == torch.linspace(0, 31, 8).long().float().tolist()
    views = torch.zeros(6, 3, 32, 2, 2)
    assert [p.shape[2] for p in pack_pathways(views, 8)] == [4, 32]
    with pytest.raises(ValueError, match="too short"):
        pack_pathways(torch.zeros(3, 2, 2, 2), 4)


@pytest.mark.parametrize("mean, std", [(KINETICS_MEAN, KINETICS_STD), ((0.43, 0.45, 0.41), (0.2, 0.225, 0.23))])
def test_normalize_video_gives_the_numbers_of_normalize(mean, std) -> None:
    frames = torch.randint(0, 256, (2, 4, 3, 10, 12), dtype=torch.uint8)  # [B, T, 3, H, W]
    clips = frames.transpose(1, 2).contiguous()  # [B, 3, T, H, W], as the datasets give them
    expected = normalize(frames, mean, std)
    assert torch.equal(normalize_video(clips, mean, std), expected)  # bit for bit: same float32 operations
    slow, fast = normalize_video([clips[:, :, ::2], clips], mean, std)
    assert torch.equal(fast, expected) and torch.equal(slow, expected[:, :, ::2])
    with pytest.raises(ValueError, match="uint8 clips"):
        normalize_video(expected, mean, std)
