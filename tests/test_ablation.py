"""scripts/ablation.py: rows come from the block registry, Welch's t interval against tabulated
quantiles, and the summary (table, chart, JSON lines) written from per-run results.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from videoattn.blocks import list_blocks
from videoattn.models import list_models

SCRIPT = Path(__file__).parent.parent / "scripts" / "ablation.py"


@pytest.fixture(scope="module")
def ablation():
    spec = importlib.util.spec_from_file_location("ablation_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ablation_script"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules["ablation_script"]


def test_every_registered_block_is_a_row_with_a_preset_on_both_tiny_backbones(ablation) -> None:
    assert ablation.variants() == ["baseline", *list_blocks()]
    for task in ablation.TASKS.values():
        for variant in ablation.variants():
            assert ablation.model_name(task.backbone, variant) in list_models()
    assert ablation.label("cgnl") == "+CGNL" and ablation.model_name("i3d_probe", "baseline") == "i3d_probe"


@pytest.mark.parametrize("df, expected", [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (10, 2.2281), (30, 2.0423), (1000, 1.9623)])
def test_t_quantiles_match_the_tables(ablation, df: float, expected: float) -> None:
    assert ablation.t_quantile(0.975, df) == pytest.approx(expected, abs=2e-4)


def test_welch_interval(ablation) -> None:
    # equal variances and sizes: Welch's df = 2n - 2 = 4; se = sqrt(2 * 0.01**2 / 3)
    d, lo, hi = ablation.welch_ci([0.90, 0.91, 0.92], [0.50, 0.51, 0.52])
    half = 2.7764 * (2 * 0.01**2 / 3) ** 0.5
    assert d == pytest.approx(0.40) and lo == pytest.approx(0.40 - half, abs=1e-4) and hi == pytest.approx(0.40 + half, abs=1e-4)
    d, lo, hi = ablation.welch_ci([0.5, 0.6, 0.7], [0.55, 0.6, 0.65])
    assert lo < 0 < hi  # a noisy difference: the interval covers 0
    assert ablation.welch_ci([1.0, 1.0], [0.5, 0.5]) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="at least 2 values per group"):
        ablation.welch_ci([1.0], [0.5, 0.6])


def test_summary_table_chart_page_and_results_file(ablation, tmp_path: Path) -> None:
    data = tmp_path / "synth"
    data.mkdir()
    (data / "classes.txt").write_text("".join(f"c{i}\n" for i in range(8)))
    for split, n in (("train", 14), ("val", 2), ("test", 4)):
        (data / f"{split}.csv").write_text("".join(f"v{i}.mp4 0\n" for i in range(n)))
    results = [{"task": "relations", "variant": v, "model": ablation.model_name("i3d_probe", v), "seed": s,
                "clip_top1": acc - 0.05, "video_top1": acc + 0.01 * s, "train_minutes": 5.0 + s, "epochs": None, "threads": 1}
               for v, acc in (("baseline", 0.5), ("nl", 0.9)) for s in (0, 1, 2)]
    args = ablation._parser().parse_args(["--task", "relations", "--jobs", "2"])
    args.data, args.out, args.results = data, str(tmp_path / "docs" / "ablation_relations"), str(tmp_path / "results.jsonl")
    text = ablation.summarise(results, args, ablation.TASKS["relations"])
    assert "| +NL (`i3d_probe_nl`) | 3 | 0.850 ± 0.000 | 0.910 ± 0.010 | +0.400 [+0.377, +0.423] | +0.400 [+0.400, +0.400] |" in text
    assert "| baseline (`i3d_probe`) | 3 |" in text
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [{k: line[k] for k in results[0]} for line in lines] == results  # every run, as measured
    assert {"commit", "machine", "date", "params_m", "gflops", "config", "dataset", "max_epochs"} <= set(lines[0])
    assert lines[0]["dataset"] == {"train": 14, "val": 2, "test": 4} and lines[0]["max_epochs"] == 10
    assert (tmp_path / "docs" / "ablation_relations.png").stat().st_size > 1000
    page = (tmp_path / "docs" / "ablation_relations.md").read_text()  # made from the template, markers to render
    assert "<!-- results:ablation:relations -->" in page and "<!-- results:ablation-runs:relations -->" in page
    assert ablation.summary_table(lines) == text
    ablation.summarise(results, args, ablation.TASKS["relations"])  # summarised again: nothing added
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == len(results)


def test_latest_run_of_a_variant_and_seed_replaces_the_earlier(ablation) -> None:
    runs = [{"variant": "nl", "seed": 0, "video_top1": 0.5}, {"variant": "nl", "seed": 1, "video_top1": 0.6},
            {"variant": "nl", "seed": 0, "video_top1": 0.9}]
    assert ablation.latest_runs(runs) == [runs[2], runs[1]]
    assert ablation.delta([{"variant": "baseline", "video_top1": 0.5}], "baseline") == "—"


def test_unknown_variant_is_refused(ablation) -> None:
    with pytest.raises(SystemExit, match="unknown variant.*'?xl'?.*valid: baseline, nl"):
        ablation.main(["--task", "relations", "--variants", "baseline", "xl"])
