"""`videoattn fit|validate|test|predict` (and `extract`): LightningCLI over VideoClassifier and any
LightningDataModule given by class_path (the recipes use KineticsDataModule), with the project's
defaults: the data module's classes linked to the model, best + last checkpoints in
<root>/checkpoints (so `--ckpt_path last` finds them across runs), CSV (+ TensorBoard if
installed) logging with the learning rate (LearningRateMonitor), a rich progress bar, no
Lightning DistributedSampler (the data module shards without padding), and one-line messages
instead of tracebacks for bad config values and refused checkpoints.

With a checkpoint file (`--ckpt_path`), the model's architecture and class names come from it:
the data module is given the checkpoint's classes, so `test` and `predict` need only their own
list (no train list, no class-list file), and a label outside them is an error naming it. When
no config gives a data module, `validate`, `test` and `predict` take the checkpoint's (its class
and settings, the clip's included), so `videoattn predict --ckpt_path CKPT --data.predict
VIDEO` needs nothing else. Evaluation runs write no checkpoint, and predict no logs.

Errors in the command line end in a short usage line and the error last, with the nearest
option for a misspelled one.
"""
from __future__ import annotations

import difflib
import json
import logging
import os
import re
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import torch
import yaml
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, ModelSummary, ProgressBar, RichModelSummary, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, Logger

from videoattn.checkpoints import CheckpointError, load_checkpoint
from videoattn.module import RUN_OPTIONS, NonFiniteLossError, VideoClassifier

__all__ = ["SUBCOMMANDS", "VideoCLI", "cli_main", "checkpoint_data_config"]

# --ckpt_path values that the Trainer resolves itself (anything else must be a file or a URL)
LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")
# what each subcommand does: the first line of its --help
SUBCOMMANDS = {
    "fit": "train a model (and validate it every few epochs): videoattn fit --config CONFIG.yaml",
    "validate": "the validation accuracy of a checkpoint: videoattn validate --ckpt_path CKPT [--data.root ROOT --data.val LIST]",
    "test": "multi-view test accuracy of a checkpoint, per video: videoattn test --ckpt_path CKPT --data.root ROOT --data.test LIST",
    "predict": "classify videos with a checkpoint: videoattn predict --ckpt_path CKPT --data.predict VIDEO|FOLDER|GLOB|LIST",
}
EVALUATION = ("validate", "test", "predict")
# the data locations of the run that wrote a checkpoint: not settings of its model
_DATA_LOCATIONS = ("root", "train", "val", "test", "predict", "shard_cache_dir")
_CLIP_KEYS = ("num_frames", "sampling_rate", "target_fps", "short_video", "train_short_side", "crop_size", "flip", "clips_per_video",
              "test_short_side", "test_crop_size", "test_views", "slowfast_alpha", "mean", "std")
# Lightning's info lines with nothing for a user to do: its advertisement at every Trainer made without
# LitLogger, and the note that our model summary replaces its default one
QUIET_INFO = ("Tip: For seamless cloud logging", "Trainer already configured with model summary callbacks")


def _checkpoint_dir(root: str | None) -> str:
    return os.path.join(root or ".", "checkpoints")


def default_loggers(root: str | None) -> list[Logger]:
    """CSV always, TensorBoard too when the ``tensorboard`` package is installed."""
    root = root or "."
    loggers: list[Logger] = [CSVLogger(root, name="logs")]
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return loggers
    from lightning.pytorch.loggers import TensorBoardLogger

    loggers.append(TensorBoardLogger(root, name="tb"))
    return loggers


