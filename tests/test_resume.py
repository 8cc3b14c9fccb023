"""Resuming killed runs, from files and from shards: `videoattn fit` (2 DataLoader workers,
last.ckpt every 2 steps) SIGKILLs itself in the middle of an epoch, is resumed with
`--ckpt_path last`, SIGKILLs itself again at the start of the next epoch (its last checkpoint
written at the epoch's last step), and is resumed again to the end (from files, with 1 and then
0 workers). Every training step of the three processes must see the same videos, the same clips
(augmentation included) and the same learning rate as an uninterrupted run, and the last
weights saved must be the same.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer
from test_ddp import ROOT
from test_lightning_cli import make_dataset, write_config

from videoattn.lightning_cli import cli_main


class RecordBatches(Callback):
    """Appends ``{"step", "epoch", "videos", "clips", "lr"}`` per training batch to a JSON-lines
    file (``clips``: sums of the model's input, which the augmentation changes). With
    $KILL_AT_STEPS="5,7", the process SIGKILLs itself when a batch of such a global step starts,
    once per step (a marker file remembers it across the resumed processes)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.kill_at = {int(s) for s in os.environ.get("KILL_AT_STEPS", "").split(",") if s}

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        marker = Path(f"{self.path}.killed{step}")
        if step in self.kill_at and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)  # as a preempted node: no clean-up of any kind
        video = batch["video"].double()
        record = {
            "step": step,
            "epoch": trainer.current_epoch,
            "videos": batch["video_index"].tolist(),
            "clips": [round(float(video.sum()), 3), round(float((video * video).sum()), 3)],
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
        }
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def _config(tmp: Path, name: str, data: Path, source: str, workers: int = 2) -> Path:
    cfg = write_config(tmp / f"{name}.yaml", data, tmp / name, epochs=3, warmup_epochs=1, backbone_kwargs={"dropout": 0.0})
    spec = yaml.safe_load(cfg.read_text())
    spec["data"]["init_args"].update({"train": source, "num_workers": workers, "persistent_workers": True})
    spec["trainer"]["callbacks"] = [{"class_path": "test_resume.RecordBatches", "init_args": {"path": str(tmp / f"{name}.jsonl")}}]
    spec["trainer"]["enable_progress_bar"] = False
    spec["last_checkpoint"] = {"every_n_train_steps": 2}
    cfg.write_text(yaml.safe_dump(spec))
    return cfg


def _by_step(path: Path) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        out[r["step"]] = r  # a step re-run after a resume replaces the killed run's record
    return out


def _fit(config: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", "OMP_NUM_THREADS": "1", "KILL_AT_STEPS": "5,7"}
    return subprocess.run([sys.executable, "-m", "videoattn.cli", "fit", "--config", str(config), *args], cwd=cwd, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300, check=False)


@pytest.mark.parametrize("source", ["files", "shards"])
def test_a_run_killed_mid_epoch_continues_with_the_very_next_batch(tmp_path: Path, source: str) -> None:
    data = make_dataset(tmp_path / "data", num_videos=6)  # 3 steps per epoch, 9 in all
    train = "list.txt"
    if source == "shards":
        from videoattn.data.annotations import load_annotations
        from videoattn.data.shards import write_shards

        records, classes = load_annotations(str(data / "list.txt"), str(data))
        write_shards(records, data / "shards", classes=classes, chunk_bytes=3000, progress=False)  # several chunks: both workers read
        train = "shards"
    sys.path.insert(0, str(Path(__file__).parent))

    reference = _config(tmp_path, "ref", data, train)
    cli_main(["fit", "--config", str(reference)])
    ref = _by_step(tmp_path / "ref.jsonl")
    assert sorted(ref) == list(range(9))

    run = _config(tmp_path, "run", data, train)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    saved = []
    # files: the resumes run with 1 and then 0 workers (the augmentation is seeded per sample, the
    # sampler's position is the whole state); LitData's shard order depends on the worker count
    workers = (["--data.num_workers", "1"], ["--data.num_workers", "0"]) if source == "files" else ([], [])
    for attempt, args in enumerate(([], ["--ckpt_path", "last", *workers[0]], ["--ckpt_path", "last", *workers[1]])):
        proc = _fit(run, *args, cwd=tmp_path)
        if attempt < 2:
            assert proc.returncode == -signal.SIGKILL, f"run {attempt} was not killed (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
        else:
            assert proc.returncode == 0, proc.stderr[-3000:]
        saved.append(torch.load(last, weights_only=True))
    # killed at the start of step 5 (last.ckpt of step 4: mid-epoch 1), then of step 7 (last.ckpt
    # of step 6, written at the last batch of epoch 1)
    assert [s["global_step"] for s in saved] == [4, 6, 8]  # every 2 steps (Lightning then skips the epoch-end save)
    assert saved[0]["epoch"] == 1 and saved[0]["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["processed"] == 1  # 1 of 3 batches
    assert "train_position" in saved[0]["KineticsDataModule"]  # the train loader's position, kept by the data module
    got = _by_step(tmp_path / "run.jsonl")
    assert sorted(got) == list(range(9))
    for step in range(9):
        assert got[step]["videos"] == ref[step]["videos"], (step, got[step], ref[step])
        assert got[step]["clips"] == pytest.approx(ref[step]["clips"], rel=1e-9), step  # same augmentation
        assert got[step]["lr"] == pytest.approx(ref[step]["lr"], abs=1e-12), step
        assert got[step]["epoch"] == ref[step]["epoch"], step
    final = torch.load(tmp_path / "ref" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    for key, value in saved[-1]["state_dict"].items():
        if value.is_floating_point():
            torch.testing.assert_close(value, final[key], rtol=1e-4, atol=1e-5, msg=key)
