#!/usr/bin/env python
"""MkDocs hooks of the documentation site (mkdocs.yml: hooks): the command-line reference page
(docs/reference/cli.md) gets every `videoattn` subcommand's `--help`, captured when the site is
built, so that it shows the options of the code being documented. The marker
`<!-- cli-reference -->` on that page is replaced.

  python scripts/docs_hooks.py          # print the generated Markdown
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
from typing import Any

MARKER = "<!-- cli-reference -->"
LIGHTNING = ("fit", "validate", "test", "predict")
WIDTH = "100"
OPTION = re.compile(r"^\s{2,}(--[\w.\-]+)", re.M)


def capture_help(subcommand: str) -> str:
    """The text `videoattn SUBCOMMAND --help` prints (``""`` for the top level), at 100 columns."""
    from videoattn import cli

    argv = subcommand.split() if "--data.help" in subcommand else ([subcommand] if subcommand else []) + ["--help"]
    out = io.StringIO()
    saved_argv, saved_columns = sys.argv, os.environ.get("COLUMNS")
    sys.argv, os.environ["COLUMNS"] = ["videoattn", *argv], WIDTH
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            try:
                cli.main(argv)
            except SystemExit as stop:
                if stop.code not in (0, None):
                    raise RuntimeError(f"`videoattn {' '.join(argv)}` exited with {stop.code}") from None
    finally:
        sys.argv = saved_argv
        if saved_columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved_columns
    text = out.getvalue().rstrip()
    if not text:
        raise RuntimeError(f"`videoattn {' '.join(argv)}` printed nothing")
    return text


def _groups(help_text: str) -> list[tuple[str, str]]:
    """An argparse help text cut at its group titles (unindented lines ending with ":")."""
    groups: list[tuple[str, list[str]]] = [("", [])]
    for line in help_text.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith(":") and not line.startswith("usage"):
            groups.append((line.rstrip()[:-1], []))
        else:
            groups[-1][1].append(line)
    return [(title, "\n".join(lines).strip("\n")) for title, lines in groups]


def options(help_text: str) -> list[tuple[str, str]]:
    """(option, description) of every entry of an argparse help text: an entry starts on a line
    indented by two spaces with "-", its description follows after two spaces or on the next,
    more indented lines."""
    entries: list[list[str]] = []
    for line in help_text.splitlines():
        if re.match(r"^  -", line):
            head, _, rest = line.strip().partition("  ")
            entries.append([head.strip(), rest.strip()])
        elif entries and line.startswith("   ") and line.strip():
            entries[-1][1] = (entries[-1][1] + " " + line.strip()).strip()
        elif not line.strip() or not line.startswith(" "):
            if entries and entries[-1][0] != "":
                entries.append(["", ""])  # a blank or unindented line ends the entry
    return [(o, d) for o, d in entries if o]


def split_description(text: str) -> tuple[str, str, str]:
    """(what, type, default) of an entry's description: jsonargparse ends it with
    "(type: T, default: D[, known subclasses: ...])"."""
    text = re.sub(r",? ?known subclasses: [^)]*", "", text)
    match = re.search(r"\(type: (?P<type>.*?), default: (?P<default>.*?)\)\s*$", text)
    if not match:
        return text.strip(), "", ""
    return text[: match.start()].strip(), match.group("type"), match.group("default")


def _cell(text: str) -> str:
    """A table cell: Sphinx roles (:class:`~a.B`) as code, pipes escaped, angle brackets as entities."""
    text = re.sub(r":\w+:`(~?)([\w.]+)`", lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def options_table(entries: list[tuple[str, str]]) -> str:
    """A Markdown table: option, what it does, type, default."""
    rows = ["| option | what | type | default |", "|---|---|---|---|"]
    for option, description in entries:
        what, typ, default = split_description(description)
        names = ", ".join(f"`{name.split()[0]}`" for name in option.split(", ") if name.strip())  # names, not metavars
        rows.append(f"| {names} | {_cell(what)} | {_cell(typ)} | {_cell(default)} |")
    return "\n".join(rows)


def _fence(text: str) -> str:
    return f"```text\n{text}\n```"


def _collapsed(title: str, body: str) -> str:
    return f'??? note "{title}"\n\n' + "\n".join("    " + line if line else "" for line in body.splitlines())


def _by_prefix(entries: list[tuple[str, str]], prefix: str) -> list[tuple[str, str]]:
    return [(o, d) for o, d in entries if any(name.split()[0].startswith(prefix) for name in o.split(", "))]


def lightning_reference(fit_help: str, data_help: str) -> str:
    """`videoattn fit`'s options as tables: general, model (VideoClassifier), data
    (KineticsDataModule), and the Trainer's and checkpointing's, collapsed."""
    entries = options(fit_help)
    general = [(o, d) for o, d in entries if not o.startswith(("--trainer", "--model", "--data", "--checkpoint", "--last_checkpoint",
                                                              "--optimizer", "--lr_scheduler", "-h"))]
    parts = ["## `videoattn fit`",
             "Trains (and validates) a model. `validate`, `test` and `predict` take the same options; each is listed below "
             "with what differs.",
             "### General", options_table(general),
             "### Model: `--model.*` ([`VideoClassifier`](module.md))", options_table(_by_prefix(entries, "--model")),
             "### Data: `--data.*` ([`KineticsDataModule`](data.md#kineticsdatamodule))",
             "The data module is chosen with `--data CLASS` or `data.class_path` in YAML (the synthetic data's "
             "`videoattn.synth.datamodule.SyntheticDataModule` takes the same options); `--data.X` is short for "
             "`--data.init_args.X`.",
             options_table(_by_prefix(options(data_help), "--data"))]
    for title, prefix in (("Trainer: `--trainer.*` (Lightning)", "--trainer"), ("Checkpointing: `--checkpoint.*`", "--checkpoint"),
                          ("Last checkpoint: `--last_checkpoint.*`", "--last_checkpoint"), ("Optimizer", "--optimizer"),
                          ("LR scheduler", "--lr_scheduler")):
        found = _by_prefix(entries, prefix)
        if found:
            parts.append(_collapsed(f"{title}: {len(found)} options", options_table(found)))
    return "\n\n".join(parts)


def _other_lightning(name: str, text: str, fit_options: set[str]) -> str:
    own = set(OPTION.findall(text)) - fit_options
    mine = [(o, d) for o, d in options(text) if any(n.split()[0] in own for n in o.split(", "))]
    missing = sorted(o for o in fit_options - set(OPTION.findall(text)) if not o.startswith(("--trainer", "--checkpoint", "--last_checkpoint",
                                                                                              "--optimizer", "--lr_scheduler")))
    lines = [f"## `videoattn {name}`", "", "The options of `videoattn fit`"
             + (f", except {', '.join(f'`{o}`' for o in missing)}" if missing else "") + (", and:" if mine else ".")]
    if mine:
        lines += ["", options_table(mine)]
    return "\n".join(lines)


def cli_reference() -> str:
    """The Markdown of the command-line reference: the top-level usage, the Lightning
    subcommands' options as tables, each tool's help."""
    from videoattn import cli

    sections = ["## `videoattn`", _fence(capture_help(""))]
    fit_help = capture_help("fit")
    sections.append(lightning_reference(fit_help, capture_help("fit --data.help videoattn.data.KineticsDataModule")))
    fit_options = set(OPTION.findall(fit_help))
    for name in LIGHTNING[1:]:
        sections.append(_other_lightning(name, capture_help(name), fit_options))
    subcommands = ["extract"] + [t for t in getattr(cli, "TOOLS", {}) if t != "extract"]
    for name in subcommands:
        sections.append(f"## `videoattn {name}`\n\n{_fence(capture_help(name))}")
    return "\n\n".join(sections)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:  # MkDocs hook
    """Replace the CLI marker with the generated reference."""
    if MARKER in markdown:
        return markdown.replace(MARKER, cli_reference())
    return markdown


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    print(cli_reference())


if __name__ == "__main__":
    main()