def _fail(subcommand: str | None, message: str) -> NoReturn:
    print(f"videoattn {subcommand or ''}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def checkpoint_data_config(checkpoint: Mapping[str, Any]) -> dict[str, Any] | None:
    """The data module a checkpoint was trained with, as a ``data`` config (``class_path``,
    ``init_args``): its clip settings, batch sizes, workers and decoder, with the checkpoint's
    class names as ``classes`` and without the data locations of that run (``root`` is the
    current folder, no train/val/test/predict source). None if the checkpoint has no data settings."""
    saved = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    if not saved:
        return None
    saved.pop("_instantiator", None)
    class_path = saved.pop("_class_path", None) or "videoattn.data.KineticsDataModule"
    init = {k: v for k, v in saved.items() if k not in _DATA_LOCATIONS and k not in _CLIP_KEYS}
    clip = saved.get("clip")
    if clip is None and any(k in saved for k in _CLIP_KEYS):  # older checkpoints: the clip settings flat
        clip = {k: saved[k] for k in _CLIP_KEYS if k in saved}
    if clip is not None and not isinstance(clip, Mapping):  # a ClipSettings (data module made in Python)
        clip = {k: getattr(clip, k) for k in _CLIP_KEYS if hasattr(clip, k)}
    if clip is not None:
        init["clip"] = dict(clip)
    hp = checkpoint.get("hyper_parameters") or {}
    names = hp.get("class_names") or checkpoint.get("classes")
    if names:
        init["classes"] = list(names)
    return {"class_path": class_path, "init_args": json.loads(json.dumps(init, default=list))}


def _option_value(argv: list[str], names: tuple[str, ...]) -> list[str]:
    """The values of options ``names`` in ``argv`` (``--name VALUE`` or ``--name=VALUE``)."""
    values = []
    for i, arg in enumerate(argv):
        if arg in names and i + 1 < len(argv):
            values.append(argv[i + 1])
        elif "=" in arg and arg.split("=", 1)[0] in names:
            values.append(arg.split("=", 1)[1])
    return values


def _config_gives_data(value: str, folder: Path, depth: int = 0) -> bool:
    """Whether a ``--config`` value (a file, or YAML text) has a ``data`` section, itself or in
    the configs it includes (a ``config:`` key, relative to its own folder)."""
    path = folder / value if not os.path.isabs(value) else Path(value)
    try:
        content = yaml.safe_load(path.read_text() if path.is_file() else value)
    except (OSError, yaml.YAMLError):
        return False
    if not isinstance(content, Mapping):
        return False
    if "data" in content:
        return True
    included = content.get("config") or []
    included = [included] if isinstance(included, str) else included
    base = path.parent if path.is_file() else folder
    return depth < 8 and any(_config_gives_data(str(c), base, depth + 1) for c in included if isinstance(c, str))


def _gives_data(argv: list[str]) -> bool:
    """Whether the command line names a data module (``--data``, ``--data.class_path`` or a config with ``data:``)."""
    if any(a in ("--data", "--data.class_path") or a.startswith(("--data=", "--data.class_path=")) for a in argv):
        return True
    return any(_config_gives_data(v, Path.cwd()) for v in _option_value(argv, ("-c", "--config")))


class _QuietInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.getMessage())
        return not any(text in message for text in QUIET_INFO)


class VideoProgressBar(RichProgressBar):
    """Lightning's rich progress bar, its last frame drawn when an evaluation run ends: what follows
    (Lightning's table of test metrics, the video report) prints below it, not above."""

    def _stop(self, trainer: Any) -> None:
        if self.progress is not None and trainer.state.fn in EVALUATION:
            self.progress.stop()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_validation_end(trainer, pl_module)
        self._stop(trainer)

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_test_end(trainer, pl_module)
        self._stop(trainer)

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_predict_end(trainer, pl_module)
        self._stop(trainer)


class VideoModelSummary(RichModelSummary):
    """Lightning's rich model summary without its FLOPs column and total: Lightning counts FLOPs only
    through an example input (it printed "Total FLOPs: 0" without one) and two per multiply-add;
    ``videoattn flops NAME`` gives a model's count per view."""

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int, model_size: float,
                  total_training_modes: dict[str, int], total_flops: int = 0, **summarize_kwargs: Any) -> None:
        from lightning.pytorch.utilities.model_summary.model_summary import get_formatted_model_size, get_human_readable_count
        from rich import get_console
        from rich.table import Table

        columns = [(name, values) for name, values in summary_data if name != "FLOPs"]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        for i, (name, _) in enumerate(columns):
            table.add_column(" " if i == 0 else name, style="dim" if i == 0 else None, justify="right" if name not in ("Name", "Type", "Mode") and i else "left")
        for row in zip(*(values for _, values in columns)):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        grid = Table.grid(expand=True)
        grid.add_column()
        for label, value in (("Trainable params", get_human_readable_count(int(trainable_parameters))),
                             ("Non-trainable params", get_human_readable_count(int(total_parameters - trainable_parameters))),
                             ("Total params", get_human_readable_count(int(total_parameters))),
                             ("Total estimated model params size (MB)", get_formatted_model_size(model_size)),
                             ("Modules in train mode", total_training_modes["train"]), ("Modules in eval mode", total_training_modes["eval"])):
            grid.add_row(f"[bold]{label}[/]: {value}")
        console.print(grid)


