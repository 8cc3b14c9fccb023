"""Tests for videoattn.models.weights: checkpoint formats, safe unpickling, head
re-initialisation, strict key checks, and 2D -> 3D inflation by its defining property.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch
import torchvision
from conftest import logits, pretend_pretrained
from torch import nn

from videoattn.models import create_model, inflate_weight, load_weights, read_checkpoint


@pytest.fixture(scope="module")
def tiny() -> nn.Module:
    return pretend_pretrained(create_model("i3d_tiny", num_classes=400), seed=3)


X = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))


class _RunsCode:
    """Unpickling this calls os.system: a stand-in for a malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_running_pickle_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker, path = tmp_path / "ran", tmp_path / "evil.pt"
    torch.save({"model_state": {"w": torch.zeros(1)}, "payload": _RunsCode(marker)}, path)
    with pytest.raises(ValueError, match="refusing to load .*evil.pt.*run code"):
        create_model("i3d_tiny", weights=path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is real: unrestricted unpickling runs it
    assert marker.exists()


def test_missing_and_non_checkpoint_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        read_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="text.pt"):
        read_checkpoint(tmp_path / "text.pt")
    torch.save({"epoch": 3}, tmp_path / "empty.pt")
    with pytest.raises(ValueError, match="no tensors; top-level keys: epoch"):
        read_checkpoint(tmp_path / "empty.pt")


@pytest.mark.parametrize("layout", ["hub", "bare", "lightning", "ddp"])
def test_checkpoint_layouts_give_the_same_logits(layout: str, tiny: nn.Module, tmp_path: Path) -> None:
    state = tiny.state_dict()
    payload = {
        "hub": {"model_state": state},
        "bare": state,
        # Lightning: the module holds the model as `backbone`; other entries are ignored.
        "lightning": {"state_dict": {**{f"backbone.{k}": v for k, v in state.items()}, "criterion.weight": torch.ones(3)},
                      "epoch": 2, "global_step": 10},
        "ddp": {f"module.{k}": v for k, v in state.items()},
    }[layout]
    torch.save(payload, tmp_path / "ckpt.pt")
    model = create_model("i3d_tiny", weights=tmp_path / "ckpt.pt")
    torch.testing.assert_close(logits(model, X), logits(tiny, X))
    assert read_checkpoint(tmp_path / "ckpt.pt")[1] == {"hub": "pytorchvideo", "bare": "bare", "lightning": "videoattn", "ddp": "bare"}[layout]


def test_other_class_count_reinitialises_the_head_and_says_so(tiny: nn.Module, tmp_path: Path, caplog) -> None:
    torch.save({"model_state": tiny.state_dict()}, tmp_path / "k400.pyth")
    model = create_model("i3d_tiny", num_classes=10)
    head_before = model.blocks[-1].proj.weight.clone()
    with caplog.at_level(logging.WARNING, logger="videoattn.models.weights"):
        report = load_weights(model, tmp_path / "k400.pyth")
    assert report.head_reinitialised == ["blocks.6.proj.bias", "blocks.6.proj.weight"]
    assert "re-initialised" in caplog.text
    assert torch.equal(model.blocks[-1].proj.weight, head_before)
    torch.testing.assert_close(model.blocks[0].conv.weight, tiny.blocks[0].conv.weight)
    torch.testing.assert_close(model.blocks[5].res_blocks[0].branch2.norm_c.running_var,
                               tiny.blocks[5].res_blocks[0].branch2.norm_c.running_var)


def test_missing_unexpected_and_misshaped_keys_are_named(tiny: nn.Module) -> None:
    state = tiny.state_dict()
    model = create_model("i3d_tiny")
    missing = {k: v for k, v in state.items() if k != "blocks.3.res_blocks.0.branch2.conv_b.weight"}
    with pytest.raises(ValueError, match=r"missing keys .*blocks\.3\.res_blocks\.0\.branch2\.conv_b\.weight"):
        load_weights(model, missing)
    with pytest.raises(ValueError, match=r"unexpected keys .*blocks\.9\.extra"):
        load_weights(model, {**state, "blocks.9.extra": torch.zeros(1)})
    bad = dict(state)
    bad["blocks.0.conv.weight"] = torch.zeros(16, 3, 3, 7, 7)
    with pytest.raises(ValueError, match=r"shape mismatches: blocks\.0\.conv\.weight: checkpoint \(16, 3, 3, 7, 7\) vs model \(16, 3, 5, 7, 7\)"):
        load_weights(model, bad)
    with pytest.raises(ValueError, match="inflate must be one of"):
        load_weights(model, state, inflate="middle")


