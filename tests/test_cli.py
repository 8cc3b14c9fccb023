"""The `videoattn` console script (videoattn.cli): --version, one line saying what each subcommand
does at the top of its --help, errors last with the nearest option or command, and what each
command imports before doing anything (no Lightning for the tools, no torch for --help/--version).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from videoattn.cli import DEPENDENCY_NOISE, LIGHTNING, TOOLS, main

ROOT = Path(__file__).resolve().parents[1]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["--version"], capsys)
    assert code == 0 and out.startswith("videoattn 0.") and "torch 2." in out and "lightning 2." in out


@pytest.mark.parametrize("name", [*LIGHTNING, "extract", *TOOLS])
def test_every_help_says_what_the_subcommand_does_first(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run([name, "--help"], capsys)
    assert code == 0
    first = out.strip().splitlines()[0]
    assert first.startswith(f"videoattn {name}: ") and len(first) > len(f"videoattn {name}: ") + 10, first


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"data": {"class_path": "videoattn.data.KineticsDataModule", "init_args": {"root": str(tmp_path), "train": "t.txt"}}}))
    return path


@pytest.mark.parametrize("wrong,right", [
    ("--trainer.max_epocs", "--trainer.max_epochs"),
    ("--model.learning_rate", None),  # nothing near enough: no suggestion
    ("--model.bakcbone", "--model.backbone"),
    ("--data.init_args.rooot", "--data.root"),
    ("--data.batchsize", "--data.batch_size"),
])
def test_a_misspelled_option_ends_with_the_error_and_the_nearest_option(wrong: str, right: str | None, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["fit", "--config", str(_config(tmp_path)), wrong, "3"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) <= 3, err  # not 97 lines of usage
    assert lines[-1].startswith("videoattn fit: error: ") and wrong.rsplit(".", 1)[-1] in lines[-1], lines[-1]
    if right:
        assert f"did you mean {right}?" in lines[-1], lines[-1]
    else:
        assert "did you mean" not in lines[-1]


def test_no_data_module_says_how_to_give_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["fit", "--data.train", "t.txt"], capsys)
    last = err.strip().splitlines()[-1]
    assert code == 2 and "no data module" in last and "--config" in last and "--ckpt_path" in last, err


def test_an_unknown_command_suggests_the_nearest(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["predcit"], capsys)
    assert code == 2 and err.strip().splitlines()[-1] == "videoattn: error: unknown command 'predcit'; did you mean 'predict'?"


def _imported(argv: list[str]) -> set[str]:
    """The top-level packages `videoattn ARGV` has imported when it returns (a fresh process)."""
    code = ("import sys\nfrom videoattn.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('MODULES', ' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT, timeout=300)
    line = next(line for line in done.stdout.splitlines() if line.startswith("MODULES "))
    return set(line.split()[1:])


def test_what_each_command_imports_before_doing_anything() -> None:
    """--help and --version import no torch; the tools no Lightning (whose import brings torchmetrics,
    torchvision and torch._dynamo: about 2 s); check-data --help no torchvision either."""
    for argv in (["--help"], ["--version"]):
        assert "torch" not in _imported(argv), argv
    assert "lightning" not in _imported(["models"])
    check_data = _imported(["check-data", "--help"])
    assert "lightning" not in check_data and "torchvision" not in check_data


def test_importing_the_cli_raises_no_warning() -> None:
    """No deprecation warning on the import path, with no filter at all (-W error)."""
    subprocess.run([sys.executable, "-W", "error", "-c", "import videoattn.cli, videoattn.lightning_cli"], check=True, cwd=ROOT, timeout=300)


def test_the_lightning_pytree_filter_is_still_needed() -> None:
    """cli.py filters one dependency warning: Lightning 2.6.6 makes torch's deprecated LeafSpec when it
    flattens its loaders (at run time, not at import). When this fails, Lightning stopped: remove
    the filter from DEPENDENCY_NOISE."""
    from lightning.pytorch.utilities._pytree import _tree_flatten

    with pytest.warns(FutureWarning, match=DEPENDENCY_NOISE[0]):
        _tree_flatten({"train": [1, 2]})
