"""scripts/finetune_inserted.py: its --smoke mode pretrains, checks the identity at initialisation on
the checkpoint and fine-tunes both rows through `videoattn fit/test`, writing the JSON lines and the
table; the identity check measures (a block that is not the identity at initialisation fails it);
the table's interval is the ablation's Welch interval.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "scripts" / "finetune_inserted.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("finetune_inserted_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["finetune_inserted_script"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["finetune_inserted_script"]


@pytest.fixture(scope="module")
def smoke(script, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("finetune")
    script.main(["--smoke", "--work", str(work)])
    return work


def test_smoke_pretrains_checks_the_identity_and_fine_tunes_both_rows(smoke: Path) -> None:
    lines = [json.loads(line) for line in (smoke / "finetune_inserted.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in lines] == ["pretrain", "identity", "finetune", "finetune"]
    pretrain, identity, *runs = lines
    assert pretrain["task"] == "relations" and pretrain["model"] == "i3d_probe" and 0 <= pretrain["video_top1"] <= 1
    assert identity["task"] == "temporal" and identity["model"] == "i3d_probe_nl" and identity["videos"] == 4 and identity["views"] == 40
    assert identity["max_abs_logit_diff"] == 0.0  # exactly the pretrained network's logits, on every view
    assert identity["blocks_video_top1"] == identity["plain_video_top1"]
    assert [(r["variant"], r["model"], r["seed"]) for r in runs] == [("plain", "i3d_probe", 0), ("nl", "i3d_probe_nl", 0)]
    assert all(0 <= r["clip_top1"] <= 1 and 0 <= r["video_top1"] <= 1 and r["epochs"] == 1 for r in runs)
    for run in ("plain_seed0", "nl_seed0"):
        log = (smoke / run / "log.txt").read_text()
        assert "--model.weights" in log and str(smoke / "pretrain" / "checkpoints" / "last.ckpt") in log  # both from the checkpoint
    table = (smoke / "finetune_inserted.md").read_text()
    plain, nl = (f"{r['video_top1']:.3f}" for r in runs)
    assert f"| plain (fine-tuned as is) (`i3d_probe`) | {plain} |" in table and f"| +NL inserted, then fine-tuned (`i3d_probe_nl`) | {nl} |" in table
    assert all(r["commit"] and r["machine"] and r["date"] for r in lines)  # each line with its provenance
    assert "largest absolute logit difference 0;" in table


def test_the_identity_check_can_fail(script, smoke: Path) -> None:
    """SE gates the residual branches' channels by a sigmoid (0.5 at initialisation): not the
    identity, and measured so (by little here: after two steps from their zero-initialised last
    norms, the branches carry little)."""
    checkpoint = smoke / "pretrain" / "checkpoints" / "last.ckpt"
    result = script.identity_at_init(checkpoint, "temporal", smoke / "temporal" / "synth", "se")
    assert result["model"] == "i3d_probe_se" and result["max_abs_logit_diff"] > 1e-5


def test_table_interval_is_welch(script, tmp_path: Path) -> None:
    args = script._parser().parse_args(["--out", str(tmp_path / "ft")])
    rows = [{"kind": "finetune", "pretrain_task": "relations", "task": "temporal", "variant": v, "model": m, "seed": s, "clip_top1": acc, "video_top1": acc + 0.01 * s, "train_minutes": 5.0,
             "epochs": None, "threads": 1} for v, m, acc in (("plain", "i3d_probe", 0.5), ("nl", "i3d_probe_nl", 0.9)) for s in (0, 1, 2)]
    text = script.summarise(rows, args)
    assert "| +NL inserted, then fine-tuned (`i3d_probe_nl`) | 0.900 / 0.910 / 0.920 | 0.900 ± 0.000 | 0.910 ± 0.010 | +0.400 [+0.377, +0.423] |" in text
    written = [json.loads(line) for line in (tmp_path / "ft.jsonl").read_text().splitlines()]
    assert [{k: r[k] for k in rows[0]} for r in written] == rows and all("commit" in r and "date" in r for r in written)
    assert script.finetune_table(written) in text  # the table render_docs.py draws from the same lines


def test_unknown_block_is_refused(script) -> None:
    with pytest.raises(SystemExit, match="unknown block 'xl'; valid: nl"):
        script.main(["--block", "xl", "--smoke"])
