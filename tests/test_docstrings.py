"""Every public name of videoattn.blocks, videoattn.models and videoattn.data (their ``__all__``)
has a docstring, which the API reference (docs/reference/, mkdocstrings) shows; and every option
of the command line (the arguments of VideoClassifier, KineticsDataModule and ClipSettings) has
its own entry in an ``Args:`` section, which both the reference and `videoattn fit --help` show.
Read statically with griffe, as mkdocstrings reads them.
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import griffe  # the docs extra (pip install -e ".[docs]"; `make test` installs it)
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("videoattn.blocks", "videoattn.models", "videoattn.data")
CLI_CLASSES = ("videoattn.module.VideoClassifier", "videoattn.data.datamodule.KineticsDataModule", "videoattn.data.clip.ClipSettings")


@pytest.fixture(scope="module")
def package():
    loader = griffe.GriffeLoader(docstring_parser=griffe.Parser.google, search_paths=[str(ROOT)])
    videoattn = loader.load("videoattn")
    loader.resolve_aliases(implicit=False, external=False)
    return videoattn


def _docstring(package, module_name: str, name: str) -> str:
    """The docstring the reference shows for ``module_name.name``; a name that only exists at
    run time (a lazy module ``__getattr__``) is read from the imported object."""
    module = package[module_name.split(".", 1)[1]]
    try:
        obj = module[name]
        target = obj.final_target if obj.is_alias else obj
        return target.docstring.value if target.docstring else ""
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        runtime = getattr(importlib.import_module(module_name), name)
        return runtime.__dict__.get("__doc__") or "" if isinstance(runtime, type) else runtime.__doc__ or ""


@pytest.mark.parametrize("module_name", PACKAGES)
def test_every_public_name_has_a_docstring(package, module_name: str) -> None:
    names = importlib.import_module(module_name).__all__
    assert names, f"{module_name} has an empty __all__"
    missing = [name for name in names if not _docstring(package, module_name, name).strip()]
    assert not missing, f"{module_name}: public names without a docstring: {missing}"


def _args_section(obj) -> set[str]:
    names: set[str] = set()
    for holder in (obj, obj.members.get("__init__")):
        if holder is not None and holder.docstring:
            for section in holder.docstring.parse(griffe.Parser.google):
                if section.kind.value == "parameters":
                    names |= {p.name for p in section.value}
    return names


@pytest.mark.parametrize("path", CLI_CLASSES)
def test_every_command_line_option_is_documented(package, path: str) -> None:
    obj = package[path.split(".", 1)[1]]
    module_name, _, class_name = path.rpartition(".")
    runtime = getattr(importlib.import_module(module_name), class_name)
    if dataclasses.is_dataclass(runtime):
        params = [field.name for field in dataclasses.fields(runtime)]
    else:
        init = obj.members["__init__"]
        params = [p.name for p in init.parameters if p.name != "self" and p.kind.value not in ("variadic positional", "variadic keyword")]
    assert params, f"{path}: no parameters found"
    documented = _args_section(obj)
    missing = [p for p in params if p not in documented]
    assert not missing, f"{path}: options without their own `Args:` entry: {missing}"


def _public_objects(package):
    """The griffe objects of the command-line classes and of every public name of PACKAGES."""
    objects = [package[path.split(".", 1)[1]] for path in CLI_CLASSES]
    for module_name in PACKAGES:
        module = package[module_name.split(".", 1)[1]]
        for name in importlib.import_module(module_name).__all__:
            try:
                obj = module[name]
                objects.append(obj.final_target if obj.is_alias else obj)
            except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                continue  # a run-time name (lazy __getattr__): its docstring is checked above
    return objects


def test_the_docstrings_parse_without_warnings(package, caplog: pytest.LogCaptureFixture) -> None:
    """What mkdocs build --strict stops on: an Args entry that names no parameter, or a parameter
    documented without a type, in the public API the reference shows (a warning found once by
    the build, "Parameter 'format, subset, split' does not appear in the function signature")."""
    import logging

    caplog.set_level(logging.WARNING, logger="griffe")
    for obj in _public_objects(package):
        for holder in (obj, getattr(obj, "members", {}).get("__init__")):
            if holder is not None and holder.docstring:
                holder.docstring.parse(griffe.Parser.google)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not warnings, warnings
