"""Drawing for the synthetic action dataset: backgrounds, anti-aliased shapes (signed distance
fields rendered inside each shape's bounding box) and alpha compositing, all in numpy.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SHAPES", "background", "draw_shape", "add_noise", "pick_colour"]

SHAPES = ("disk", "square", "triangle", "ring", "bar")


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random static background, float32 [H, W, 3] in 0..255: a base colour, a linear
    gradient in a random direction and a low-frequency texture."""
    base = rng.uniform(20, 235, size=3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / width + np.sin(angle) * yy / height)[..., None]  # [H, W, 1]
    img = base + ramp * rng.uniform(-25, 25, size=3)
    coarse = rng.normal(0, rng.uniform(0, 6), size=(height // 16 + 2, width // 16 + 2, 3))
    img = img + _upsample(coarse, height, width)
    return np.clip(img, 0, 255).astype(np.float32)


def _upsample(coarse: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of a small [h, w, C] grid to [height, width, C]."""
    h, w = coarse.shape[:2]
    ys = np.linspace(0, h - 1, height)
    xs = np.linspace(0, w - 1, width)
    y0, x0 = np.floor(ys).astype(int).clip(0, h - 2), np.floor(xs).astype(int).clip(0, w - 2)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def pick_colour(rng: np.random.Generator, avoid: np.ndarray, min_distance: float = 90.0) -> np.ndarray:
    """A random RGB colour at least ``min_distance`` (Euclidean, 0..255) from ``avoid``."""
    for _ in range(100):
        colour = rng.uniform(0, 255, size=3)
        if np.linalg.norm(colour - avoid) >= min_distance:
            return colour
    return 255.0 - avoid  # the complement is always far enough


def _signed_distance(shape: str, u: np.ndarray, v: np.ndarray, size: float) -> np.ndarray:
    """Signed distance (pixels, negative inside) of a shape of radius ``size`` centred at the
    origin of the shape-local coordinates (u, v)."""
    if shape == "disk":
        return np.hypot(u, v) - size
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.85 * size
    if shape == "triangle":
        # intersection of three half-planes whose normals point at 90, 210 and 330 degrees
        normals = [(np.cos(a), np.sin(a)) for a in (np.pi / 2, 7 * np.pi / 6, 11 * np.pi / 6)]
        return np.max([u * nx + v * ny for nx, ny in normals], axis=0) - 0.55 * size
    if shape == "ring":
        return np.abs(np.hypot(u, v) - 0.75 * size) - 0.25 * size
    if shape == "bar":
        return np.maximum(np.abs(u) - size, np.abs(v) - 0.22 * size)
    raise ValueError(f"unknown shape {shape!r}; valid: {', '.join(SHAPES)}")


def draw_shape(
    img: np.ndarray,
    shape: str,
    colour: np.ndarray,
    cx: float,
    cy: float,
    size: float,
    *,
    angle: float = 0.0,
    alpha: float = 1.0,
) -> None:
    """Composite one anti-aliased shape onto ``img`` (float32 [H, W, 3], in place)."""
    if alpha <= 0 or size <= 0:
        return
    h, w = img.shape[:2]
    r = int(np.ceil(1.5 * size)) + 2
    x0, x1 = max(0, int(cx) - r), min(w, int(cx) + r + 1)
    y0, y1 = max(0, int(cy) - r), min(h, int(cy) + r + 1)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy  # rotate the frame into shape-local coordinates
    cover = np.clip(0.5 - _signed_distance(shape, u, v, size), 0.0, 1.0)[..., None] * alpha  # [h, w, 1]
    patch = img[y0:y1, x0:x1]
    patch *= 1.0 - cover
    patch += cover * colour


def add_noise(rng: np.random.Generator, img: np.ndarray, sigma: float) -> np.ndarray:
    """Quantise to uint8 after adding per-pixel noise of standard deviation about ``sigma``."""
    if sigma > 0:
        step = max(1, int(round(sigma * 1.7)))  # uniform on [-a, a] has std a / sqrt(3)
        img = img + rng.integers(-step, step + 1, size=img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)
