"""The `videoattn` console script: Lightning subcommands (fit, validate, test, predict, and
extract) go to LightningCLI; the tools (models, flops, check-data, shard, synth, visualize,
export) are small modules in videoattn.tools, each with a main(argv), imported only when used.
This module imports nothing but the standard library: `videoattn --help`, `--version` and a
tool's start do not pay for Lightning (about 2 s of imports, torchvision's included).
"""
from __future__ import annotations

import importlib
import sys
import warnings

# deprecation notices that dependencies raise against the torch they run on, with nothing for a
# user of videoattn to change: kept out of the console (the library itself does not filter them).
# Lightning 2.6.6 makes torch's deprecated LeafSpec when it flattens its loaders, at every run
# (not at import); tests/test_cli.py fails once it no longer does, and this filter can go.
DEPENDENCY_NOISE = (
    r".*isinstance\(treespec, LeafSpec\).* is deprecated",  # lightning.pytorch.utilities._pytree
)

TOOLS: dict[str, tuple[str, str]] = {
    "models": ("videoattn.tools.models", "list the registered models"),
    "flops": ("videoattn.tools.flops", "parameters and GFLOPs per view of a model"),
    "check-data": ("videoattn.tools.check_data", "scan a dataset for unreadable videos"),
    "shard": ("videoattn.tools.shard", "write a dataset as LitData shards for clusters"),
    "synth": ("videoattn.tools.synth", "generate a synthetic dataset (--task actions|relations|temporal)"),
    "visualize": ("videoattn.tools.visualize", "render the attention maps of a checkpoint on a video"),
    "export": ("videoattn.tools.export", "export a checkpoint to ONNX or torch.export, checked against PyTorch"),
}
# what each Lightning subcommand does (videoattn.lightning_cli.SUBCOMMANDS says it at the top of their --help)
LIGHTNING = {
    "fit": "train a model from a config",
    "validate": "validation accuracy of a checkpoint",
    "test": "multi-view test accuracy of a checkpoint, per video",
    "predict": "classify videos with a checkpoint",
}
EXTRACT = "per-video embeddings (the classifier's input, mean of the test views) to an .npz"
EXTRACT_USAGE = "usage: videoattn extract --ckpt_path CKPT --data.predict PATH --out FEATURES.npz [predict options]"


def version() -> str:
    """``videoattn X.Y.Z`` and the versions of Python, torch and Lightning (read from the installed
    packages' metadata: nothing is imported)."""
    from importlib import metadata

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    python = ".".join(map(str, sys.version_info[:3]))
    return f"videoattn {installed('videoattn')} (Python {python}, torch {installed('torch')}, lightning {installed('lightning')})"


def _usage() -> str:
    lines = ["usage: videoattn {fit,validate,test,predict,extract} [--config CONFIG.yaml] [--KEY VALUE ...]",
             "       videoattn TOOL [...]", "       videoattn --version", "", "Lightning subcommands (videoattn SUBCOMMAND --help):"]
    lines += [f"  {name:<11} {doc}" for name, doc in LIGHTNING.items()]
    lines += [f"  {'extract':<11} {EXTRACT}", "tools (videoattn TOOL --help):"]
    lines += [f"  {name:<11} {doc}" for name, (_, doc) in TOOLS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run ``videoattn`` with ``argv`` (default: the command line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for pattern in DEPENDENCY_NOISE:
        warnings.filterwarnings("ignore", message=pattern)
    if argv and argv[0] in TOOLS:
        if any(a in ("-h", "--help") for a in argv[1:]):
            print(f"videoattn {argv[0]}: {TOOLS[argv[0]][1]}\n", flush=True)
        module = importlib.import_module(TOOLS[argv[0]][0])
        raise SystemExit(module.main(argv[1:]) or 0)
    if argv and argv[0] == "--version":
        print(version())
        return
    if argv and argv[0] in ("-h", "--help") or not argv:
        print(_usage())
        if not argv:
            raise SystemExit(2)
        return
    if argv[0] == "extract":
        _extract(argv[1:])
        return
    if argv[0] not in LIGHTNING and not argv[0].startswith("-"):
        import difflib

        near = difflib.get_close_matches(argv[0], [*LIGHTNING, "extract", *TOOLS], n=1)
        print(_usage(), file=sys.stderr)
        print(f"videoattn: error: unknown command {argv[0]!r}" + (f"; did you mean {near[0]!r}?" if near else ""), file=sys.stderr)
        raise SystemExit(2)
    from videoattn.lightning_cli import cli_main

    cli_main(argv)


def _extract(argv: list[str]) -> None:
    """``videoattn extract``: a ``predict`` run with a FeatureWriter writing ``--out``."""
    if any(a in ("-h", "--help") for a in argv):
        print(f"videoattn extract: {EXTRACT}\n\n{EXTRACT_USAGE}\n\nEvery `videoattn predict` option applies (see `videoattn predict --help`).")
        return
    out, rest, i = None, [], 0
    while i < len(argv):
        if argv[i] == "--out" and i + 1 < len(argv):
            out, i = argv[i + 1], i + 2
        elif argv[i].startswith("--out="):
            out, i = argv[i][len("--out="):], i + 1
        else:
            rest, i = rest + [argv[i]], i + 1
    if not out:
        print(f"{EXTRACT_USAGE}\nvideoattn extract: error: --out FEATURES.npz is required", file=sys.stderr)
        raise SystemExit(2)
    from videoattn.callbacks import FeatureWriter
    from videoattn.lightning_cli import cli_main

    try:
        writer = FeatureWriter(out)
    except ValueError as err:
        print(f"videoattn extract: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    cli_main(["predict", *rest], callbacks=[writer])


if __name__ == "__main__":
    main()
