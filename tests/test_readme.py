"""The Python snippets of README.md and of the docs' overview pages (docs/index.md,
docs/blocks.md) run as written: every ```python block is executed in a fresh namespace, in a
temporary working directory. (The tutorials' code runs in tests/test_tutorials.py.)
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, ROOT / "docs" / "index.md", ROOT / "docs" / "blocks.md"]
SNIPPETS = [(page.relative_to(ROOT), code) for page in PAGES for code in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)]


def test_readme_has_snippets() -> None:
    assert sum(page == README.relative_to(ROOT) for page, _ in SNIPPETS) >= 1, "README should show a block in a runnable snippet"
    assert len(SNIPPETS) >= 3


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index: int, tmp_path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        page, code = SNIPPETS[index]
        exec(compile(code, f"{page} snippet {index}", "exec"), {"__name__": "__readme__"})
    finally:
        os.chdir(cwd)
