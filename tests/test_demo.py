"""`make demo`: scripts/demo.sh runs the relations recipe with the NL preset on a pinned number of
threads, and scripts/demo_summary.py ends it with one line naming the model, its multi-view top-1
and the baseline of the same recipe from the ablation results (docs/results/ablation_relations.jsonl).
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def summary():
    spec = importlib.util.spec_from_file_location("demo_summary_script", ROOT / "scripts" / "demo_summary.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["demo_summary_script"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["demo_summary_script"]


def _predictions(path: Path, correct: int, total: int) -> Path:
    rows = ["video_index,video,label,pred,class_1,score_1"]
    rows += [f"{i},v{i}.mp4,same_colour,x,{'same_colour' if i < correct else 'different_colour'},0.9" for i in range(total)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_last_line_names_model_score_and_where_the_baseline_comes_from(summary, tmp_path: Path, capsys) -> None:
    preds = _predictions(tmp_path / "p.csv", 37, 40)
    full, other = tmp_path / "ablation_relations.jsonl", tmp_path / "other.jsonl"
    runs = [{"variant": "baseline", "model": "i3d_probe", "seed": s, "video_top1": v} for s, v in enumerate((0.49, 0.50, 0.51))]
    other.write_text("".join(json.dumps(r) + "\n" for r in runs + [{"variant": "nl", "video_top1": 0.9}]))
    summary.main([str(preds), "--results", str(full), str(other)])  # the first file that exists
    line = capsys.readouterr().out.strip()
    assert line == (f"demo: i3d_probe_nl multi-view top-1 0.925 (baseline 0.500, from {other}: i3d_probe, same recipe, "
                    "mean of 3 seeds; 40 test videos)")
    full.write_text(json.dumps({"variant": "baseline", "model": "i3d_probe", "video_top1": 0.4}) + "\n")
    summary.main([str(preds), "--results", str(full), str(other)])
    assert "(baseline 0.400, from " + str(full) + ": i3d_probe, same recipe, mean of 1 seeds;" in capsys.readouterr().out
    summary.main([str(preds), "--results", str(tmp_path / "missing.jsonl")])
    assert "baseline not measured" in capsys.readouterr().out


def test_demo_script_pins_threads_and_uses_the_relations_recipe() -> None:
    text = (ROOT / "scripts" / "demo.sh").read_text()
    assert 'export OMP_NUM_THREADS="$threads"' in text and 'threads="${DEMO_THREADS:-2}"' in text
    assert "--task relations" in text and "configs/relations.yaml --config configs/demo.yaml" in text
    assert text.rstrip().splitlines()[-1].startswith("python scripts/demo_summary.py")
    assert "# stack on: configs/relations.yaml" in (ROOT / "configs" / "demo.yaml").read_text()
