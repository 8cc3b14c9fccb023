"""videoattn.checkpoints: every entry point that reads a checkpoint (--ckpt_path, --model.weights,
export, visualize, load_from_checkpoint) refuses a bad file in one line that says which of three
things is wrong: not a checkpoint at all, truncated or corrupt, or code that would run."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml
from conftest import moving_square_frames

from videoattn.checkpoints import CheckpointError, load_checkpoint
from videoattn.models import classifier_from_checkpoint, create_model
from videoattn.tools import visualize
from videoattn.video_io import write_video

ROOT = Path(__file__).resolve().parents[1]


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


# ------------------------------------------------------------------ three kinds of bad file
NOT_A_CHECKPOINT, DAMAGED, RUNS_CODE = "is not a PyTorch checkpoint", "damaged PyTorch checkpoint, truncated or corrupt", "would run code when unpickled"


def _good(tmp_path: Path) -> Path:
    net = create_model("i3d_tiny", num_classes=3)
    path = tmp_path / "good.ckpt"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in net.state_dict().items()},
                "hyper_parameters": {"backbone": "i3d_tiny", "num_classes": 3, "class_names": ["a", "b", "c"]},
                "datamodule_hyper_parameters": {"clip": {"num_frames": 4, "crop_size": 32, "test_crop_size": 32}}}, path)
    return path


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, the kind of problem its error must name)."""
    good = _good(tmp_path).read_bytes()
    files = {}

    def put(name: str, data: bytes, kind: str) -> None:
        (tmp_path / name).write_bytes(data)
        files[name] = (tmp_path / name, kind)

    put("notes.ckpt", b"epoch 3: val/top1 0.91\nthe best so far\n", NOT_A_CHECKPOINT)
    frames = moving_square_frames(8, 32, 32)
    write_video(tmp_path / "clip.mp4", frames)
    put("video.ckpt", (tmp_path / "clip.mp4").read_bytes(), NOT_A_CHECKPOINT)
    put("empty.ckpt", b"", NOT_A_CHECKPOINT)
    put("cut.ckpt", good[: len(good) // 2], DAMAGED)  # a download or copy cut short
    torch.save({"w": torch.ones(4)}, tmp_path / "legacy.ckpt", _use_new_zipfile_serialization=False)
    legacy = (tmp_path / "legacy.ckpt").read_bytes()
    put("cut_legacy.ckpt", legacy[: len(legacy) // 2], DAMAGED)  # torch < 1.6's pickle format, cut short
    marker = tmp_path / "ran"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hyper_parameters": {"backbone": "i3d_tiny"}, "payload": _RunsCode(marker)}, tmp_path / "evil.ckpt")
    files["evil.ckpt"] = (tmp_path / "evil.ckpt", RUNS_CODE)
    return files


def test_the_three_kinds_of_bad_file_are_told_apart(tmp_path: Path) -> None:
    for name, (path, kind) in _bad_files(tmp_path).items():
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path, what="--ckpt_path")
        message = str(err.value)
        assert message.startswith("--ckpt_path: ") and name in message and len(message.splitlines()) == 1, message
        assert kind in message, (name, message)
        assert [k for k in (NOT_A_CHECKPOINT, DAMAGED, RUNS_CODE) if k in message] == [kind], message
    assert not (tmp_path / "ran").exists()
    text = str(pytest.raises(CheckpointError, load_checkpoint, tmp_path / "notes.ckpt").value)
    video = str(pytest.raises(CheckpointError, load_checkpoint, tmp_path / "video.ckpt").value)
    evil = str(pytest.raises(CheckpointError, load_checkpoint, tmp_path / "evil.ckpt").value)
    assert "a text file (starting 'epoch 3: val/top1 0.91')" in text and "an MP4/QuickTime video" in video
    assert "rejected a global: " in evil  # the global that would have been called is named


def _fit_config(tmp_path: Path) -> Path:
    cfg = {"model": {"backbone": "i3d_tiny"},
           "data": {"class_path": "videoattn.data.KineticsDataModule",
                    "init_args": {"root": str(tmp_path), "train": "absent.txt", "classes": ["a", "b", "c"], "num_workers": 0}},
           "trainer": {"accelerator": "cpu", "default_root_dir": str(tmp_path / "run"), "max_epochs": 1}}
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _entry_points(tmp_path: Path) -> dict[str, Callable[[Path], list[str]]]:
    """entry point -> the command (argv of `videoattn`) that reads ``ckpt`` through it."""
    video = tmp_path / "clip.mp4"
    return {
        "--ckpt_path": lambda ckpt: ["predict", "--ckpt_path", str(ckpt), "--data.predict", str(video)],
        "--model.weights": lambda ckpt: ["fit", "--config", str(_fit_config(tmp_path)), "--model.weights", str(ckpt)],
        "export": lambda ckpt: ["export", "--ckpt_path", str(ckpt), "--out", str(tmp_path / "m.onnx")],
        "visualize": lambda ckpt: ["visualize", "--ckpt_path", str(ckpt), "--video", str(video), "--out", str(tmp_path / "maps")],
    }


@pytest.mark.parametrize("entry", ["--ckpt_path", "--model.weights", "export", "visualize"])
def test_every_entry_point_names_the_kind_of_problem_in_one_line(entry: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from videoattn.cli import main

    files = _bad_files(tmp_path)
    command = _entry_points(tmp_path)[entry]
    for name in ("notes.ckpt", "video.ckpt", "cut.ckpt", "evil.ckpt"):
        path, kind = files[name]
        with pytest.raises(SystemExit) as exc:
            main(command(path))
        assert exc.value.code == 2, (entry, name)
        out = capsys.readouterr()
        lines = [line for line in (out.out + out.err).strip().splitlines() if "error" in line]
        assert len(lines) == 1 and name in lines[0] and kind in lines[0], (entry, name, out.out + out.err)
        assert "Traceback" not in out.out + out.err
    assert not (tmp_path / "ran").exists() and not (tmp_path / "m.onnx").exists()


def test_load_from_checkpoint_names_a_text_file_as_not_a_checkpoint(tmp_path: Path) -> None:
    from videoattn.module import VideoClassifier

    files = _bad_files(tmp_path)
    for name in ("notes.ckpt", "cut.ckpt", "evil.ckpt"):
        path, kind = files[name]
        with pytest.raises(CheckpointError, match=f"^load_from_checkpoint: .*{name}.*{kind}"):
            VideoClassifier.load_from_checkpoint(path)


# ------------------------------------------------------------------ no import circle
def test_checkpoints_reads_files_only_and_the_old_import_path_still_works() -> None:
    """checkpoints.py imports nothing of videoattn.models (the circle checkpoints -> models ->
    weights -> checkpoints is gone); classifier_from_checkpoint lives in videoattn.models and is
    still importable from videoattn.checkpoints."""
    tree = ast.parse((ROOT / "videoattn" / "checkpoints.py").read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    outside = [m for m in imported if m.startswith("videoattn.models")]
    assert outside == ["videoattn.models.from_checkpoint"]  # only the lazy alias of the old import path
    code = ("import sys, videoattn.checkpoints; assert 'videoattn.models' not in sys.modules, 'models imported';"
            "from videoattn.checkpoints import classifier_from_checkpoint as old;"
            "from videoattn.models import classifier_from_checkpoint as new; assert old is new")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_clip_settings_object_is_not_refused(tmp_path: Path) -> None:
    """A data module made in Python saves its ClipSettings: every reader takes it, in a process where
    nothing imported videoattn.data before (export and visualize do not)."""
    from videoattn.data.clip import ClipSettings

    path = _good(tmp_path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["datamodule_hyper_parameters"] = {"clip": ClipSettings(num_frames=4, crop_size=32, test_short_side=32, test_crop_size=32)}
    torch.save(ckpt, path)
    code = ("import sys; from videoattn.models import classifier_from_checkpoint; assert 'videoattn.data' not in sys.modules;"
            f"model, info = classifier_from_checkpoint({str(path)!r}); assert info['num_frames'] == 4 and info['test_crop_size'] == 32")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
