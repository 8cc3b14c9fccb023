"""No figure typed by hand: the tables and quoted figures of README.md and docs/ are what their
results files (docs/results/*.jsonl) render to (scripts/render_docs.py), every results line says
where it comes from, and the renderers compute what the pages claim.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = sorted((ROOT / "docs" / "results").glob("*.jsonl"))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_{name}_under_test", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def render():
    return _load("render_docs")


@pytest.fixture(scope="module")
def results_file():
    return _load("results_file")


def test_every_page_matches_what_its_results_render(render) -> None:
    stale = [f"{page.relative_to(ROOT)}: {name}" for page in render.pages() for name in render.stale(page)]
    assert not stale, "tables or figures that differ from their results files (run `python scripts/render_docs.py`):\n" + "\n".join(stale)


def test_the_pages_render_the_results_they_promise(render) -> None:
    readme = (ROOT / "README.md").read_text()
    assert "<!-- results:ablation-brief:relations -->" in readme and "<!-- results:speed -->" in readme
    names = {name.split(":")[0] for page in render.pages() for name, _ in render.blocks(page.read_text())}
    assert {"ablation", "ablation-runs", "bench-blocks", "bench-data-overhead", "bench-gpu", "bench-models", "bench-predict"} <= names


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.name)
def test_every_results_line_says_where_it_comes_from(path: Path) -> None:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert lines, f"{path.name} is empty"
    for k, line in enumerate(lines, 1):
        missing = {"commit", "machine", "date"} - set(line)  # and "run" where one file holds several runs
        assert not missing, f"{path.name}:{k} lacks {sorted(missing)}"
        assert line["commit"] and line["machine"] and line["date"][:4].isdigit()


def test_a_changed_figure_is_stale_and_rendering_restores_it(render, tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    text = "Intro.\n\n<!-- results:ablation-brief:relations -->\n<!-- /results -->\n\nNL: <!-- results:ablation-delta:relations:nl --><!-- /results -->.\n"
    fresh = render.render_text(text, page)
    assert "| +NL |" in fresh and "NL: <!-- results:ablation-delta:relations:nl -->+0." in fresh
    page.write_text(fresh)
    assert render.stale(page) == []
    page.write_text(fresh.replace("| +NL |", "| +NL (typed) |"))
    assert render.stale(page) == ["ablation-brief:relations"]
    page.write_text(render.render_text(page.read_text(), page))
    assert page.read_text() == fresh


def test_an_unknown_renderer_or_results_file_is_an_error_naming_it(render, tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    with pytest.raises(render.RenderError, match="unknown renderer 'nope'"):
        render.render_text("<!-- results:nope -->\n<!-- /results -->", page)
    with pytest.raises(render.RenderError, match="without its"):
        render.render_text("<!-- results:ablation:relations -->\n", page)
    with pytest.raises(render.RenderError, match="docs/results/ablation_missing.jsonl is missing"):
        render.render_text("<!-- results:ablation:missing -->\n<!-- /results -->", page)


def test_the_ablation_table_is_computed_from_the_runs(render, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = [{"task": "toy", "variant": v, "model": f"i3d_probe{'' if v == 'baseline' else '_' + v}", "seed": s, "clip_top1": acc,
             "video_top1": acc + 0.01 * s, "train_minutes": 1.0, "params_m": 0.4, "gflops": 0.1, "test_views": [10, 1],
             "commit": "abc1234", "machine": "test machine", "date": "2026-01-01T00:00:00+00:00", "run": "r1"}
            for v, acc in (("baseline", 0.5), ("nl", 0.9)) for s in (0, 1, 2)]
    runs.append({**runs[3], "video_top1": 0.1, "run": "r0"})  # an earlier line of (nl, 0) ... then replaced:
    runs.append({**runs[3], "run": "r2"})
    (tmp_path / "ablation_toy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    monkeypatch.setattr(render, "RESULTS", tmp_path)
    table = render.render("ablation:toy", tmp_path / "page.md")
    assert "| +NL (`i3d_probe_nl`) | 3 | 0.900 ± 0.000 | 0.910 ± 0.010 | +0.400 [+0.377, +0.423] |" in table
    assert "commit abc1234; test machine; 2026-01-01" in table
    assert render.render("ablation-delta:toy:nl", tmp_path / "page.md") == "+0.400 [+0.377, +0.423]"
    assert render.render("ablation-mean:toy:baseline", tmp_path / "page.md") == "0.510 ± 0.010"


def test_results_lines_carry_commit_machine_and_date(results_file, tmp_path: Path) -> None:
    path = results_file.write(tmp_path / "bench.jsonl", [{"ratio": 0.5}, {"ratio": 0.7}])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["ratio"] for line in lines] == [0.5, 0.7]
    assert lines[0]["run"] == lines[1]["run"] == lines[0]["date"] and len(lines[0]["commit"]) >= 7
    assert "cores" in lines[0]["machine"]
    results_file.write(tmp_path / "bench.jsonl", [{"ratio": 0.9}], gpu="Some GPU")
    last = results_file.read(tmp_path / "bench.jsonl")[-1]
    assert last["machine"].startswith("Some GPU; ") and len(results_file.read(tmp_path / "bench.jsonl")) == 3
    assert results_file.chosen("none", "bench_x") is None and results_file.chosen(None, "bench_x").name == "bench_x.jsonl"


@pytest.mark.parametrize("script", ["bench_blocks", "bench_data", "bench_gpu", "bench_lr_paths", "bench_models", "bench_predict",
                                    "bench_train_step", "ablation"])
def test_every_benchmark_and_the_ablation_write_a_results_file(script: str) -> None:
    text = (ROOT / "scripts" / f"{script}.py").read_text()
    assert "results_file.add_argument(" in text or '"--results"' in text, f"{script}.py takes no --results"
    assert "results_file.write(" in text or "_results_file()" in text, f"{script}.py writes no results file"