# ------------------------------------------------------------------------- command-line errors
def _options(parser: Any) -> list[str]:
    return [o for action in parser._actions for o in action.option_strings if o.startswith("--")]


def _init_args(class_path: str) -> list[str]:
    """The constructor arguments of ``class_path`` (already imported by the parser), and the fields of
    its dataclass-typed arguments as ``arg.field``."""
    import dataclasses
    import inspect

    module_name, _, name = class_path.rpartition(".")
    cls = getattr(sys.modules.get(module_name), name, None)
    if cls is None:
        return []
    names = []
    for param in inspect.signature(cls.__init__).parameters.values():
        if param.name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        names.append(param.name)
        if dataclasses.is_dataclass(param.default):
            names += [f"{param.name}.{f.name}" for f in dataclasses.fields(param.default)]
    return names


def _nearest(option: str, choices: list[str]) -> str | None:
    """The choice nearest to ``option`` among those of the same section (``--trainer.``...),
    compared on the last name; None if none is close."""
    section, _, name = option.rpartition(".")
    same = {c.rpartition(".")[2]: c for c in choices if c.rpartition(".")[0] == section}
    near = difflib.get_close_matches(name, list(same), n=1, cutoff=0.6)
    return same[near[0]] if near else None


def explain_error(message: str, parser: Any) -> str:
    """jsonargparse's error ``message`` made one line, with the nearest option of ``parser`` for an
    unknown one ("did you mean ...?")."""
    if (m := re.match(r"unrecognized arguments: (.*)", message, flags=re.S)) and parser is not None:
        options = _options(parser)
        unknown = [a.split("=", 1)[0] for a in m.group(1).split() if a.startswith("--")]
        hints = [f"{a}: did you mean {near}?" for a in unknown if (near := _nearest(a, options))]
        return message.strip() + ("" if not hints else " (" + "; ".join(hints) + ")")
    if m := re.search(r"Parser key \"(\w+)\":.*?Problem with given class_path '([\w.]+)':\s*(.*?)\n\s*- ", message, flags=re.S):
        key, class_path, problem = m.group(1), m.group(2), " ".join(m.group(3).split())
        nested = re.search(r"NestedArg\(key='([^']+)'", message)
        found = re.search(r"Option '([\w.]+)' is not accepted|unrecognized arguments: --([\w.]+)", problem)
        option = (found.group(1) or found.group(2)) if found else (nested.group(1) if nested else "")
        if class_path.rpartition(".")[2] == "LightningDataModule":
            return (f"--{key}.{option}: no data module is given; pass --ckpt_path CKPT (its data settings), a --config with a "
                    f"`{key}:` section (e.g. configs/relations.yaml), or --{key}.class_path videoattn.data.KineticsDataModule")
        if found:
            near = _nearest(f"--{key}.{option}", [f"--{key}.{name}" for name in _init_args(class_path)])
            return f"--{key}.{option}: {class_path} has no argument {option!r}" + (f"; did you mean {near}?" if near else "")
        return f"--{key}.{option}: {problem}"
    if re.match(r"the following arguments are required: (\w+\.)?data\b", message):
        return ("no data module: pass a --config with a `data:` section (e.g. configs/relations.yaml), --ckpt_path CKPT (its "
                "data settings, for validate/test/predict), or --data.class_path videoattn.data.KineticsDataModule --data.root ROOT ...")
    if "Does not validate against any of the Union subtypes" in message:
        key = re.search(r'Parser key "([^"]+)"', message)
        given = re.search(r"Given value: (.*)", message)
        errors = [line.strip()[2:] for line in message.splitlines() if line.strip().startswith("- ") and "Expected a <class 'NoneType'>" not in line]
        if key is None:  # a value refused when its class was made: the refusal says it
            return "; ".join(errors) or " ".join(message.split())
        return f"--{key.group(1)}: {given.group(1).strip() if given else 'the value'} is not accepted: " + "; ".join(errors)
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return " ".join(lines[:4])


