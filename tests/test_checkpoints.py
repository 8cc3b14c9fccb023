"""videoattn.checkpoints: every tool refuses a checkpoint that would run code, in one line."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from videoattn.checkpoints import CheckpointError, classifier_from_checkpoint, load_checkpoint
from videoattn.models import create_model
from videoattn.tools import visualize


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # unpickling this object would create the marker file
        return (Path.touch, (self.marker,))


def _evil(tmp_path: Path) -> tuple[Path, Path]:
    marker, path = tmp_path / "ran", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _RunsCode(marker)}, path)
    return path, marker


def test_load_checkpoint_refuses_code_and_names_the_file(tmp_path: Path) -> None:
    path, marker = _evil(tmp_path)
    with pytest.raises(CheckpointError, match=r"--ckpt_path: refusing to load .*evil.ckpt.*run code"):
        load_checkpoint(path, what="--ckpt_path")
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="no such checkpoint file .*missing.ckpt"):
        load_checkpoint(tmp_path / "missing.ckpt")
    (tmp_path / "text.ckpt").write_text("hello")
    with pytest.raises(CheckpointError, match="text.ckpt.*not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "text.ckpt")


def test_visualize_refuses_code_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, marker = _evil(tmp_path)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")  # never opened: the checkpoint is refused first
    assert visualize.main(["--checkpoint", str(path), "--video", str(video), "--out", str(tmp_path / "o")]) == 2
    out = capsys.readouterr()
    lines = (out.out + out.err).strip().splitlines()
    assert len(lines) == 1 and "refusing to load" in lines[0] and "evil.ckpt" in lines[0]
    assert not marker.exists()


def test_classifier_from_checkpoint_rebuilds_the_model(tmp_path: Path) -> None:
    net = create_model("i3d_tiny", num_classes=3)
    path = tmp_path / "m.ckpt"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in net.state_dict().items()},
                "hyper_parameters": {"backbone": "i3d_tiny", "num_classes": 3, "class_names": ["a", "b", "c"]},
                "datamodule_hyper_parameters": {"num_frames": 4, "crop_size": 32}}, path)
    model, info = classifier_from_checkpoint(path)
    x = torch.randn(1, 3, 4, 32, 32)
    assert torch.equal(model(x), net.eval()(x))
    assert info["class_names"] == ["a", "b", "c"] and info["num_frames"] == 4


def test_load_from_checkpoint_refuses_code_in_one_line(tmp_path: Path) -> None:
    from videoattn.module import VideoClassifier

    path, marker = _evil(tmp_path)
    with pytest.raises(CheckpointError, match=r"^load_from_checkpoint: refusing to load .*evil.ckpt"):
        VideoClassifier.load_from_checkpoint(path)
    assert not marker.exists()
