"""DDP on the CPU (gloo) through the CLI, in subprocesses (strategy="ddp" re-launches the
script): a 2-process fit, then multi-view tests and feature extraction with 1 and 2 processes
on an odd number of videos must count every video once and give identical per-video results.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from test_lightning_cli import make_dataset, write_config

from videoattn.lightning_cli import cli_main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "videoattn.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"videoattn {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def test_ddp_fit_then_test_counts_each_video_once_with_any_process_count(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", num_videos=5)  # odd: 3 + 2 videos over 2 processes
    cfg = write_config(tmp_path / "cfg.yaml", data, tmp_path / "run", epochs=1)
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.enable_progress_bar", "false"]
    run_cli("fit", "--config", str(cfg), *ddp, cwd=tmp_path)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=True)
    assert saved["global_step"] == 1  # 5 videos over 2 processes: 3 each (padded), batch 2, drop_last

    outs = {}
    for n in (1, 2):
        outs[n] = tmp_path / f"pred{n}.csv"
        args = ["test", "--config", str(cfg), "--ckpt_path", str(ckpt), "--model.predictions_csv", str(outs[n])]
        if n == 1:  # one process: in this interpreter
            assert cli_main(args).trainer.callback_metrics["test/videos"] == 5
        else:
            proc = run_cli(*args, *ddp, cwd=tmp_path)
            assert "5 videos evaluated, 0 skipped" in proc.stdout, proc.stdout[-2000:]
    one, two = _rows(outs[1]), _rows(outs[2])
    assert [Path(r["video"]).name for r in two] == [f"v{i}.mp4" for i in range(5)]  # each video once, in order
    assert [r["video_index"] for r in one] == [r["video_index"] for r in two]
    for a, b in zip(one, two):
        assert [a[f"class_{k}"] for k in (1, 2, 3)] == [b[f"class_{k}"] for k in (1, 2, 3)]
        for k in (1, 2, 3):
            assert abs(float(a[f"score_{k}"]) - float(b[f"score_{k}"])) < 1e-5

    feats = {}
    for n in (1, 2):
        feats[n] = tmp_path / f"features{n}.npz"
        args = ["extract", "--config", str(cfg), "--ckpt_path", str(ckpt), "--data.predict", "list.txt", "--out", str(feats[n])]
        run_cli(*args, *(ddp if n == 2 else ["--trainer.enable_progress_bar", "false"]), cwd=tmp_path)
    with np.load(feats[1]) as a, np.load(feats[2]) as b:
        assert [Path(v).name for v in b["video"]] == [f"v{i}.mp4" for i in range(5)] and b["features"].shape[0] == 5
        assert (a["video"] == b["video"]).all() and (a["label"] == b["label"]).all()
        np.testing.assert_allclose(a["features"], b["features"], atol=1e-5)


def test_shards_give_the_test_predictions_of_files_on_one_and_two_processes(tmp_path: Path, capsys) -> None:
    """Multi-view test from shards (a local folder, and the same folder as a file:// URL streamed
    through LitData's cache under 2 gloo processes) against from the files: the same rows, each
    video once, and a corrupt entry (written with --check probe) skipped and reported by both."""
    import yaml
    from test_shards import noisy_corrupt

    from videoattn.data.annotations import load_annotations
    from videoattn.data.shards import write_shards

    data = make_dataset(tmp_path / "data", num_videos=5)
    noisy_corrupt(data / "v5.mp4")  # probes, fails to decode in the middle
    with open(data / "list.txt", "a") as f:
        f.write("v5.mp4 archery\n")
    records, classes = load_annotations(str(data / "list.txt"), str(data))
    write_shards(records, data / "shards", classes=classes, check="probe", chunk_bytes=3000, progress=False)
    cfg = write_config(tmp_path / "cfg.yaml", data, tmp_path / "run")
    spec = yaml.safe_load(cfg.read_text())
    spec["data"]["init_args"]["clip"]["test_views"] = [3, 3]  # the middle clip reads the corrupt part
    spec["trainer"]["enable_progress_bar"] = False
    cfg.write_text(yaml.safe_dump(spec))  # no checkpoint: the seeded initial model, the same in every run

    files, local, remote = tmp_path / "files.csv", tmp_path / "local.csv", tmp_path / "remote.csv"
    for source, out in (("list.txt", files), ("shards", local)):
        cli = cli_main(["test", "--config", str(cfg), "--data.test", source, "--model.predictions_csv", str(out)])
        assert cli.trainer.callback_metrics["test/videos"] == 5
        assert "5 videos evaluated, 1 skipped as unreadable" in capsys.readouterr().out
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp"]
    proc = run_cli("test", "--config", str(cfg), "--data.test", f"file://{data / 'shards'}", "--data.shard_cache_dir", str(tmp_path / "cache"),
                   "--model.predictions_csv", str(remote), *ddp, cwd=tmp_path)
    assert "5 videos evaluated, 1 skipped as unreadable" in proc.stdout and "v5.mp4" in proc.stdout, proc.stdout[-2000:]
    rows = {name: _rows(path) for name, path in (("files", files), ("local", local), ("remote", remote))}
    assert [Path(r["video"]).name for r in rows["files"]] == [f"v{i}.mp4" for i in range(6)]  # each video once, in order
    for name, found in rows.items():  # the unreadable one too: its reason, no prediction
        assert found[5]["pred"] == "" and found[5]["note"].startswith("unreadable: ") and not any(r["note"] for r in found[:5]), name
    for name in ("local", "remote"):
        assert [r["video_index"] for r in rows[name]] == [r["video_index"] for r in rows["files"]], name
        for a, b in zip(rows["files"], rows[name]):
            assert (a["video"], a["label"]) == (b["video"], b["label"])
            assert [a[f"class_{k}"] for k in (1, 2, 3)] == [b[f"class_{k}"] for k in (1, 2, 3)], name
            for k in (1, 2, 3) if a["pred"] else ():
                assert abs(float(a[f"score_{k}"]) - float(b[f"score_{k}"])) < 1e-5, name
