"""The tutorials (docs/tutorials/*.md) run as written: their ```python and ```bash blocks in
order, in a folder that looks like the repository's root, Python blocks sharing one namespace.
Shell commands follow the rules of tests/docs_support.py (tiny trainer settings appended, the
docs' placeholders mapped, the NOT_RUN commands skipped).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import docs_support as ds


def test_there_are_four_tutorials_with_code() -> None:
    assert len(ds.tutorials()) >= 4
    for page in ds.tutorials():
        assert ds.code_blocks(page, ("python", "bash")), f"{page.name} has no code to run"


@pytest.mark.parametrize("page", ds.tutorials(), ids=lambda p: p.stem)
def test_tutorial_runs(page: Path, docs_world: Path, tmp_path: Path) -> None:
    work = ds.workdir(docs_world, tmp_path / "repo")
    namespace: dict = {"__name__": "__tutorial__"}
    cwd, path, modules = os.getcwd(), list(sys.path), set(sys.modules)
    os.chdir(work)
    try:
        for lang, code, line in ds.code_blocks(page, ("python", "bash")):
            if lang == "python":
                exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
            else:
                ds.run_commands(ds.commands(code, page.name, line), docs_world, work)
    finally:  # what a tutorial imports from scripts/ does not leak into other tests
        os.chdir(cwd)
        sys.path[:] = path
        for name in set(sys.modules) - modules:
            if "scripts" in str(getattr(sys.modules[name], "__file__", "") or ""):
                del sys.modules[name]
