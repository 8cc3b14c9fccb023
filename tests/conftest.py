"""Shared test helpers: tiny synthetic mp4 files written by the tests themselves, and
"pretrained-like" models (random norm statistics) for logits comparisons.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from videoattn.video_io import write_video

torch.set_num_threads(2)


def moving_square_frames(num_frames: int, height: int = 64, width: int = 80, seed: int = 0) -> np.ndarray:
    """Frames whose content identifies the frame: a bright square moving one step per frame
    and the frame index written into the top-left 8x8 block (value 8*i mod 256)."""
    rng = np.random.default_rng(seed)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    base = rng.integers(40, 90, size=3, dtype=np.uint8)
    for i in range(num_frames):
        frames[i] = base
        x = (2 * i) % max(1, width - 16)
        frames[i, height // 2 - 8 : height // 2 + 8, x : x + 16] = (230, 60, 60)
        frames[i, :8, :8] = (8 * i) % 256
    return frames


@pytest.fixture
def one_thread():
    """Small tensors and tiny models: one thread is faster, and much faster on a busy machine
    (14x measured on a tiny model's training steps)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_video(name="a.mp4", num_frames=30, fps=30, **write_video_kwargs)``."""

    def _make(name: str = "video.mp4", num_frames: int = 30, height: int = 64, width: int = 80, seed: int = 0, **kwargs) -> Path:
        frames = moving_square_frames(num_frames, height, width, seed)
        return write_video(tmp_path / name, frames, **kwargs)

    return _make


def pretend_pretrained(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random norm statistics and affines, so residual branches (zero-initialised) carry signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._NormBase):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


def logits(model: nn.Module, x) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


@pytest.fixture(autouse=True, scope="session")
def _results_outside_the_repository(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Scripts that tests run write their results files (scripts/results_file.py) to a temporary
    folder, never to the repository's docs/results/."""
    import os

    os.environ["VIDEOATTN_RESULTS_DIR"] = str(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="session")
def docs_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the documentation's commands name (tests/docs_support.py), made once per session
    for tests/test_docs_commands.py and tests/test_tutorials.py."""
    import docs_support

    return docs_support.make_world(tmp_path_factory.mktemp("docs_world"))
