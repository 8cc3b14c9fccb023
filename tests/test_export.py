"""`videoattn export`: each block family and SlowFast exported from a checkpoint as a CLI run saves
it, to ONNX (run by onnxruntime) and to torch.export, with a dynamic batch size, equal to PyTorch;
one-line refusals of bad arguments and of code-running checkpoints.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import onnx
import onnxruntime
import pytest
import torch
from torch import nn

import videoattn.lightning_cli  # noqa: F401  (imported at collection: Lightning binds its log handlers to the stderr of that moment, not a test's captured one)
from videoattn.cli import main as cli_main
from videoattn.models import create_model
from videoattn.tools.export import main as export_main

CLASSES = ["archery", "bowling", "cooking"]


def _checkpoint(tmp_path: Path, name: str, *, frames: int = 8, size: int = 32, alpha: int | None = None) -> tuple[Path, nn.Module]:
    """A checkpoint in the layout a CLI run saves: the model's own initialisation moved off it
    (every parameter perturbed: the blocks' zero-initialised norms and convs included, so that they
    are not the identity) and random norm statistics and affines, so that its logits follow its
    input (weights all drawn from one normal distribution gave the same logits for every clip)."""
    from conftest import pretend_pretrained

    torch.manual_seed(0)
    net = pretend_pretrained(create_model(name, num_classes=len(CLASSES)))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path / f"{name}.ckpt"
    data = {"num_frames": frames, "sampling_rate": 2, "crop_size": size, "test_crop_size": size,
            "slowfast_alpha": alpha, "mean": [0.45] * 3, "std": [0.225] * 3}
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in net.state_dict().items()},
                "hyper_parameters": {"backbone": name, "num_classes": len(CLASSES), "class_names": CLASSES, "backbone_kwargs": {}},
                "datamodule_hyper_parameters": data}, path)
    return path, net.eval()


def _max_difference(out: str) -> float:
    """The command's largest |ONNX - PyTorch| difference, relative to its logits' scale when above 1."""
    found = re.search(r"max \|difference\| (\S+) \(logits up to (\S+)\)", out)
    return float(found.group(1)) / max(1.0, float(found.group(2)))


@pytest.mark.parametrize("name", ["i3d_tiny_nl", "i3d_tiny_gc", "i3d_tiny_se", "i3d_tiny_cgnl", "slowfast_tiny_nl"])
def test_onnx_export_matches_pytorch_with_any_batch(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slowfast = name.startswith("slowfast")
    ckpt, net = _checkpoint(tmp_path, name, alpha=4 if slowfast else None)
    out = tmp_path / "model.onnx"
    assert export_main([str(ckpt), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert _max_difference(printed) <= 1e-5

    model = onnx.load(str(out))
    meta = json.loads({p.key: p.value for p in model.metadata_props}["videoattn"])
    assert meta["class_names"] == CLASSES and meta["mean"] == [0.45] * 3
    names = ["slow", "fast"] if slowfast else ["video"]
    shapes = [(3, 2, 32, 32), (3, 8, 32, 32)] if slowfast else [(3, 8, 32, 32)]
    assert meta["inputs"] == {n: ["batch", *s] for n, s in zip(names, shapes)}
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == names
    for batch in (1, 5):  # exported with batch 2, checked by the command with 3
        clips = [torch.randn(batch, *s) for s in shapes]
        got = session.run(None, {n: c.numpy() for n, c in zip(names, clips)})[0]
        with torch.no_grad():
            expected = net(clips if slowfast else clips[0])
        assert got.shape == (batch, len(CLASSES))
        assert expected.abs().max() > 0.1  # not a degenerate (all-zero) output
        if batch > 1:
            assert (expected[1:] - expected[0]).abs().max() > 1e-3  # and one that follows the input
        torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["i3d_tiny_nl", "slowfast_tiny_nl"])
def test_torch_export_program(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slowfast = name.startswith("slowfast")
    ckpt, net = _checkpoint(tmp_path, name, frames=8, size=32, alpha=4 if slowfast else None)
    out = tmp_path / "model.pt2"
    assert export_main([str(ckpt), "--format", "torch", "--out", str(out), "--size", "48"]) == 0
    assert _max_difference(capsys.readouterr().out) <= 1e-5
    extra = {"videoattn.json": ""}
    program = torch.export.load(str(out), extra_files=extra)
    meta = json.loads(extra["videoattn.json"])
    assert meta["class_names"] == CLASSES
    shapes = [(3, 2, 48, 48), (3, 8, 48, 48)] if slowfast else [(3, 8, 48, 48)]  # --size overrides the checkpoint's
    clips = [torch.randn(1, *s) for s in shapes]
    with torch.no_grad():
        torch.testing.assert_close(program.module()(*clips), net(clips if slowfast else clips[0]), rtol=1e-4, atol=1e-5)


def test_registered_in_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, _ = _checkpoint(tmp_path, "i3d_tiny_se")
    with pytest.raises(SystemExit) as exit_:
        cli_main(["export", str(ckpt), "--format", "torch", "--out", str(tmp_path / "se.pt2"), "--frames", "4"])
    assert exit_.value.code == 0
    assert "inputs video [batch, 3, 4, 32, 32]" in capsys.readouterr().out
    assert (tmp_path / "se.pt2").is_file()


def _one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        export_main(argv)
    assert exit_.value.code == 2
    out = capsys.readouterr()
    lines = (out.out + out.err).strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_bad_arguments_end_in_one_line_naming_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_error_line(capsys, [str(tmp_path / "missing.ckpt")])
    assert "CKPT: no such checkpoint file" in line and "missing.ckpt" in line
    ckpt, _ = _checkpoint(tmp_path, "slowfast_tiny_nl", alpha=4)
    assert "argument --format: invalid choice: 'tflite'" in _one_error_line(capsys, [str(ckpt), "--format", "tflite"])
    line = _one_error_line(capsys, [str(ckpt), "--frames", "6"])
    assert line.startswith("videoattn export: error: --frames: 6 frames") and "alpha 4" in line
    assert "argument --size: expected a positive integer, got '0'" in _one_error_line(capsys, [str(ckpt), "--size", "0"])
    assert "the checkpoint is required: --ckpt_path CKPT (or CKPT)" in _one_error_line(capsys, [])
    bare = tmp_path / "bare.pt"
    torch.save(create_model("i3d_tiny", num_classes=3).state_dict(), bare)
    with pytest.raises(SystemExit) as exit_:  # not a SlowFast state dict: the loader lists the keys
        export_main([str(bare), "--model", "slowfast_tiny"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith(f"videoattn export: error: weights: {bare} does not fit")
    assert not list(tmp_path.glob("*.onnx"))


def test_bare_state_dict_with_model_uses_its_recipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "bare.pt"
    torch.save(create_model("i3d_tiny", num_classes=3).state_dict(), bare)
    line = _one_error_line(capsys, [str(bare)])
    assert "CKPT" in line and "does not name its model" in line
    assert export_main([str(bare), "--model", "i3d_tiny", "--format", "torch", "--size", "32"]) == 0
    assert "inputs video [batch, 3, 8, 32, 32]" in capsys.readouterr().out  # 8 frames: i3d_tiny's recipe
    assert (tmp_path / "bare.pt2").is_file()  # default: next to the checkpoint


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # unpickling this object would create the marker file
        return (Path.touch, (self.marker,))


def test_code_running_checkpoint_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker, evil = tmp_path / "ran", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"backbone": "i3d_tiny"}, "payload": _RunsCode(marker)}, evil)
    line = _one_error_line(capsys, [str(evil), "--out", str(tmp_path / "evil.onnx")])
    assert "refusing to load" in line and "evil.ckpt" in line
    assert not marker.exists() and not (tmp_path / "evil.onnx").exists()


def _cli_checkpoint(tmp_path: Path, name: str, clip: dict, aggregate: str) -> Path:
    """A checkpoint as `videoattn fit` writes it (model and data module hyperparameters, Lightning's
    keys), enough for `videoattn predict --ckpt_path` alone; its model's scores follow its input
    (random norm statistics and affines, the blocks' included, and a 5x head: the random weights
    of `_checkpoint` give the same scores for any clip)."""
    import lightning
    from conftest import pretend_pretrained

    from videoattn.models import find_classifier

    torch.manual_seed(0)
    net = pretend_pretrained(create_model(name, num_classes=len(CLASSES)))
    with torch.no_grad():
        find_classifier(net)[1].weight.mul_(5)
    path = tmp_path / f"{name}.ckpt"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in net.state_dict().items()},
                "hyper_parameters": {"backbone": name, "num_classes": len(CLASSES), "class_names": CLASSES, "backbone_kwargs": {},
                                     "test_aggregate": aggregate},
                "datamodule_hyper_parameters": {"_class_path": "videoattn.data.KineticsDataModule", "clip": clip, "batch_size": 2, "num_workers": 0},
                "pytorch-lightning_version": lightning.__version__, "epoch": 0, "global_step": 0, "classes": CLASSES}, path)
    return path


@pytest.mark.parametrize("name,aggregate,short_video,video_frames", [("i3d_tiny_nl", "mean", "clamp", 40), ("slowfast_tiny", "max", "loop", 12)])
def test_the_docs_onnxruntime_example_gives_predicts_scores(name: str, aggregate: str, short_video: str, video_frames: int, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/training.md's onnxruntime example, run as written on a synthetic video next to the
    exported model, gives the scores `videoattn predict --ckpt_path CKPT` gives, to 1e-5 (float32
    through onnxruntime; the CSV has 6 decimals): the metadata holds the whole input contract
    (frames, stride, resize, scaling, mean/std, crops, views, aggregation), non-default values
    included (3 crops of a 48x64 video, mean/std per channel, a video shorter than a clip looped).
    The video is noise: a float or non-antialiased resize, a centre crop for three, or a wrong
    stride would change the scores by far more than the tolerance."""
    import numpy as np

    from videoattn.video_io import write_video

    slowfast = name.startswith("slowfast")
    clip = {"num_frames": 8, "sampling_rate": 3, "short_video": short_video, "test_short_side": 40, "test_crop_size": 32,
            "test_views": [3, 3], "slowfast_alpha": 4 if slowfast else None, "mean": [0.40, 0.45, 0.50], "std": [0.20, 0.22, 0.25]}
    ckpt = _cli_checkpoint(tmp_path, name, {**clip, "crop_size": 32, "train_short_side": [40, 48]}, aggregate)
    noise = np.random.default_rng(3).integers(0, 256, (video_frames, 48, 64, 3), dtype=np.uint8)  # fine detail: resizes differ
    write_video(tmp_path / "my_video.mp4", noise)
    assert export_main(["--ckpt_path", str(ckpt), "--out", str(tmp_path / "model.onnx")]) == 0
    cli_main(["predict", "--ckpt_path", str(ckpt), "--data.predict", str(tmp_path / "my_video.mp4"),
              "--model.predictions_csv", str(tmp_path / "p.csv")])
    row = next(csv.DictReader((tmp_path / "p.csv").open()))
    assert (row["note"] != "") == (video_frames < 22)  # 12 frames: shorter than the clip's 22

    text = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    code = text.split("## Exporting a model")[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    namespace: dict = {}
    exec(compile(code, "docs/training.md", "exec"), namespace)
    meta, scores = namespace["meta"], namespace["scores"]
    assert meta["clip"] == {"target_fps": None, **clip} and meta["aggregate"] == aggregate and len(meta["preprocessing"]) >= 6
    top = scores.argsort(descending=True)[:3].tolist()
    assert [CLASSES[i] for i in top] == [row[f"class_{k}"] for k in (1, 2, 3)]
    assert [float(scores[i]) for i in top] == pytest.approx([float(row[f"score_{k}"]) for k in (1, 2, 3)], abs=1e-5)
    assert "[('" in capsys.readouterr().out  # the example prints its top-3
