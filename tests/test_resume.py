"""Resuming a killed run: `videoattn fit` is SIGKILLed after its first checkpoint, then
`--ckpt_path last` finishes its epochs; the steps after the resume see the same videos in
the same order and the same learning rates as an uninterrupted run.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer
from test_ddp import ROOT
from test_lightning_cli import make_dataset, write_config

from videoattn.lightning_cli import cli_main


class RecordBatches(Callback):
    """Appends ``{"step", "epoch", "videos", "lr"}`` per training batch to a JSON-lines file,
    sleeping $RECORD_DELAY seconds per batch (to leave time to kill the run)."""

    def __init__(self, path: str) -> None:
        self.path, self.delay = path, float(os.environ.get("RECORD_DELAY", "0"))

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        record = {
            "step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "videos": batch["video_index"].tolist(),
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
        }
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        time.sleep(self.delay)


def _config(tmp: Path, name: str, data: Path) -> Path:
    cfg = write_config(tmp / f"{name}.yaml", data, tmp / name, epochs=3, warmup_epochs=1, backbone_kwargs={"dropout": 0.0})
    spec = yaml.safe_load(cfg.read_text())
    spec["trainer"]["callbacks"] = [{"class_path": "test_resume.RecordBatches", "init_args": {"path": str(tmp / f"{name}.jsonl")}}]
    spec["trainer"]["enable_progress_bar"] = False
    cfg.write_text(yaml.safe_dump(spec))
    return cfg


def _by_step(path: Path) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        out[r["step"]] = r  # a step re-run after the resume replaces the killed run's record
    return out


def test_sigkilled_run_resumes_from_last_and_continues_schedule_and_data_order(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", num_videos=6)  # 3 steps per epoch, 9 in all
    sys.path.insert(0, str(Path(__file__).parent))

    reference = _config(tmp_path, "ref", data)
    cli_main(["fit", "--config", str(reference)])
    ref = _by_step(tmp_path / "ref.jsonl")
    assert sorted(ref) == list(range(9))

    killed = _config(tmp_path, "run", data)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", "OMP_NUM_THREADS": "1", "RECORD_DELAY": "0.5"}
    proc = subprocess.Popen([sys.executable, "-m", "videoattn.cli", "fit", "--config", str(killed)], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 180
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the run was not killed mid-way (rc {proc.returncode}):\n{err[-3000:]}"
    before = torch.load(last, weights_only=True)
    assert before["global_step"] < 9

    cli_main(["fit", "--config", str(killed), "--ckpt_path", "last"])
    after = torch.load(last, weights_only=True)
    assert after["epoch"] == 2 and after["global_step"] == 9
    run = _by_step(tmp_path / "run.jsonl")
    assert sorted(run) == list(range(9))
    for step in range(9):
        assert run[step]["videos"] == ref[step]["videos"], step
        assert abs(run[step]["lr"] - ref[step]["lr"]) < 1e-9, step
