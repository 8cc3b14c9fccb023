"""The `videoattn` console script: Lightning subcommands (fit, validate, test, predict)
go to LightningCLI; the tools (models, flops, check-data, synth, visualize) are
small modules in videoattn.tools, each with a main(argv), imported only when used.
"""
from __future__ import annotations

import importlib
import sys
import warnings

# deprecation notices that dependencies raise against the torch they run on, with nothing for a
# user of videoattn to change: kept out of the console (the library itself does not filter them)
DEPENDENCY_NOISE = (
    r".*torch\.jit\.script.* is deprecated",  # fvcore / pytorchvideo script helpers at import
    r".*isinstance\(treespec, LeafSpec\).* is deprecated",  # lightning.pytorch.utilities._pytree
)

TOOLS: dict[str, tuple[str, str]] = {
    "models": ("videoattn.tools.models", "list the registered models"),
    "flops": ("videoattn.tools.flops", "parameters and GFLOPs per view of a model"),
    "check-data": ("videoattn.tools.check_data", "scan a dataset for unreadable videos"),
    "shard": ("videoattn.tools.shard", "write a dataset as LitData shards for clusters"),
    "synth": ("videoattn.tools.synth", "generate a synthetic dataset (--task actions|relations)"),
    "visualize": ("videoattn.tools.visualize", "render attention maps of a checkpoint"),
    "export": ("videoattn.tools.export", "export a checkpoint to ONNX or torch.export, checked against PyTorch"),
}
LIGHTNING = ("fit", "validate", "test", "predict")
EXTRACT_USAGE = "usage: videoattn extract --config CONFIG.yaml --ckpt_path CKPT --data.predict PATH --out FEATURES.npz [predict options]"


def _usage() -> str:
    lines = ["usage: videoattn {fit,validate,test,predict} --config CONFIG.yaml [...]", "       videoattn TOOL [...]", "",
             "Lightning subcommands: " + ", ".join(LIGHTNING),
             "  extract     per-video embeddings (the classifier's input, mean of the test views) to an .npz", "tools:"]
    lines += [f"  {name:<11} {doc}" for name, (_, doc) in TOOLS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    for pattern in DEPENDENCY_NOISE:
        warnings.filterwarnings("ignore", message=pattern)
    if argv and argv[0] in TOOLS:
        module = importlib.import_module(TOOLS[argv[0]][0])
        raise SystemExit(module.main(argv[1:]) or 0)
    if argv and argv[0] in ("-h", "--help") or not argv:
        print(_usage())
        if not argv:
            raise SystemExit(2)
        return
    if argv[0] == "extract":
        _extract(argv[1:])
        return
    if argv[0] not in LIGHTNING and not argv[0].startswith("-"):
        print(f"videoattn: unknown command {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        raise SystemExit(2)
    from videoattn.lightning_cli import cli_main

    cli_main(argv)


def _extract(argv: list[str]) -> None:
    """``videoattn extract``: a ``predict`` run with a FeatureWriter writing ``--out``."""
    if any(a in ("-h", "--help") for a in argv):
        print(EXTRACT_USAGE + "\n\nEvery `videoattn predict` option applies (see `videoattn predict --help`).")
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
        print(f"videoattn extract: error: --out FEATURES.npz is required\n{EXTRACT_USAGE}", file=sys.stderr)
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
