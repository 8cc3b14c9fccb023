"""`videoattn fit|validate|test|predict` (and `extract`): LightningCLI over VideoClassifier and any
LightningDataModule given by class_path (the recipes use KineticsDataModule), with the project's
defaults: the data module's classes linked to the model, best + last checkpoints in
<root>/checkpoints (so `--ckpt_path last` finds them across runs), CSV (+ TensorBoard if
installed) logging with the learning rate (LearningRateMonitor), a rich progress bar, no
Lightning DistributedSampler (the data module shards without padding), and one-line messages
instead of tracebacks for bad config values and refused checkpoints.

With a checkpoint file (`--ckpt_path`), the model's architecture and class names come from it:
the data module is given the checkpoint's classes, so `test` and `predict` need only their own
list (no train list, no class-list file), and a label outside them is an error naming it.
Only LightningCLI's public hooks are overridden.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, Logger

from videoattn.checkpoints import CheckpointError, load_checkpoint
from videoattn.module import RUN_OPTIONS, NonFiniteLossError, VideoClassifier

__all__ = ["VideoCLI", "cli_main"]

# --ckpt_path values that the Trainer resolves itself (anything else must be a file or a URL)
LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")


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


def _fail(subcommand: str | None, message: str) -> None:
    print(f"videoattn {subcommand or ''}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


class VideoCLI(LightningCLI):
    """LightningCLI with videoattn's links and defaults (see the module header)."""

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
        """Parse, then check ``--ckpt_path`` before Lightning reads it: a missing file or one that
        would run code when unpickled ends in one line naming the file. The run options given
        here are kept, to be put back over what the checkpoint's hyperparameters say."""
        super().parse_arguments(parser, args)
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
        try:
            ckpt = load_checkpoint(path, what="--ckpt_path")
        except CheckpointError as err:
            _fail(subcommand, str(err))
        hp = ckpt.get("hyper_parameters") or {}
        names = hp.get("class_names") or ckpt.get("classes")
        self._ckpt_classes = list(names) if names else None

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
            _fail(self.subcommand, str(err))

    def _section(self, key: str) -> Any:
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        return config.get(key)

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        config = self._section("trainer") or {}
        callbacks = config.get("callbacks") or []
        callbacks = list(callbacks) if isinstance(callbacks, list) else [callbacks]
        if config.get("logger") in (None, True):
            kwargs["logger"] = default_loggers(config.get("default_root_dir"))
        if config.get("logger") is not False and not any(isinstance(c, LearningRateMonitor) for c in callbacks):
            callbacks.append(LearningRateMonitor(logging_interval="step"))
        if config.get("enable_progress_bar", True) is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(RichProgressBar())
        kwargs["callbacks"] = callbacks
        return super().instantiate_trainer(**kwargs)

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
    try:
        return VideoCLI(
            VideoClassifier,
            LightningDataModule,
            subclass_mode_data=True,
            args=argv,
            trainer_defaults={"use_distributed_sampler": False, **({"callbacks": callbacks} if callbacks else {})},
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
        )
    except NonFiniteLossError as err:
        print(f"videoattn: stopped: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        # Lightning leaves the DDP process group alive after fit/test; a gloo group torn down by
        # interpreter exit instead can abort a rank ("terminate called without an active exception")
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
