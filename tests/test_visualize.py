"""Tests of `videoattn visualize`: heat-map rendering puts the hot colours where the attention is,
and the tool renders NL and GC maps of a checkpoint on a video into PNGs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from videoattn.attention_maps import AttentionMap
from videoattn.models import create_model
from videoattn.tools.visualize import main as visualize_main
from videoattn.tools.visualize import overlay_heatmap, render_attention


def _is_red(rgb: np.ndarray) -> np.ndarray:
    """The hot end of the jet colour map blended over the frame."""
    return rgb[..., 0].astype(int) - rgb[..., 2] > 40


def _is_blue(rgb: np.ndarray) -> np.ndarray:
    """The cold end."""
    return rgb[..., 2].astype(int) - rgb[..., 0] > 40


def test_nl_render_puts_red_on_the_attended_position_and_marks_the_query() -> None:
    frames = np.full((4, 32, 32, 3), 128, dtype=np.uint8)
    weights = torch.zeros(1, 2, 4, 4, 2, 4, 4)  # [N, query T,H,W, key T,H,W]
    weights[0, 1, 2, 3, 1, 0, 0] = 1.0  # query (1, 2, 3) attends to key (t=1, top-left cell)
    img = render_attention(frames, AttentionMap("b", "nl", weights), query=(0.6, 0.6, 0.9))
    assert img.shape == (2 * 32 + 4, 4 * 32 + 3 * 4, 3)
    top, bottom = img[:32], img[36:]
    assert all((top[:, i * 36 : i * 36 + 32] == 128).all() for i in range(4))  # the clip, unchanged
    tiles = [bottom[:, i * 36 : i * 36 + 32] for i in range(4)]
    for i in (2, 3):  # frames 2, 3 fall in key time step 1: hot top-left, cold bottom-right
        assert _is_red(tiles[i][:6, :6]).mean() > 0.5
        assert _is_blue(tiles[i][-8:, :8]).all()
    for i in (0, 1):  # key time step 0 gets no attention
        assert _is_blue(tiles[i]).all()
    cross = (tiles[2] == 255).all(-1)  # the query cross (white) on the frames of its time step
    assert cross.sum() >= 8 and not (tiles[0] == 255).all(-1).any()
    ys, xs = np.nonzero(cross)
    assert abs(ys.mean() - 2.5 * 8) <= 1 and abs(xs.mean() - 3.5 * 8) <= 1


def test_constant_map_is_shown_uniform() -> None:
    frames = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    out = overlay_heatmap(frames, np.full((2, 2, 2), 0.25, dtype=np.float32))
    assert (out == out[0, 0, 0]).all() and not _is_red(out).any() and not _is_blue(out).any()


def test_gc_overlay_follows_the_map() -> None:
    frames = np.zeros((2, 16, 16, 3), dtype=np.uint8)
    heat = np.zeros((2, 4, 4), dtype=np.float32)
    heat[1, 3, 3] = 1.0
    out = overlay_heatmap(frames, heat)
    assert _is_red(out[1, -2:, -2:]).all() and not _is_red(out[0]).any()
    img = render_attention(frames, AttentionMap("gc", "gc", torch.from_numpy(heat)[None]), scale=2)
    assert img.shape == (2 * 32 + 4, 2 * 32 + 4, 3)


def _checkpoint(path: Path, name: str) -> Path:
    """A Lightning-style checkpoint of a tiny model whose attention blocks are trained away from
    the identity (random weights), as VideoClassifier saves it."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=3)
    for m in model.modules():
        if type(m).__name__ in ("NonLocal3d", "GlobalContext3d"):
            for p in m.parameters():
                torch.nn.init.normal_(p, std=0.2)
        elif isinstance(m, torch.nn.BatchNorm3d):  # zero-initialised residual norms: a constant input to GC
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
    torch.save(
        {
            "state_dict": {f"backbone.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": {"backbone": name, "num_classes": 3, "class_names": ["a", "b", "c"]},
            "datamodule_hyper_parameters": {"num_frames": 4, "sampling_rate": 2, "crop_size": 32},
        },
        path,
    )
    return path


@pytest.mark.parametrize("name, kinds", [("i3d_tiny_nl", ["nl", "nl"]), ("i3d_tiny_gc", ["gc"] * 3)])
def test_cli_writes_pngs(tmp_path: Path, make_video: Callable[..., Path], capsys: pytest.CaptureFixture[str], name: str, kinds: list[str]) -> None:
    video = make_video("clip.mp4", num_frames=16)
    ckpt = _checkpoint(tmp_path / "m.ckpt", name)
    out = tmp_path / "maps"
    assert visualize_main(["--checkpoint", str(ckpt), "--video", str(video), "--out", str(out), "--query", "0.5,0.2,0.8"]) == 0
    printed = capsys.readouterr().out
    assert "prediction: " in printed and printed.count("wrote ") == len(kinds)
    pngs = sorted(out.glob("*.png"))
    assert [p.name.split("_")[1] for p in pngs] == kinds
    img = (imread(pngs[0])[..., :3] * 255).round().astype(np.uint8)
    assert img.shape == (2 * 128 + 4, 4 * 128 + 3 * 4, 3)  # 4 frames of 32 px, zoomed 4x
    frames_row, heat_row = img[:128].astype(int), img[132:].astype(int)
    assert frames_row.std() > 10  # the clip, not a blank image
    assert _is_red(heat_row).any() and _is_blue(heat_row).any()  # a heat map, hot and cold parts
    assert np.abs(frames_row - heat_row).mean() > 20


def test_cli_bad_arguments(tmp_path: Path, make_video: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    video = make_video("clip.mp4", num_frames=8)
    assert visualize_main(["--checkpoint", str(tmp_path / "none.ckpt"), "--video", str(video), "--out", str(tmp_path)]) == 2
    assert "--ckpt_path: no such checkpoint file" in capsys.readouterr().out
    ckpt = _checkpoint(tmp_path / "m.ckpt", "i3d_tiny_nl")
    assert visualize_main(["--checkpoint", str(ckpt), "--video", str(video), "--out", str(tmp_path), "--query", "2,0,0"]) == 2
    assert "--query must be three fractions" in capsys.readouterr().out
    plain = _checkpoint(tmp_path / "plain.ckpt", "i3d_tiny")
    assert visualize_main(["--checkpoint", str(plain), "--video", str(video), "--out", str(tmp_path)]) == 2
    assert "no NonLocal3d or GlobalContext3d" in capsys.readouterr().out
