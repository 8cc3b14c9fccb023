"""Tests for videoattn.lightning_cli: `videoattn fit|validate|test` end to end (in-process) on
a handful of tiny mp4s with the tiny I3D: checkpoints, logs, class links, config stacking,
predictions CSV, the non-finite-loss stop and fine-tuning from a checkpoint.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import yaml
from conftest import moving_square_frames

from videoattn.lightning_cli import cli_main
from videoattn.video_io import write_video

CLASSES = ("archery", "bowling", "cooking")


def make_dataset(root: Path, num_videos: int = 5, classes: tuple[str, ...] = CLASSES, bad: tuple[int, ...] = ()) -> Path:
    """``root/list.txt`` with ``num_videos`` 16-frame 32x40 mp4s (``bad`` ones are not videos)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(num_videos):
        name = f"v{i}.mp4"
        if i in bad:
            (root / name).write_bytes(b"not a video")
        else:
            write_video(root / name, moving_square_frames(16, 32, 40, seed=i))
        lines.append(f"{name} {classes[i % len(classes)]}")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    return root


def write_config(path: Path, data_root: Path, run_dir: Path, *, backbone: str = "i3d_tiny", epochs: int = 1, **model: object) -> Path:
    """A tiny fit/test config on ``data_root/list.txt`` (train = val = test), CPU, fp32."""
    cfg = {
        "seed_everything": 0,
        "model": {"backbone": backbone, "lr": 0.05, "warmup_epochs": 0.5, **model},
        "data": {
            "class_path": "videoattn.data.KineticsDataModule",
            "init_args": {
                "root": str(data_root), "train": "list.txt", "val": "list.txt", "test": "list.txt",
                "batch_size": 2, "num_workers": 0,
                "clip": {"num_frames": 4, "sampling_rate": 2, "train_short_side": [32, 40], "crop_size": 32,
                         "test_short_side": 32, "test_crop_size": 32, "test_views": [2, 3]},
            },
        },
        "trainer": {
            "accelerator": "cpu", "devices": 1, "precision": "32-true", "max_epochs": epochs,
            "default_root_dir": str(run_dir), "enable_model_summary": False, "log_every_n_steps": 1,
        },
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One 2-epoch fit shared by the tests of this file: (config, run dir)."""
    tmp = tmp_path_factory.mktemp("cli")
    data = make_dataset(tmp / "data")
    cfg = write_config(tmp / "cfg.yaml", data, tmp / "run", epochs=2)
    cli_main(["fit", "--config", str(cfg)])
    return cfg, tmp / "run"


def test_fit_saves_best_and_last_checkpoints_logs_and_classes(trained: tuple[Path, Path]) -> None:
    _, run = trained
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "last.ckpt" in ckpts and any(n.startswith("best-epoch") for n in ckpts), ckpts
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 4  # 2 epochs x 2 batches (5 videos, batch 2, drop_last)
    assert ckpt["classes"] == list(CLASSES) and ckpt["hyper_parameters"]["num_classes"] == 3
    assert any(k.startswith("backbone.") for k in ckpt["state_dict"])
    with open(run / "logs" / "version_0" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    lrs = [float(r["train/lr/decay"]) for r in rows if r.get("train/lr/decay")]  # LearningRateMonitor, per param group
    assert len(lrs) == 4 and lrs[0] < lrs[1] and lrs[-1] < max(lrs)  # warm-up then cosine
    assert any(r.get("val/top1") for r in rows) and any(r.get("train/top1") for r in rows) and any(r.get("train/skipped") for r in rows)


def test_test_subcommand_writes_one_row_per_video(trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg, run = trained
    out = tmp_path / "pred.csv"
    cli = cli_main(["test", "--config", str(cfg), "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--model.predictions_csv", str(out)])
    rows = list(csv.DictReader(out.open()))
    assert [Path(r["video"]).name for r in rows] == [f"v{i}.mp4" for i in range(5)]
    assert [r["label"] for r in rows] == [CLASSES[i % 3] for i in range(5)]
    assert all(r["pred"] == r["class_1"] and r["pred"] in CLASSES for r in rows)
    scores = [[float(r[f"score_{k}"]) for k in (1, 2, 3)] for r in rows]
    assert all(s[0] >= s[1] >= s[2] and abs(sum(s) - 1) < 1e-4 for s in scores)  # mean of softmax over 3 classes
    metrics = cli.trainer.callback_metrics
    assert metrics["test/videos"] == 5
    assert float(metrics["test/video_top1"]) == pytest.approx(sum(r["pred"] == r["label"] for r in rows) / 5)
    assert "5 videos evaluated, 0 skipped" in capsys.readouterr().out


def test_stacked_configs_overrides_and_links(trained: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, _ = trained
    delta = tmp_path / "nl.yaml"
    delta.write_text("model:\n  backbone: i3d_tiny_nl\n")
    cli = cli_main(["validate", "--config", str(cfg), "--config", str(delta), "--model.lr", "0.01", "--trainer.default_root_dir", str(tmp_path)])
    model = cli.model
    assert model.hparams.backbone == "i3d_tiny_nl" and model.hparams.lr == 0.01
    assert any(type(m).__name__ == "NonLocal3d" for m in model.modules())
    assert model.hparams.num_classes == 3 and model.hparams.class_names == list(CLASSES)  # linked from data
    assert not cli.trainer._accelerator_connector.use_distributed_sampler


def test_unreadable_test_videos_are_reported_not_fatal(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = make_dataset(tmp_path / "data", num_videos=4, bad=(2,))
    cfg = write_config(tmp_path / "cfg.yaml", data, tmp_path / "run")
    cli = cli_main(["test", "--config", str(cfg), "--model.predictions_csv", str(tmp_path / "p.csv")])
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [int(r["video_index"]) for r in rows] == [0, 1, 2, 3]  # the unreadable one too, with its reason
    assert rows[2]["pred"] == "" and rows[2]["note"].startswith("unreadable: ") and "v2.mp4" in rows[2]["video"]
    assert cli.trainer.callback_metrics["test/videos"] == 3
    out = capsys.readouterr().out
    assert "3 videos evaluated, 1 skipped" in out and "v2.mp4" in out


def test_nonfinite_loss_exits_with_the_step(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = make_dataset(tmp_path / "data", num_videos=4)
    cfg = write_config(tmp_path / "cfg.yaml", data, tmp_path / "run", lr=1e30, warmup_epochs=0)
    with pytest.raises(SystemExit) as exc:
        cli_main(["fit", "--config", str(cfg), "--trainer.max_epochs", "3"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "training loss is NaN or infinite" in err and "at global step" in err and ".mp4" in err


def test_finetune_from_a_checkpoint_to_another_class_count(trained: tuple[Path, Path], tmp_path: Path) -> None:
    _, run = trained
    last = run / "checkpoints" / "last.ckpt"
    data = make_dataset(tmp_path / "data", num_videos=4, classes=("jumping", "running"))
    cfg = write_config(tmp_path / "cfg.yaml", data, tmp_path / "run", weights=str(last), freeze_backbone=True)
    cli = cli_main(["fit", "--config", str(cfg)])
    model = cli.model
    assert model.hparams.num_classes == 2 and model.classes == ["jumping", "running"]
    source = torch.load(last, weights_only=True)["state_dict"]
    tuned = model.state_dict()
    head = {k for k in tuned if k.startswith("backbone.") and (k not in source or tuned[k].shape != source[k].shape)}
    assert head and all(tuned[k].shape[0] == 2 for k in head)  # the re-initialised 2-class head
    for k, v in source.items():  # everything else: the checkpoint's weights and BN statistics, untouched
        if k in tuned and k not in head and k.startswith("backbone."):
            assert torch.equal(tuned[k], v), k


def test_predict_subcommand_writes_the_csv(trained: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, run = trained
    out = tmp_path / "predict.csv"
    cli_main(["predict", "--config", str(cfg), "--data.predict", "list.txt", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"),
              "--model.predictions_csv", str(out), "--model.test_aggregate", "max"])
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 5 and all(r["pred"] in CLASSES for r in rows)
    assert all(float(r["score_1"]) >= float(r["score_2"]) for r in rows)


def test_a_bad_config_value_ends_with_its_message(trained: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    cfg, _ = trained
    with pytest.raises(SystemExit) as exc:
        cli_main(["fit", "--config", str(cfg), "--model.backbone", "i3d_nope"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "videoattn fit: error: unknown model 'i3d_nope'" in err and "i3d_tiny" in err and "Traceback" not in err


def test_last_checkpoint_is_the_final_epoch_when_validation_is_sparse(tmp_path: Path) -> None:
    # validation after epoch 1 only (of 0, 1, 2): last.ckpt must still hold the weights after epoch 2
    data = make_dataset(tmp_path / "data", num_videos=4)
    cfg = write_config(tmp_path / "cfg.yaml", data, tmp_path / "run", epochs=3)
    cli_main(["fit", "--config", str(cfg), "--trainer.check_val_every_n_epoch", "2", "--trainer.limit_val_batches", "1"])
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 6  # 3 epochs x 2 batches


def test_a_missing_checkpoint_file_is_named(trained: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    cfg, run = trained
    missing = run / "checkpoints" / "nope.ckpt"
    with pytest.raises(SystemExit) as exc:
        cli_main(["test", "--config", str(cfg), "--ckpt_path", str(missing)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"videoattn test: error: --ckpt_path {missing}: no such checkpoint file" in err and "Traceback" not in err


def test_checkpoint_loads_back_into_the_module(trained: tuple[Path, Path]) -> None:
    from videoattn.module import VideoClassifier

    _, run = trained
    last = run / "checkpoints" / "last.ckpt"
    model = VideoClassifier.load_from_checkpoint(last, map_location="cpu", weights_only=True)
    saved = torch.load(last, weights_only=True)["state_dict"]
    assert model.classes == list(CLASSES) and model.hparams.backbone == "i3d_tiny"
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


class PoolHead(torch.nn.Module):
    """A user's own backbone, given to the CLI by class_path: pool, then a linear head."""

    def __init__(self, num_classes: int, channels: int = 3) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean((2, 3, 4)))  # [N, C, T, H, W] -> [N, K]


