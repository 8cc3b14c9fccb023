"""Every file in configs/ parses with the videoattn CLI: recipes alone, deltas stacked on the
base named in their "# stack on:" line. Backbone names must be registered models.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from videoattn.lightning_cli import VideoCLI
from videoattn.models import list_models
from videoattn.module import VideoClassifier

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FILES = sorted(CONFIGS.glob("*.yaml"))


class _ParseOnly(VideoCLI):
    """Parse and type-check, instantiate nothing (the recipes point at data we do not have)."""

    def instantiate_classes(self) -> None:
        pass


def _parse(*files: Path) -> Any:
    args = [a for f in files for a in ("--config", str(f))]
    from lightning.pytorch import LightningDataModule

    cli = _ParseOnly(VideoClassifier, LightningDataModule, subclass_mode_data=True, args=args, run=False)
    return cli.config


def _base_of(path: Path) -> Path | None:
    m = re.search(r"^# stack on: (\S+)", path.read_text(), flags=re.MULTILINE)
    return CONFIGS.parent / m.group(1) if m else None


def test_there_are_recipes_for_every_block_and_a_demo() -> None:
    names = {f.stem for f in FILES}
    for arch in ("i3d_r50", "slowfast_r50"):
        blocks = ("nl", "gc", "se", "cgnl", "lr", "relation", "transformer")
        assert {f"k400_{arch}"} | {f"k400_{arch}_{b}" for b in blocks} <= names
    assert "demo" in names


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_config_parses(path: Path) -> None:
    base = _base_of(path)
    cfg = _parse(base, path) if base else _parse(path)
    backbone = cfg.model.backbone
    assert isinstance(backbone, str) and backbone in list_models(), backbone
    assert str(cfg.data.class_path).startswith("videoattn."), cfg.data.class_path
    if base is not None:  # a delta changes the model (and its run folder), never the recipe
        base_cfg = _parse(base)
        assert backbone != base_cfg.model.backbone
        for key in ("lr", "weight_decay", "warmup_epochs", "optimizer", "base_batch_size"):
            assert cfg.model[key] == base_cfg.model[key]
        assert cfg.data == base_cfg.data and cfg.trainer.max_epochs == base_cfg.trainer.max_epochs


@pytest.mark.parametrize("arch,frames,stride", [("i3d_r50", 8, 8), ("slowfast_r50", 32, 2)])
def test_recipes_follow_pyslowfast(arch: str, frames: int, stride: int) -> None:
    cfg = _parse(CONFIGS / f"k400_{arch}.yaml")
    m, d = cfg.model, cfg.data.init_args.clip
    assert (m.optimizer, m.lr, m.base_batch_size, m.momentum, m.weight_decay) == ("sgd", 0.1, 64, 0.9, 1e-4)
    assert (m.warmup_epochs, m.warmup_start_factor, cfg.trainer.max_epochs) == (34, 0.1, 196)
    assert m.backbone_kwargs == {"dropout": 0.5} and m.precise_bn_batches == 200
    assert (d.num_frames, d.sampling_rate, d.crop_size, tuple(d.test_views)) == (frames, stride, 224, (10, 3))
    assert cfg.data.init_args.batch_size * cfg.trainer.devices == 64
    assert cfg.checkpoint.monitor == "val/top1" and cfg.last_checkpoint.filename == "last"
    assert cfg.checkpoint.dirpath == cfg.last_checkpoint.dirpath == f"runs/k400_{arch}/checkpoints"


DATASET_RECIPES = [f for f in FILES if re.search(r"^# stack after: ", f.read_text(), flags=re.MULTILINE)]


def test_there_are_dataset_recipes() -> None:
    assert {f.stem for f in DATASET_RECIPES} >= {"ucf101_finetune", "hmdb51_finetune", "ssv2_finetune"}


@pytest.mark.parametrize("recipe", DATASET_RECIPES, ids=[f.name for f in DATASET_RECIPES])
@pytest.mark.parametrize("backbone", [("k400_i3d_r50.yaml",), ("k400_slowfast_r50.yaml", "k400_slowfast_r50_nl.yaml")], ids=["i3d", "slowfast_nl"])
def test_dataset_recipes_stack_after_a_backbone(recipe: Path, backbone: tuple[str, ...]) -> None:
    """A dataset recipe changes the data, solver and run folder, and keeps the backbone's model,
    clip frames and stride (SlowFast's alpha included) and hardware settings."""
    base = _parse(*(CONFIGS / name for name in backbone))
    cfg = _parse(*(CONFIGS / name for name in backbone), recipe)
    alone = _parse(recipe)
    assert cfg.model.backbone == base.model.backbone and cfg.model.backbone_kwargs == base.model.backbone_kwargs
    for key in ("num_frames", "sampling_rate", "slowfast_alpha", "crop_size", "train_short_side"):
        assert cfg.data.init_args.clip[key] == base.data.init_args.clip[key], key
    for key in ("format", "split", "root", "train", "val", "test"):
        assert cfg.data.init_args[key] == alone.data.init_args[key], key
    assert cfg.data.init_args.format in ("ucf101", "hmdb51", "ssv2")
    for key in ("lr", "weight_decay", "warmup_epochs", "precise_bn_batches"):
        assert cfg.model[key] == alone.model[key], key
    assert cfg.trainer.max_epochs == alone.trainer.max_epochs and cfg.trainer.devices == base.trainer.devices
    assert cfg.trainer.default_root_dir == alone.trainer.default_root_dir == f"runs/{recipe.stem.split('_')[0]}"
    assert cfg.checkpoint.dirpath == f"{cfg.trainer.default_root_dir}/checkpoints"
    text = recipe.read_text()
    assert re.search(r"# Recipe: (mmaction2|PySlowFast) configs/\S+\.(py|yaml)", text), "cite the published recipe"


def test_ssv2_recipe_follows_pyslowfast() -> None:
    cfg = _parse(CONFIGS / "k400_slowfast_r50.yaml", CONFIGS / "ssv2_finetune.yaml")
    m, d = cfg.model, cfg.data.init_args
    assert (m.lr, m.base_batch_size, m.weight_decay, m.warmup_epochs, m.warmup_start_factor) == (0.1, 64, 1e-4, 3, 0.8)
    assert d.clip.flip is False and tuple(d.clip.test_views) == (1, 3) and cfg.trainer.max_epochs == 30