class VideoArgumentParser(LightningArgumentParser):
    """LightningCLI's parser with a one-line description first in ``--help``, and errors that end in
    a short usage line and the error, with the nearest option for a misspelled one."""

    def format_help(self) -> str:
        description, self.description = self.description, None
        try:
            text = super().format_help()
        finally:
            self.description = description
        return f"{description}\n\n{text}" if description else text

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        from jsonargparse._common import debug_mode_active

        if not self.exit_on_error or debug_mode_active():
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        sys.stderr.write(f"usage: {prog} [--config CONFIG.yaml] [--KEY VALUE ...]    (every option: {prog} --help)\n"
                         f"{prog}: error: {explain_error(message, parser)}\n")
        self.exit(2)


class VideoCLI(LightningCLI):
    """LightningCLI with videoattn's links and defaults (see the module header). ``subcommand``:
    build the parser of that subcommand only (``cli_main`` passes the one asked for: each parser
    costs about 0.2 s to build, from the Trainer's and the classes' signatures)."""

    def __init__(self, *args: Any, subcommand: str | None = None, **kwargs: Any) -> None:
        self._only = subcommand
        super().__init__(*args, **kwargs)

    def subcommands(self) -> dict[str, set[str]]:  # type: ignore[override]
        every = LightningCLI.subcommands()
        return {self._only: every[self._only]} if self._only in every else every

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Two checkpoint callbacks: the best by val/top1, and "last.ckpt" rewritten at every
        # training epoch end. (Since Lightning 2.6, save_last=True only writes when a top-k checkpoint
        # was written in the same step, i.e. not after an epoch that did not improve; and without
        # save_on_train_epoch_end a callback saves only after validation, so with
        # check_val_every_n_epoch > 1 the epochs after the last validation would be lost.)
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/top1",
                "checkpoint.mode": "max",
                "checkpoint.save_top_k": 1,
                "checkpoint.filename": "best-epoch{epoch:03d}",
                "checkpoint.auto_insert_metric_name": False,
                "last_checkpoint.monitor": None,
                "last_checkpoint.save_top_k": 1,
                "last_checkpoint.filename": "last",
                "last_checkpoint.save_on_train_epoch_end": True,
            }
        )
        # a fixed folder (not the logger's version_N), so that `--ckpt_path last` resumes
        for key in ("checkpoint", "last_checkpoint"):
            parser.link_arguments("trainer.default_root_dir", f"{key}.dirpath", compute_fn=_checkpoint_dir)
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.classes", "model.class_names", apply_on="instantiate")

    # ------------------------------------------------------------------ checkpoints
    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse (an evaluation given a checkpoint and no data module takes the checkpoint's), then
        check ``--ckpt_path`` before Lightning reads it: a missing file or one that is not a sound
        checkpoint ends in one line naming the file. The run options given here are kept, to be
        put back over what the checkpoint's hyperparameters say."""
        self._ckpt: Mapping[str, Any] | None = None
        if isinstance(args, Mapping) or hasattr(args, "as_dict"):  # a dict or Namespace, from Python
            self.config = parser.parse_object(args)
        else:
            self.config = parser.parse_args(self._with_checkpoint_data(list(sys.argv[1:] if args is None else args)))
        subcommand = self.config.get("subcommand")
        section = self.config.get(subcommand) if subcommand else None
        self._ckpt_classes: list[str] | None = None
        self._run_options: dict[str, Any] = {}
        if section is None:
            return
        ckpt_path = section.get("ckpt_path")
        model = section.get("model")
        if model is not None:
            self._run_options = {k: model.get(k) for k in RUN_OPTIONS if k in model}
        path = self._checkpoint_file(ckpt_path, section)
        if path is None:
            return
        ckpt = self._ckpt if self._ckpt is not None else self._read_checkpoint(subcommand, path)
        hp = ckpt.get("hyper_parameters") or {}
        names = hp.get("class_names") or ckpt.get("classes")
        self._ckpt_classes = list(names) if names else None

    @staticmethod
    def _read_checkpoint(subcommand: str | None, path: str) -> Mapping[str, Any]:
        try:
            return load_checkpoint(path, what="--ckpt_path")
        except CheckpointError as err:
            _fail(subcommand, str(err))

    def _with_checkpoint_data(self, argv: list[str]) -> list[str]:
        """``argv`` with ``--data CONFIG`` of the checkpoint's data module (and its recipe's
        ``--model.test_aggregate``) after the subcommand, for ``validate``, ``test`` and ``predict``
        given a checkpoint file and no data module: the flags and configs that follow
        (``--data.predict VIDEO``...) apply over them."""
        if not argv or argv[0] not in EVALUATION:
            return argv
        paths = _option_value(argv, ("--ckpt_path",))
        if not paths or not os.path.isfile(paths[-1]) or _gives_data(argv[1:]):
            return argv
        self._ckpt = self._read_checkpoint(argv[0], paths[-1])
        data = checkpoint_data_config(self._ckpt)
        if data is None:
            return argv
        # the recipe's way of combining the test views too (test_aggregate is a run option: the
        # checkpoint's hyperparameters do not set it), unless this command line gives one
        aggregate = (self._ckpt.get("hyper_parameters") or {}).get("test_aggregate")
        recipe = ["--model.test_aggregate", aggregate] if isinstance(aggregate, str) else []
        return [argv[0], "--data", json.dumps(data), *recipe, *argv[1:]]

    def _checkpoint_file(self, ckpt_path: str | None, section: Any) -> str | None:
        """The checkpoint file to read class names from: ``--ckpt_path`` itself, or for
        "last"/"best" the run's last.ckpt (None: no file, or a URL)."""
        if not ckpt_path:
            return None
        if ckpt_path in LIGHTNING_CKPT_NAMES:
            root = (section.get("trainer") or {}).get("default_root_dir")
            last = Path(_checkpoint_dir(root)) / "last.ckpt"
            return str(last) if last.is_file() else None
        if "://" in ckpt_path:
            return None
        if not os.path.isfile(ckpt_path):
            _fail(self.config.get("subcommand"), f"--ckpt_path {ckpt_path}: no such checkpoint file")
        return ckpt_path

    def before_instantiate_classes(self) -> None:
        """After Lightning applied the checkpoint's hyperparameters to the model config: put back
        this run's options, drop ``weights`` (the checkpoint holds the weights), and give the
        data module the checkpoint's class names."""
        subcommand = self.config.get("subcommand")
        section = self.config.get(subcommand) if subcommand else self.config
        if section is None or not section.get("ckpt_path"):
            return
        model = section.get("model")
        if model is not None:
            for key, value in self._run_options.items():
                model[key] = value
            if "weights" in model:
                model["weights"] = None
        data = section.get("data")
        if self._ckpt_classes and data is not None:
            init_args = data.get("init_args") if "init_args" in data else data
            if init_args is not None:
                init_args["classes"] = self._ckpt_classes

    # ------------------------------------------------------------------ instantiation
    def instantiate_classes(self) -> None:
        """A bad value in a config (unknown model, missing file...) ends with its message, not a
        traceback through LightningCLI."""
        try:
            super().instantiate_classes()
        except (ValueError, FileNotFoundError) as err:
            _fail(self.subcommand, explain_error(str(err), None))

    def _section(self, key: str) -> Any:
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        return config.get(key)

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """The Trainer with the project's defaults: CSV (+ TensorBoard) logs and the learning rate
        for training runs, none for predict unless asked; the rich progress bar (drawn before the
        results: :class:`VideoProgressBar`) and model summary
        (without Lightning's FLOPs, see :class:`VideoModelSummary`); in evaluation runs, no
        checkpoint callbacks (they would only restore the training run's state and warn that its
        folder differs)."""
        config = self._section("trainer") or {}
        callbacks = config.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, list) else [callbacks]
        logger = config.get("logger")
        if logger is True or (logger is None and self.subcommand != "predict"):
            kwargs["logger"] = default_loggers(config.get("default_root_dir"))
        elif logger is None:
            kwargs["logger"] = False
        if kwargs.get("logger", logger) not in (False, None) and not any(isinstance(c, LearningRateMonitor) for c in callbacks):
            callbacks.append(LearningRateMonitor(logging_interval="step"))
        if config.get("enable_progress_bar", True) is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(VideoProgressBar())
        if self.subcommand == "fit" and config.get("enable_model_summary", True) is not False and not any(isinstance(c, ModelSummary) for c in callbacks):
            callbacks.append(VideoModelSummary())
        kwargs["callbacks"] = callbacks
        trainer = super().instantiate_trainer(**kwargs)
        ckpt_path = (self._section("ckpt_path") if self.subcommand else None) or ""
        if self.subcommand in EVALUATION and ckpt_path != "best":
            # nothing to restore in them, and Lightning would warn that the checkpoint's callbacks are missing
            warnings.filterwarnings("ignore", message="Be aware that when using `ckpt_path`, callbacks used to create the checkpoint")
            drop = (ModelCheckpoint, SaveConfigCallback) if self.subcommand == "predict" else (ModelCheckpoint,)
            trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, drop)]
        return trainer

    # ------------------------------------------------------------------ stages
    def _setup_data(self, stage: str) -> None:
        """Read the stage's annotations now: a missing or bad list ends in one line."""
        datamodule = self.datamodule
        if datamodule is None or not hasattr(datamodule, "setup"):
            return
        try:
            datamodule.setup(stage)
        except (ValueError, FileNotFoundError) as err:
            _fail(self.subcommand, str(err))

    def before_fit(self) -> None:
        self._setup_data("fit")

    def before_validate(self) -> None:
        self._setup_data("validate")

    def before_test(self) -> None:
        self._setup_data("test")

    def before_predict(self) -> None:
        self._setup_data("predict")
        # the callbacks stream the results to disk; Lightning would also keep every output in memory
        if self.config_init[self.subcommand].get("return_predictions") is None:
            self.config_init[self.subcommand]["return_predictions"] = False


