"""Every shell command of README.md and docs/ runs, on synthetic data, as tests/docs_support.py
says (placeholders mapped to the test's files, tiny settings appended to training commands),
page by page in a folder that looks like the repository's root; or it is listed in NOT_RUN with
the reason. The tutorials' commands run in tests/test_tutorials.py.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import docs_support as ds

PAGES = [p for p in ds.pages() if any(not c.not_run() for _, code, line in ds.code_blocks(p) for c in ds.commands(code))]


def test_commands_are_cut_as_a_shell_reads_them() -> None:
    code = "# a comment\nvideoattn fit --config a.yaml \\\n    --data.root /x   # trailing\ncat > f.yaml <<'EOF'\nmodel: {a: 1}  # kept\nEOF\necho '#not a comment'\n"
    cmds = ds.commands(code)
    assert [c.text for c in cmds] == ["videoattn fit --config a.yaml --data.root /x", "cat > f.yaml <<'EOF'\nmodel: {a: 1}  # kept\nEOF",
                                      "echo '#not a comment'"]
    assert [c.line for c in cmds] == [2, 4, 7]


def test_training_commands_get_tiny_settings_and_the_tiny_backbone(tmp_path: Path) -> None:
    run = ds.rewrite("videoattn fit --config configs/k400_i3d_r50.yaml --config configs/k400_i3d_r50_nl.yaml --data.root /data/kinetics400",
                     tmp_path / "world", tmp_path / "work")
    assert f"--data.root {tmp_path / 'work' / 'kinetics400'} " in run
    assert run.endswith("--model.backbone i3d_tiny_nl") and "--trainer.max_epochs 1" in run and "--trainer.limit_train_batches 2" in run
    assert ds.tiny_backbone("slowfast_r50") == "slowfast_tiny" and ds.tiny_backbone("slowfast_r50_gc") == "slowfast_tiny"
    assert ds.tiny_backbone("i3d_r50_gc") == "i3d_tiny_gc" and ds.tiny_backbone("c2d_r50") == "i3d_tiny"
    assert ds.rewrite("videoattn check-data a.csv -j 32", tmp_path, tmp_path) == "videoattn check-data a.csv -j 2"
    assert ds.rewrite("head -3 x.csv", tmp_path, tmp_path) == "head -3 x.csv"


def test_every_not_run_entry_still_matches_a_command() -> None:
    """The list of commands not run cannot go stale: each entry must match a command of the docs."""
    texts = [c.text for c in ds.all_commands()]
    unused = [(pattern, reason) for pattern, reason in ds.NOT_RUN if not any(re.search(pattern, t) for t in texts)]
    assert not unused, f"NOT_RUN entries that match no command of README.md or docs/ (remove them): {unused}"


def test_the_docs_have_commands_to_run() -> None:
    names = {p.name for p in PAGES}
    assert {"README.md", "training.md", "getting_started.md"} <= names, names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ds.ROOT)))
def test_page_commands_run(page: Path, docs_world: Path, tmp_path: Path) -> None:
    """A page's commands, in order, in a folder of their own that looks like the repository's root."""
    work = ds.workdir(docs_world, tmp_path / "repo")
    cmds = [c for _, code, line in ds.code_blocks(page) for c in ds.commands(code, str(page.relative_to(ds.ROOT)), line)]
    timings = ds.run_commands(cmds, docs_world, work)
    assert timings, f"{page}: no command ran"
    if os.environ.get("DOCS_TIMINGS"):
        ds.record_timings(Path(os.environ["DOCS_TIMINGS"]), timings)