def test_any_module_as_backbone_by_class_path(trained: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, _ = trained
    backbone = '{"class_path": "test_lightning_cli.PoolHead", "init_args": {"num_classes": 3}}'
    cli = cli_main(["validate", "--config", str(cfg), "--model.backbone", backbone, "--trainer.default_root_dir", str(tmp_path)])
    assert isinstance(cli.model.backbone, PoolHead)
    assert cli.trainer.callback_metrics["val/top1"] >= 0


def test_test_on_another_root_needs_only_the_test_list(trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The checkpoint gives the classes: no train list, val list or class-list file under the new root."""
    cfg, run = trained
    other = tmp_path / "other"
    other.mkdir()
    for i in range(3):
        write_video(other / f"w{i}.mp4", moving_square_frames(16, 32, 40, seed=10 + i))
    (other / "mine.txt").write_text("w0.mp4 cooking\nw1.mp4 archery\nw2.mp4 cooking\n")
    out = tmp_path / "p.csv"
    cli_main(["test", "--config", str(cfg), "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--data.root", str(other),
              "--data.test", "mine.txt", "--data.train", "absent.txt", "--data.classes", "absent_classes.txt",
              "--model.predictions_csv", str(out)])
    rows = list(csv.DictReader(out.open()))
    assert [r["label"] for r in rows] == ["cooking", "archery", "cooking"]  # indices of the checkpoint's class order
    assert "3 videos evaluated, 0 skipped" in capsys.readouterr().out


def test_test_labels_not_in_the_checkpoint_are_named(trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg, run = trained
    other = tmp_path / "other"
    other.mkdir()
    write_video(other / "w0.mp4", moving_square_frames(16, 32, 40))
    (other / "mine.txt").write_text("w0.mp4 zumba\n")
    with pytest.raises(SystemExit) as exc:
        cli_main(["test", "--config", str(cfg), "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--data.root", str(other), "--data.test", "mine.txt"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "videoattn test: error:" in err and "'zumba' (1 videos)" in err and "archery" in err and "Traceback" not in err


def test_predict_on_a_folder_and_one_file_with_the_checkpoints_classes(trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg, run = trained
    mine = tmp_path / "my videos" / "day 1"
    mine.mkdir(parents=True)
    for i in range(2):
        write_video(mine / f"clip{i}.mp4", moving_square_frames(16, 32, 40, seed=20 + i))
    (mine / "notes.txt").write_text("not a video")
    (mine / "broken.mp4").write_bytes(b"\0" * 100)
    for source, good, bad in ((tmp_path / "my videos", 2, 1), (mine / "clip1.mp4", 1, 0)):
        out = tmp_path / "p.csv"
        cli_main(["predict", "--config", str(cfg), "--ckpt_path", str(run / "checkpoints" / "last.ckpt"),
                  "--data.predict", str(source), "--model.predictions_csv", str(out)])
        rows = list(csv.DictReader(out.open()))
        assert len(rows) == good + bad and sum(r["note"].startswith("unreadable: ") for r in rows) == bad
        assert all(r["pred"] in CLASSES and r["label"] == "" for r in rows if not r["note"])
        printed = capsys.readouterr().out
        assert f"predict: {good} videos evaluated, {bad} skipped" in printed
        shown = [line for line in printed.splitlines() if "clip1.mp4: " in line]  # the top-3 of each video, printed
        assert len(shown) == 1 and sum(c in shown[0] for c in CLASSES) == 3
        assert ("skipped " + str(mine / "broken.mp4")) in printed if bad else "broken" not in printed


def test_extract_writes_one_embedding_per_video(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """features = the classifier's input averaged over the views: the head applied to it gives the
    mean of the views' logits, which is what `mean_logits` aggregation predicts."""
    import numpy as np

    from videoattn.cli import main

    cfg, run = trained
    out, csv_out = tmp_path / "f.npz", tmp_path / "p.csv"
    main(["extract", "--config", str(cfg), "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--data.predict", "list.txt",
          "--out", str(out), "--model.test_aggregate", "mean_logits", "--model.predictions_csv", str(csv_out)])
    with np.load(out) as f:
        features, videos, labels = f["features"], f["video"], f["label"]
    assert features.dtype == np.float32 and features.shape[0] == 5 and features.shape[1] > 8
    assert [Path(v).name for v in videos] == [f"v{i}.mp4" for i in range(5)] and labels.tolist() == [0, 1, 2, 0, 1]
    head = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    w, b = head["backbone.blocks.6.proj.weight"], head["backbone.blocks.6.proj.bias"]
    probs = (torch.from_numpy(features) @ w.T + b).softmax(-1)
    rows = list(csv.DictReader(csv_out.open()))
    for p, r in zip(probs, rows):
        assert CLASSES[int(p.argmax())] == r["class_1"] and float(p.max()) == pytest.approx(float(r["score_1"]), abs=1e-5)
    assert not list(tmp_path.glob(".*parts"))  # the per-process files are gone


def test_extract_needs_an_npz_out(capsys: pytest.CaptureFixture) -> None:
    from videoattn.cli import main

    for argv, message in ((["extract", "--config", "x.yaml"], "--out FEATURES.npz is required"), (["extract", "--out", "f.csv"], "must end in .npz")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_a_checkpoint_that_would_run_code_is_refused_in_one_line(trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg, _ = trained
    marker, evil = tmp_path / "ran", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _RunsCode(marker)}, evil)
    for subcommand in ("test", "predict"):
        with pytest.raises(SystemExit) as exc:
            cli_main([subcommand, "--config", str(cfg), "--ckpt_path", str(evil), "--data.predict", "list.txt"])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "refusing to load" in err[0] and "evil.ckpt" in err[0]
    assert not marker.exists()


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # unpickling this object would create the marker file
        return (Path.touch, (self.marker,))


def test_an_old_checkpoint_with_run_options_in_its_hyperparameters(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """Checkpoints of the first version saved predictions_csv & co. as hyperparameters: this
    run's options win over them, and the model still loads."""
    cfg, run = trained
    old = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    old["hyper_parameters"].update(predictions_csv=str(tmp_path / "stale.csv"), test_aggregate="max", precise_bn_batches=200)
    torch.save(old, tmp_path / "old.ckpt")
    out = tmp_path / "new.csv"
    cli = cli_main(["test", "--config", str(cfg), "--ckpt_path", str(tmp_path / "old.ckpt"), "--model.predictions_csv", str(out)])
    assert out.is_file() and not (tmp_path / "stale.csv").exists()
    assert cli.model.hparams.test_aggregate == "mean"  # the config's, not the checkpoint's


# ------------------------------------------------------------ a checkpoint and a file, nothing else
def test_predict_needs_only_the_checkpoint_and_the_file(trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    """`videoattn predict --ckpt_path CKPT --data.predict VIDEO`: the data module, its clip settings and
    the class names come from the checkpoint; the file is found from the current folder; the scores
    are those of a predict run given the training config."""
    from videoattn.cli import main

    cfg, run = trained
    ckpt = run / "checkpoints" / "last.ckpt"
    here = tmp_path / "elsewhere"
    here.mkdir()
    write_video(here / "mine.mp4", moving_square_frames(16, 32, 40, seed=30))
    monkeypatch.chdir(here)
    main(["predict", "--ckpt_path", str(ckpt), "--data.predict", "mine.mp4", "--model.predictions_csv", str(tmp_path / "alone.csv")])
    printed = capsys.readouterr().out
    assert "predict: 1 videos evaluated, 0 skipped" in printed and "mine.mp4: " in printed
    cli_main(["predict", "--config", str(cfg), "--ckpt_path", str(ckpt), "--data.predict", str(here / "mine.mp4"),
              "--model.predictions_csv", str(tmp_path / "with_config.csv")])
    alone, with_config = (list(csv.DictReader((tmp_path / f).open())) for f in ("alone.csv", "with_config.csv"))
    assert [(r["class_1"], r["score_1"], r["score_3"]) for r in alone] == [(r["class_1"], r["score_1"], r["score_3"]) for r in with_config]
    assert sorted(p.name for p in here.iterdir()) == ["mine.mp4"]  # no config.yaml, no logs/ in the user's folder
    # the README's command: with configs/demo.yaml (the relations recipe: its data root need not exist)
    demo = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
    main(["predict", "--config", str(demo), "--ckpt_path", str(ckpt), "--data.predict", "mine.mp4", "--data.num_workers", "0"])
    assert "predict: 1 videos evaluated, 0 skipped" in capsys.readouterr().out


def test_predict_console(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """As a user sees it (a subprocess): no "dirpath has changed" warning, no logger tip, the
    progress bar before the results, the results last."""
    import subprocess
    import sys

    _, run = trained
    write_video(tmp_path / "mine.mp4", moving_square_frames(16, 32, 40, seed=31))
    done = subprocess.run([sys.executable, "-m", "videoattn.cli", "predict", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"),
                           "--data.predict", "mine.mp4", "--data.num_workers", "0"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "dirpath has changed" not in out and "Tip:" not in out and "litlogger" not in out and "callbacks used to create the checkpoint" not in out
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    bar = max(i for i, line in enumerate(lines) if "Predicting" in line)
    result = next(i for i, line in enumerate(lines) if line.startswith("predict: 1 videos evaluated"))
    assert bar < result and lines[-1].lstrip().startswith("mine.mp4: "), lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.mp4"]
    (tmp_path / "list.txt").write_text("mine.mp4 cooking\n")
    done = subprocess.run([sys.executable, "-m", "videoattn.cli", "test", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"),
                           "--data.test", "list.txt", "--data.num_workers", "0", "--trainer.default_root_dir", "run"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    bar = max(i for i, line in enumerate(lines) if "Testing" in line)
    table = next(i for i, line in enumerate(lines) if "Test metric" in line)
    result = next(i for i, line in enumerate(lines) if line.startswith("test: 1 videos evaluated"))
    assert done.returncode == 0 and bar < table < result, done.stdout + done.stderr


def test_evaluation_from_a_checkpoint_takes_its_data_module(trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`videoattn test --ckpt_path CKPT --data.root R --data.test LIST`: no config."""
    _, run = trained
    data = make_dataset(tmp_path / "data", num_videos=3)
    cli = cli_main(["test", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--data.root", str(data), "--data.test", "list.txt",
                    "--trainer.default_root_dir", str(tmp_path / "run")])
    assert type(cli.datamodule).__name__ == "KineticsDataModule" and cli.datamodule.classes == list(CLASSES)
    assert cli.datamodule.clip.test_views == (2, 3) and cli.datamodule.clip.crop_size == 32  # the training run's clip settings
    assert "3 videos evaluated, 0 skipped" in capsys.readouterr().out


def test_the_model_summary_has_no_flops_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Lightning printed "Total FLOPs: 0" at every fit (it counts only through an example input)."""
    data = make_dataset(tmp_path / "data", num_videos=4)
    cfg = write_config(tmp_path / "cfg.yaml", data, tmp_path / "run")
    cli_main(["fit", "--config", str(cfg), "--trainer.enable_model_summary", "true", "--trainer.limit_train_batches", "1",
              "--trainer.limit_val_batches", "1"])
    out = capsys.readouterr().out
    assert "Total params" in out and "backbone" in out  # the summary is printed
    assert "FLOPs" not in out and "Trainer already configured with model summary" not in out


# ------------------------------------------------------------------ the documented commands
def test_the_fine_tuning_example_of_the_docs_runs(tmp_path: Path) -> None:
    """docs/training.md's complete fine-tuning example, run as written by bash in a fresh folder,
    made small: 10 videos per class instead of 500, and each fit 1 epoch of 2 batches without
    DataLoader workers (flags added at the end of its line, where later flags win)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "training.md").read_text()
    block = text.split("A complete example on this repository's synthetic data")[1].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = []
    for line in block.replace("\\\n", " ").splitlines():
        line = line.replace("--videos-per-class 500", "--videos-per-class 10")
        if line.startswith(("videoattn fit", "videoattn test")):
            line += " --trainer.max_epochs 1 --trainer.limit_train_batches 2 --data.num_workers 0"
        lines.append(line)
    (tmp_path / "configs").symlink_to(root / "configs")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(lines)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    tuned = torch.load(tmp_path / "runs" / "ft" / "checkpoints" / "last.ckpt", weights_only=True)
    assert tuned["classes"] == ["same_colour", "different_colour"] and tuned["hyper_parameters"]["backbone"] == "i3d_probe_nl"
    demo = torch.load(tmp_path / "runs" / "demo" / "checkpoints" / "last.ckpt", weights_only=True)
    frozen = [k for k, v in demo["state_dict"].items() if "blocks.1." in k and k.endswith("weight")]
    assert frozen and all(torch.equal(demo["state_dict"][k], tuned["state_dict"][k]) for k in frozen)  # the backbone was frozen
    assert "test: 2 videos evaluated, 0 skipped" in done.stdout


def test_every_video_gets_a_row_and_short_ones_are_reported(trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An unreadable file gets a CSV row with its reason (it was missing from the CSV); videos
    shorter than a clip (4 frames at stride 2: 7 frames) are counted, listed and noted in their row."""
    _, run = trained
    folder = tmp_path / "mine"
    folder.mkdir()
    write_video(folder / "a_long.mp4", moving_square_frames(16, 32, 40, seed=40))
    (folder / "b_broken.mp4").write_bytes(b"\0" * 100)
    write_video(folder / "c_one_frame.mp4", moving_square_frames(1, 32, 40, seed=41))
    write_video(folder / "d_three_frames.mp4", moving_square_frames(3, 32, 40, seed=42))
    out = tmp_path / "p.csv"
    cli_main(["predict", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--data.predict", str(folder), "--model.predictions_csv", str(out)])
    rows = list(csv.DictReader(out.open()))
    assert [int(r["video_index"]) for r in rows] == [0, 1, 2, 3]
    assert [Path(r["video"]).name for r in rows] == ["a_long.mp4", "b_broken.mp4", "c_one_frame.mp4", "d_three_frames.mp4"]
    long, broken, one, three = rows
    assert long["note"] == "" and long["pred"] in CLASSES
    assert broken["pred"] == "" and broken["score_1"] == "" and broken["note"].startswith("unreadable: ")
    assert one["pred"] in CLASSES and one["note"] == "short: 1 frames, a clip spans 7 (its last frame repeated)"
    assert three["note"] == "short: 3 frames, a clip spans 7 (its last frame repeated)"
    printed = capsys.readouterr().out
    assert "predict: 3 videos evaluated, 1 skipped as unreadable, 2 shorter than a clip" in printed
    assert f"short {folder / 'c_one_frame.mp4'}: 1 frames" in printed and f"short {folder / 'd_three_frames.mp4'}: 3 frames" in printed


def test_a_list_given_to_predict_is_said_to_be_read_as_a_list(trained: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    """(Lightning's info lines, printed on the console by its own handler, are in caplog under pytest.)"""
    import logging

    cfg, run = trained
    with caplog.at_level(logging.INFO):
        cli_main(["predict", "--config", str(cfg), "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--data.predict", "list.txt"])
    said = [r.getMessage() for r in caplog.records if "is read as a list" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("predict: list.txt is read as a list of videos") and said[0].endswith(": 5 videos")


def test_a_checkpoint_of_a_data_module_made_in_python_loads(trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """KineticsDataModule(clip=ClipSettings(...)) made in Python saves the ClipSettings object in the
    checkpoint: it is a plain value, read with weights_only=True (it was refused as code that would
    run), and predict from that checkpoint alone takes its clip settings."""
    from videoattn.checkpoints import load_checkpoint
    from videoattn.data.clip import ClipSettings

    _, run = trained
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["datamodule_hyper_parameters"]["clip"] = ClipSettings.from_mapping(ckpt["datamodule_hyper_parameters"]["clip"])
    torch.save(ckpt, tmp_path / "python.ckpt")
    assert isinstance(load_checkpoint(tmp_path / "python.ckpt")["datamodule_hyper_parameters"]["clip"], ClipSettings)
    write_video(tmp_path / "mine.mp4", moving_square_frames(16, 32, 40, seed=50))
    cli = cli_main(["predict", "--ckpt_path", str(tmp_path / "python.ckpt"), "--data.predict", str(tmp_path / "mine.mp4")])
    assert cli.datamodule.clip.test_views == (2, 3) and "predict: 1 videos evaluated" in capsys.readouterr().out
