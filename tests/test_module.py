"""Tests for videoattn.module.VideoClassifier with a tiny backbone and an in-memory data
module producing batches in the videoattn.data format (dicts with video/label/...).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import LightningDataModule, Trainer
from torch import nn
from torch.utils.data import DataLoader

from videoattn.aggregate import aggregate_views
from videoattn.callbacks import VideoReport
from videoattn.callbacks.predictions import video_rows
from videoattn.module import NonFiniteLossError, VideoClassifier
from videoattn.optim import warmup_cosine_factor

K = 3  # classes


class TinyNet(nn.Module):
    """BatchNorm on the input, a 1x1x1 conv, global pooling, a linear head."""

    def __init__(self, num_classes: int = K) -> None:
        super().__init__()
        self.bn = nn.BatchNorm3d(3)
        self.conv = nn.Conv3d(3, 8, 1)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(self.bn(x)).relu().mean((2, 3, 4)))  # [N, C, T, H, W] -> [N, K]


def _report(trainer: Trainer) -> VideoReport:
    return next(c for c in trainer.callbacks if isinstance(c, VideoReport))


def _clip(label: int, g: torch.Generator, views: int | None = None) -> torch.Tensor:
    """A clip whose channel `label` is brighter: learnable by TinyNet."""
    shape = (3, 2, 4, 4) if views is None else (views, 3, 2, 4, 4)
    x = torch.randn(shape, generator=g)
    x[..., label, :, :, :] += 2.0
    return x


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    good = [it for it in items if it["video"] is not None]
    return {
        "video": torch.stack([it["video"] for it in good]) if good else None,
        "label": torch.tensor([it["label"] for it in good], dtype=torch.long),
        "video_index": torch.tensor([it["video_index"] for it in good], dtype=torch.long),
        "path": [it["path"] for it in good],
        "skipped": [{"video_index": it["video_index"], "path": it["path"], "reason": "cannot decode"} for it in items if it["video"] is None],
    }


class TinyData(LightningDataModule):
    def __init__(self, n_train: int = 24, n_test: int = 5, views: int = 4, batch_size: int = 4, bad_test: tuple[int, ...] = (), nan_at: int | None = None) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.classes = ["abseiling", "bowling", "cooking"]
        self.num_classes = K
        g = torch.Generator().manual_seed(0)
        self.train = [self._item(i, i % K, _clip(i % K, g)) for i in range(n_train)]
        if nan_at is not None:
            self.train[nan_at]["video"] = torch.full_like(self.train[nan_at]["video"], float("nan"))
        self.val = [self._item(i, i % K, _clip(i % K, g)) for i in range(6)]
        self.test = [self._item(i, i % K, None if i in bad_test else _clip(i % K, g, views)) for i in range(n_test)]

    @staticmethod
    def _item(i: int, label: int, video: torch.Tensor | None) -> dict[str, Any]:
        return {"video": video, "label": label, "video_index": i, "path": f"v{i:03d}.mp4"}

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=self.batch_size, collate_fn=_collate)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=self.batch_size, collate_fn=_collate)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test, batch_size=2, collate_fn=_collate)

    predict_dataloader = test_dataloader


def _trainer(tmp_path: Path, **kw: Any) -> Trainer:
    kw.setdefault("max_epochs", 1)
    return Trainer(
        default_root_dir=tmp_path, accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, use_distributed_sampler=False, **kw,
    )


def _module(**kw: Any) -> VideoClassifier:
    torch.manual_seed(0)
    kw.setdefault("lr", 0.1)
    return VideoClassifier(TinyNet(), num_classes=K, class_names=["abseiling", "bowling", "cooking"], **kw)


def test_fit_learns_the_tiny_task(tmp_path: Path) -> None:
    model = _module(lr=0.5, warmup_epochs=1, label_smoothing=0.1)
    trainer = _trainer(tmp_path, max_epochs=6)
    trainer.fit(model, TinyData())
    metrics = trainer.callback_metrics
    assert metrics["val/top1"] == 1.0 and metrics["val/top5"] == 1.0
    assert metrics["train/top1"] > 0.9
    assert trainer.global_step == 36


def test_lr_follows_warmup_cosine_and_scales_with_the_batch(tmp_path: Path) -> None:
    model = _module(lr=0.2, base_batch_size=8, warmup_epochs=1, warmup_start_factor=0.1)
    seen: list[float] = []

    trainer = _trainer(tmp_path, max_epochs=3, limit_val_batches=0)
    orig = model.on_train_batch_start

    def spy(batch: Any, batch_idx: int) -> None:
        seen.append(trainer.optimizers[0].param_groups[0]["lr"])
        orig(batch, batch_idx)

    model.on_train_batch_start = spy  # type: ignore[method-assign]
    trainer.fit(model, TinyData(batch_size=4))  # 6 steps per epoch, 18 in total
    peak = 0.2 * 4 / 8  # linear scaling: global batch 4 for base batch 8
    want = [peak * warmup_cosine_factor(s, 18, warmup_steps=6, warmup_start_factor=0.1) for s in range(18)]
    assert seen == pytest.approx(want, rel=1e-6)
    groups = trainer.optimizers[0].param_groups
    assert [g["weight_decay"] for g in groups] == [1e-4, 0.0]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in (model.backbone.bn.weight, model.backbone.bn.bias, model.backbone.conv.bias, model.backbone.head.bias)}


def test_nonfinite_loss_stops_with_the_step_and_paths(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, max_epochs=1, limit_val_batches=0)
    with pytest.raises(NonFiniteLossError, match=r"global step 2 .*v00[89]\.mp4"):
        trainer.fit(_module(), TinyData(nan_at=9))  # batch 2 (items 8-11) holds a NaN video


def test_freeze_backbone_trains_only_the_head_and_keeps_bn_statistics(tmp_path: Path) -> None:
    model = _module(freeze_backbone=True)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    _trainer(tmp_path, max_epochs=1, limit_val_batches=0).fit(model, TinyData())
    after = model.backbone.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"head.weight", "head.bias"}


def test_freeze_backbone_without_a_linear_head_raises() -> None:
    with pytest.raises(ValueError, match="no classifier"):
        VideoClassifier(nn.Conv3d(3, K, 1), num_classes=K, freeze_backbone=True)


def test_precise_bn_sets_population_statistics_before_validation(tmp_path: Path) -> None:
    model = _module(precise_bn_batches=100, lr=0.0)
    data = TinyData()
    _trainer(tmp_path, max_epochs=1, num_sanity_val_steps=0).fit(model, data)
    x = torch.stack([it["video"] for it in data.train]).transpose(0, 1).reshape(3, -1)  # [C, N*T*H*W]
    torch.testing.assert_close(model.backbone.bn.running_mean, x.mean(1))
    torch.testing.assert_close(model.backbone.bn.running_var, x.var(1, unbiased=False))


def test_multiview_test_aggregates_per_video_and_writes_csv(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "pred.csv"
    model = _module(predictions_csv=str(out), test_aggregate="max")
    data = TinyData(n_test=5, views=4, bad_test=(3,))
    trainer = _trainer(tmp_path)
    metrics = trainer.test(model, data)[0]
    model.eval()
    expected = {}
    with torch.no_grad():
        for it in data.test:
            if it["video"] is not None:
                expected[it["video_index"]] = aggregate_views(model(it["video"]).unsqueeze(0), "max")[0]
    rows = list(csv.DictReader(out.open()))
    assert [int(r["video_index"]) for r in rows] == [0, 1, 2, 3, 4]  # the unreadable video too: its reason, no prediction
    assert rows[3]["pred"] == "" and rows[3]["note"].startswith("unreadable: ")
    rows = [r for r in rows if r["pred"]]
    correct = 0
    for r in rows:
        scores, classes = expected[int(r["video_index"])].topk(3)
        assert [r[f"class_{i}"] for i in (1, 2, 3)] == [data.classes[c] for c in classes.tolist()]
        assert [float(r[f"score_{i}"]) for i in (1, 2, 3)] == pytest.approx(scores.tolist(), abs=1e-5)
        correct += int(r["class_1"] == r["label"])
    assert metrics["test/video_top1"] == pytest.approx(correct / 4)
    assert metrics["test/video_top5"] == 1.0  # 3 classes, top-5 covers all
    assert metrics["test/videos"] == 4
    assert [s["path"] for s in _report(trainer).skipped] == ["v003.mp4"]
    assert [r["video"] for r in rows] == ["v000.mp4", "v001.mp4", "v002.mp4", "v004.mp4"]
    assert rows[1]["label"] == "bowling" and rows[0]["pred"] == rows[0]["class_1"]
    assert rows[0]["pred"] in ("abseiling", "bowling", "cooking") and "score_3" in rows[0]
    printed = capsys.readouterr().out
    assert "4 videos evaluated, 1 skipped" in printed and "v003.mp4" in printed


def test_a_batch_whose_videos_all_failed_is_skipped(tmp_path: Path) -> None:
    model = _module(predictions_csv=str(tmp_path / "p.csv"))
    data = TinyData(n_test=4, bad_test=(0, 1))  # the first test batch of 2 is entirely unreadable
    trainer = _trainer(tmp_path)
    trainer.test(model, data)
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [int(r["video_index"]) for r in rows] == [0, 1, 2, 3] and [int(r["video_index"]) for r in rows if r["pred"]] == [2, 3]
    assert {s["path"] for s in _report(trainer).skipped} == {"v000.mp4", "v001.mp4"} and _report(trainer).videos == 2


def test_predict_returns_records_without_labels_needed(tmp_path: Path) -> None:
    model = _module(predictions_csv=str(tmp_path / "p.csv"))
    batches = _trainer(tmp_path).predict(model, TinyData(n_test=3))
    assert [i for b in batches for i in b["video_index"].tolist()] == [0, 1, 2]
    assert len(list(csv.DictReader((tmp_path / "p.csv").open()))) == 3


def test_wrong_head_size_and_bad_batches_raise_clearly(tmp_path: Path) -> None:
    model = VideoClassifier(TinyNet(num_classes=5), num_classes=K)
    with pytest.raises(ValueError, match=r"expected \[N, num_classes=3\]"):
        model.training_step({"video": torch.zeros(2, 3, 2, 4, 4), "label": torch.zeros(2, dtype=torch.long)}, 0)
    with pytest.raises(ValueError, match="dict with 'video' and 'label'"):
        model.training_step((torch.zeros(2, 3, 2, 4, 4), torch.zeros(2)), 0)
    with pytest.raises(ValueError, match="class_names has 2 names"):
        VideoClassifier(TinyNet(), num_classes=K, class_names=["a", "b"])


def test_checkpoint_keeps_backbone_prefix_and_classes(tmp_path: Path) -> None:
    model = _module()
    trainer = _trainer(tmp_path, max_steps=1, limit_val_batches=0)
    trainer.fit(model, TinyData())
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    ckpt = torch.load(tmp_path / "m.ckpt", weights_only=True)
    assert ckpt["classes"] == ["abseiling", "bowling", "cooking"]
    assert ckpt["hyper_parameters"]["class_names"] == ckpt["classes"]
    assert {k for k in ckpt["state_dict"] if not k.startswith(("train_", "val_", "test_"))} == {f"backbone.{k}" for k in TinyNet().state_dict()}


def test_bf16_mixed_runs_one_step(tmp_path: Path) -> None:
    model = _module()
    trainer = _trainer(tmp_path, max_steps=1, limit_val_batches=0, precision="bf16-mixed")
    trainer.fit(model, TinyData(batch_size=2))
    assert trainer.global_step == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_named_slowfast_backbone_multiview_matches_per_view_forward() -> None:
    torch.manual_seed(0)
    model = VideoClassifier("slowfast_tiny", num_classes=K, backbone_kwargs={"dropout": 0.0}).eval()
    slow, fast = torch.randn(2, 3, 3, 2, 32, 32), torch.randn(2, 3, 3, 8, 32, 32)  # [B, V, C, T, H, W]
    with torch.no_grad():
        batch = {"video": [slow, fast], "label": torch.tensor([0, 2]), "video_index": torch.tensor([7, 9]), "path": ["a", "b"]}
        records = video_rows(model.predict_step(batch, 0), top_k=3)
        per_view = torch.stack([torch.stack([model([slow[b, v : v + 1], fast[b, v : v + 1]])[0] for v in range(3)]) for b in range(2)])
    want = aggregate_views(per_view, "mean")
    assert [r["video_index"] for r in records] == [7, 9]
    for r, w in zip(records, want):
        assert r["top_classes"] == w.topk(3).indices.tolist()
        assert r["top_scores"] == pytest.approx(w.topk(3).values.tolist(), abs=1e-5)


def test_replaced_training_videos_are_counted_and_warned_once(tmp_path: Path) -> None:
    class Flaky(TinyData):
        def train_dataloader(self) -> DataLoader:
            def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
                batch = _collate(items)
                batch["skipped"] = [{"video_index": 99, "path": "broken.mp4", "reason": "moov atom not found"}]
                return batch

            return DataLoader(self.train, batch_size=self.batch_size, collate_fn=collate)

    trainer = _trainer(tmp_path, max_epochs=1, limit_val_batches=0)
    with pytest.warns(UserWarning, match="broken.mp4") as caught:
        trainer.fit(_module(), Flaky())
    assert sum("broken.mp4" in str(w.message) for w in caught) == 1  # once, not once per batch
    assert trainer.callback_metrics["train/skipped"] == 6  # 6 batches, one replacement each


def test_max_steps_without_max_epochs_schedules_over_those_steps(tmp_path: Path) -> None:
    model = _module(lr=0.2, warmup_epochs=1, warmup_start_factor=0.1)
    trainer = _trainer(tmp_path, max_epochs=None, max_steps=9, limit_val_batches=0)
    trainer.fit(model, TinyData(batch_size=4))  # 6 steps per epoch: warm-up over the first 6 of 9
    assert trainer.global_step == 9
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    schedule = scheduler.lr_lambdas[0]
    assert schedule.total_steps == 9 and schedule.warmup_steps == 6