def cli_main(argv: list[str] | None = None, *, callbacks: list[Callback] | None = None) -> VideoCLI:
    """Run ``fit``, ``validate``, ``test`` or ``predict`` with ``argv`` (default: sys.argv);
    ``callbacks`` are added to the Trainer's (``videoattn extract`` adds its FeatureWriter)."""
    if argv is not None and list(argv) == sys.argv[1:]:
        argv = None  # called by the console script: let LightningCLI read sys.argv itself
    first = (sys.argv[1:] if argv is None else list(argv))[:1]
    subcommand = first[0] if first and first[0] in SUBCOMMANDS else None
    descriptions = {name: {"description": f"videoattn {name}: {text}"} for name, text in SUBCOMMANDS.items() if subcommand in (None, name)}
    quiet = _QuietInfo()
    rank_zero_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    rank_zero_log.addFilter(quiet)
    try:
        with warnings.catch_warnings():  # the filters a run adds (instantiate_trainer) end with it
            return VideoCLI(
                VideoClassifier,
                LightningDataModule,
                subclass_mode_data=True,
                args=argv,
                subcommand=subcommand,
                parser_class=VideoArgumentParser,
                parser_kwargs={"prog": "videoattn", **descriptions},
                trainer_defaults={"use_distributed_sampler": False, **({"callbacks": callbacks} if callbacks else {})},
                seed_everything_default=0,
                save_config_kwargs={"overwrite": True},
            )
    except NonFiniteLossError as err:
        print(f"videoattn: stopped: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        rank_zero_log.removeFilter(quiet)
        # Lightning leaves the DDP process group alive after fit/test; a gloo group torn down by
        # interpreter exit instead can abort a rank ("terminate called without an active exception")
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