def test_inserted_blocks_are_reported_not_fatal(tiny: nn.Module, caplog) -> None:
    model = create_model("i3d_tiny_nl")
    with caplog.at_level(logging.WARNING, logger="videoattn.models.weights"):
        report = load_weights(model, tiny.state_dict())
    assert report.inserted == ["blocks.3.res_blocks.0", "blocks.4.res_blocks.0"]
    assert "2 inserted blocks" in caplog.text
    assert len(report.loaded) == len(tiny.state_dict())
    torch.testing.assert_close(logits(model, X), logits(tiny, X))  # NL is the identity at init
    # and the preset's own checkpoint (keys with `.module.`) loads back exactly
    again = create_model("i3d_tiny_nl", weights=model.state_dict())
    torch.testing.assert_close(logits(again, X), logits(model, X))


def test_inflate_weight_modes() -> None:
    w = torch.randn(4, 3, 5, 5)
    mean, centre = inflate_weight(w, 3, "mean"), inflate_weight(w, 3, "centre")
    assert mean.shape == centre.shape == (4, 3, 3, 5, 5)
    torch.testing.assert_close(mean.sum(2), w)
    torch.testing.assert_close(centre[:, :, 1], w)
    assert centre[:, :, [0, 2]].abs().sum() == 0


@pytest.fixture(scope="module")
def resnet2d() -> nn.Module:
    torch.manual_seed(0)
    return pretend_pretrained(torchvision.models.resnet50(), seed=5).eval()


def _still_clip(frame: torch.Tensor, frames: int) -> torch.Tensor:
    # (N, 3, H, W) -> (N, 3, T, H, W), every frame the same
    return frame.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous()


@pytest.mark.parametrize("name,mode", [("c2d_r50", "mean"), ("c2d_r50", "centre"), ("i3d_r50", "centre")])
def test_inflated_network_computes_the_2d_network_on_a_still_clip(name: str, mode: str, resnet2d: nn.Module) -> None:
    frame = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    model = create_model(name, num_classes=1000, weights=resnet2d.state_dict(), inflate=mode)
    expected = logits(resnet2d, frame)
    got = logits(model, _still_clip(frame, 4))
    # float32 rounding through 50 layers; a wrong inflation is off by O(1) relative error
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max() * 10


def test_mean_inflated_i3d_matches_2d_away_from_temporal_borders(resnet2d: nn.Module) -> None:
    """I3D "mean" inflation: zero temporal padding changes border frames; the centre frame,
    beyond the receptive field of the padding (stem 5 + three 3x1x1 convs in res2), is exact."""
    frame = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    model = create_model("i3d_r50", num_classes=1000, weights=resnet2d.state_dict(), inflate="mean").eval()
    with torch.no_grad():
        features = model.blocks[1](model.blocks[0](_still_clip(frame, 16)))  # stem, res2
        r = resnet2d
        expected = r.layer1(r.maxpool(r.relu(r.bn1(r.conv1(frame)))))
        torch.testing.assert_close(features[:, :, 8], expected, rtol=1e-4, atol=1e-4)
        assert not torch.allclose(features[:, :, 0], expected, rtol=1e-4, atol=1e-4)


def test_2d_weights_need_a_single_pathway_resnet(resnet2d: nn.Module) -> None:
    with pytest.raises(ValueError, match="single-pathway"):
        create_model("slowfast_tiny", weights=resnet2d.state_dict())
    with pytest.raises(ValueError, match=r"unexpected keys .*blocks\.1\.res_blocks\.1\.branch2\.conv_a\.weight.*more\)") as err:
        create_model("i3d_tiny", num_classes=1000, weights=resnet2d.state_dict())
    assert "shape mismatches: blocks.0.conv.weight: checkpoint (64, 3, 5, 7, 7) vs model (16, 3, 5, 7, 7)" in str(err.value)
    assert len(str(err.value)) < 3000
