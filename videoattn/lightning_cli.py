"""`videoattn fit|validate|test|predict`: LightningCLI over VideoClassifier and any
LightningDataModule given by class_path (the recipes use KineticsDataModule), with the
project's defaults: the data module's classes linked to the model, best + last checkpoints
in <root>/checkpoints (so `--ckpt_path last` finds them across runs), CSV (+ TensorBoard if
installed) logging, a rich progress bar, no Lightning DistributedSampler (the data module
shards without padding), and short messages instead of tracebacks for bad config values.
"""
from __future__ import annotations

import os
import sys
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, Logger

from videoattn.module import NonFiniteLossError, VideoClassifier

__all__ = ["VideoCLI", "cli_main"]

# --ckpt_path values that the Trainer resolves itself (anything else must be a file or a URL)
LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")
# model arguments that belong to a run, not to the trained model: never taken from --ckpt_path
RUN_OPTIONS = ("predictions_csv", "test_aggregate", "precise_bn_batches", "freeze_backbone")


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

    def _parse_ckpt_path(self) -> None:
        """Lightning applies the checkpoint's hyperparameters over the whole model config. Keep
        that for the architecture, but not for the options of this run (which would silently
        drop ``--model.predictions_csv``) nor ``weights`` (the checkpoint holds the weights)."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or not os.path.isfile(ckpt_path):
            if ckpt_path and ckpt_path not in LIGHTNING_CKPT_NAMES and "://" not in ckpt_path:
                print(f"videoattn {subcommand}: error: --ckpt_path {ckpt_path}: no such checkpoint file", file=sys.stderr)
                raise SystemExit(2)
            return  # nothing to read ("last"/"best" are resolved later by the Trainer)
        given = self.config[subcommand].get("model")
        keep = {k: given.get(k) for k in RUN_OPTIONS} if given is not None else {}
        super()._parse_ckpt_path()
        model = self.config[subcommand].get("model")
        if model is not None:
            for key, value in keep.items():
                model[key] = value
            model["weights"] = None

    def instantiate_classes(self) -> None:
        """A bad value in a config (unknown model, missing file...) ends with its message, not a
        traceback through LightningCLI."""
        try:
            super().instantiate_classes()
        except (ValueError, FileNotFoundError) as err:
            print(f"videoattn {self.subcommand or ''}: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        config = self._get(self.config_init, "trainer", default={})
        if config.get("logger") in (None, True):
            kwargs["logger"] = default_loggers(config.get("default_root_dir"))
        callbacks = config.get("callbacks") or []
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        if config.get("enable_progress_bar", True) is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            kwargs["callbacks"] = [*callbacks, RichProgressBar()]
        return super().instantiate_trainer(**kwargs)


def cli_main(argv: list[str] | None = None) -> VideoCLI:
    """Run ``fit``, ``validate``, ``test`` or ``predict`` with ``argv`` (default: sys.argv)."""
    if argv is not None and list(argv) == sys.argv[1:]:
        argv = None  # called by the console script: let LightningCLI read sys.argv itself
    try:
        return VideoCLI(
            VideoClassifier,
            LightningDataModule,
            subclass_mode_data=True,
            args=argv,
            trainer_defaults={"use_distributed_sampler": False},
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
