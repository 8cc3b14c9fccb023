"""scripts/bench_gpu.py --smoke: the GPU benchmark's code (models in four variants, NL blocks,
data loaders from files and shards, decoding backends) runs on the CPU at tiny sizes and
prints every part; decoders give PyAV's frames."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_gpu.py"


def test_smoke_run_prints_every_part(tmp_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(SCRIPT.parents[1]))
    run = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=400, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    for header in ("[models]", "[blocks]", "[data]", "[decode]"):
        assert header in out, out
    number = r"\d+\.\d+"
    for variant in ("fp32", "bf16-mixed", "channels_last_3d", "compile"):
        row = re.search(rf"^  {variant} +(\S+) +(\S+) ", out, flags=re.M)
        assert row, (variant, out)
        for column, model in zip(row.groups(), ("pytorchvideo", "videoattn")):  # a time, or the failure said
            assert re.fullmatch(number, column) or f"{variant} FAILED for {model}: " in out, (variant, model, out)
    assert re.search(rf"^  fp32 +{number} +{number} ", out, flags=re.M)  # the plain step runs for both
    for frames in (2, 4):
        assert re.search(rf"^  {frames} +{number} +{number} ", out, flags=re.M), out
    assert re.search(rf"from files +{number} clips/s; from shards +{number} clips/s", out)
    decoders = re.findall(r"^  (pyav cpu|torchcodec cpu) +\S+ clips/s +max \|frames - PyAV\| = (\d+)$", out, flags=re.M)
    assert ("pyav cpu", "0") in decoders and all(diff == "0" for _, diff in decoders), out
