"""videoattn.callbacks.block_dynamics and scripts/block_dynamics.py: a short fit with
configs/ablation_actions_long.yaml (which lists the callback) writes one record per epoch with
the blocks' zero-initialised output layers (zero before the first step, moved by training), their
gradients and AdamW scale, the blocks' share of their output and the optimizer's steps; a network
without blocks gets records with no blocks; the script summarises the run folders.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from videoattn.lightning_cli import cli_main
from videoattn.synth import generate_dataset

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "scripts" / "block_dynamics.py"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("dynamics")
    data = tmp / "synth"
    generate_dataset(data, task="actions", videos_per_class=1, split_fractions=(1.0, 0.0, 0.0), frames=(12, 12), workers=1, progress=False)
    out = {}
    for backbone, epochs in (("i3d_tiny_nl", 2), ("i3d_tiny", 1)):
        out[backbone] = tmp / backbone
        cli_main(["fit", "--config", str(ROOT / "configs" / "ablation_actions_long.yaml"), "--model.backbone", backbone,
                  "--data.init_args.root", str(data), "--data.init_args.num_workers", "0", "--trainer.max_epochs", str(epochs),
                  "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false",
                  "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(out[backbone])])
    return out


def test_one_record_per_epoch_with_the_blocks_zero_initialised_layers(runs: dict[str, Path]) -> None:
    records = [json.loads(line) for line in (runs["i3d_tiny_nl"] / "block_dynamics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1] and [r["step"] for r in records] == [1, 2]  # 14 videos: one batch of 8 per epoch
    assert all(0 <= r["train_top1"] <= 1 for r in records)
    blocks = records[-1]["blocks"]
    assert sorted(blocks) == ["backbone.blocks.3.res_blocks.0", "backbone.blocks.4.res_blocks.0"]
    for block in blocks.values():
        assert block["type"] == "NonLocal3d" and list(block["zero_init"]) == ["norm.weight"]  # found zero at the start
        layer = block["zero_init"]["norm.weight"]
        assert layer["norm"] > 0 and layer["grad_norm"] > 0 and layer["adam_sqrt_v"] > 0  # zero at the start, moved by 2 AdamW steps
        assert block["output_share"] > 0
    attention, rest = records[-1]["groups"]["attention"], records[-1]["groups"]["rest"]
    assert 0 < attention["params"] < rest["params"] and attention["lr"] == rest["lr"] == 0  # the cosine's end
    assert records[0]["groups"]["attention"]["lr"] == records[0]["groups"]["rest"]["lr"] > 0
    assert attention["step"] > 0 and rest["step"] > 0 and 0 < attention["relative_step"] < 1


def test_a_network_without_blocks_has_no_block_records(runs: dict[str, Path]) -> None:
    records = [json.loads(line) for line in (runs["i3d_tiny"] / "block_dynamics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and all(r["blocks"] == {} and r["groups"]["attention"]["params"] == 0 for r in records)


def test_the_script_summarises_run_folders(runs: dict[str, Path], tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("block_dynamics_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["block_dynamics_script"] = module
    try:
        spec.loader.exec_module(module)
        text = module.main([str(runs["i3d_tiny_nl"]), str(runs["i3d_tiny"]), "--out", str(tmp_path / "dyn.md")])
        with pytest.raises(SystemExit, match="no block_dynamics.jsonl"):
            module.main([str(tmp_path)])
    finally:
        del sys.modules["block_dynamics_script"]
    assert "| i3d_tiny_nl | 2 |" in text and "NonLocal3d `backbone.blocks.3.res_blocks.0`" in text and "| i3d_tiny | 1 |" in text
    assert (tmp_path / "dyn.md").read_text() == text + "\n"
    assert [json.loads(line)["run"] for line in (tmp_path / "dyn.jsonl").read_text().splitlines()] == ["i3d_tiny_nl", "i3d_tiny"]
