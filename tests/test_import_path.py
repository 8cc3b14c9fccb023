"""videoattn stands on maintained ground: in a fresh interpreter where pytorchvideo and fvcore
cannot be imported, ``videoattn``, ``videoattn.models``, ``videoattn.module`` and ``videoattn.cli``
import without a warning and every registered model (backbones, LR-Nets, presets) builds and runs
a forward pass; ``python -W error`` imports them (no filter of ours hides a dependency's
warning); and no source file of ``videoattn/`` uses TorchScript (``torch.jit``).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCKED = ("pytorchvideo", "fvcore")

# Run first in the child: a meta path finder that refuses the blocked packages, as if not installed.
BLOCKER = f"""
import sys

class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, _Blocked())
"""

EVERY_MODEL = BLOCKER + textwrap.dedent("""
    import time
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation (or other) warning on the import path
        import videoattn
        import videoattn.models
        import videoattn.module
        import videoattn.cli
        import videoattn.lightning_cli
    import torch
    from videoattn.models import create_model, get_model_entry, list_models

    torch.set_num_threads(1)
    names = list_models()
    for name in names:
        frames = (2, 8) if len(get_model_entry(name).frames) == 2 else (2,)  # slow 2 + fast 8 (alpha 4)
        x = [torch.randn(1, 3, t, 32, 32) for t in frames]
        with torch.no_grad():
            out = create_model(name, num_classes=3).eval()(x if len(x) == 2 else x[0])
        assert out.shape == (1, 3) and torch.isfinite(out).all(), (name, out)
    loaded = sorted(m for m in sys.modules if m.partition(".")[0] in {blocked!r})
    assert not loaded, loaded
    print("built and ran", len(names), "models")
""").replace("{blocked!r}", repr(BLOCKED))


def _run(script: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_blocker_blocks() -> None:
    """The child really cannot import the blocked packages (they are installed in the test env)."""
    for name in BLOCKED:
        done = _run(BLOCKER + f"import {name}", timeout=60)
        assert done.returncode != 0 and "blocked by the test" in done.stderr, done.stderr


def test_every_model_builds_and_runs_without_pytorchvideo_and_fvcore() -> None:
    from videoattn.models import list_models

    done = _run(EVERY_MODEL, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"built and ran {len(list_models())} models" in done.stdout


def test_imports_pass_with_warnings_as_errors() -> None:
    """`python -W error -c "import videoattn.cli, videoattn.models, videoattn.module"`: no
    deprecation (or other) warning on the import path, in a plain interpreter (the test
    environment, pytorchvideo and fvcore installed)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-W", "error", "-c", "import videoattn.cli, videoattn.models, videoattn.module"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def test_no_torchscript_in_videoattn() -> None:
    """No ``torch.jit`` (scripting, tracing, ``is_scripting``...) anywhere in videoattn/."""
    pattern = re.compile(r"torch\.(_C\._)?jit|from\s+torch\s+import\s[^\n]*\bjit\b")
    files = sorted((ROOT / "videoattn").rglob("*.py"))
    assert len(files) > 40
    hits = [f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
            for path in files for i, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, "\n".join(hits)
