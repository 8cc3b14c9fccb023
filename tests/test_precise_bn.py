"""Tests for videoattn.precise_bn: population BatchNorm statistics, frozen layers, DDP average,
and the PreciseBN callback together with FreezeBackbone in a fit.
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader

from videoattn.precise_bn import update_precise_bn


def _data(n: int = 5, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, 2, 3, 3, generator=g) * (i + 1) + i for i in range(n)]


def _population(batches: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.cat(batches).transpose(0, 1).reshape(3, -1)  # [N, C, T, H, W] -> [C, N*T*H*W]
    return x.mean(1), x.var(1, unbiased=False)


def test_statistics_are_the_population_mean_and_variance() -> None:
    bn = nn.BatchNorm3d(3, momentum=0.3).eval()
    data = _data()
    used = update_precise_bn(bn, data, num_batches=200)  # capped by len(data)
    mean, var = _population(data)
    assert used == 5
    torch.testing.assert_close(bn.running_mean, mean)
    torch.testing.assert_close(bn.running_var, var)
    assert not bn.training and bn.momentum == 0.3  # mode and momentum restored


def test_num_batches_limits_the_data_and_to_input_maps_items() -> None:
    bn = nn.BatchNorm3d(3)
    data = _data()
    items = [{"video": [x, x[:, :, :1]]} for x in data]  # a SlowFast-like input per batch

    class TwoPath(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = bn

        def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
            return self.bn(xs[0])

    used = update_precise_bn(TwoPath(), items, num_batches=2, to_input=lambda b: b["video"])
    assert used == 2
    mean, var = _population(data[:2])
    torch.testing.assert_close(bn.running_mean, mean)
    torch.testing.assert_close(bn.running_var, var)


def test_layers_kept_in_eval_mode_by_the_model_are_not_touched() -> None:
    class Frozen(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.frozen = nn.BatchNorm3d(3)
            self.live = nn.BatchNorm3d(3)

        def train(self, mode: bool = True) -> Frozen:
            super().train(mode)
            self.frozen.eval()
            return self

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.live(self.frozen(x))

    model = Frozen()
    update_precise_bn(model, _data(), 5)
    assert torch.equal(model.frozen.running_mean, torch.zeros(3))
    assert torch.equal(model.frozen.running_var, torch.ones(3))
    torch.testing.assert_close(model.live.running_mean, _population(_data())[0])


def test_frozen_statistics_are_kept_and_used_as_in_training() -> None:
    """A BatchNorm frozen as Lightning's BaseFinetuning.freeze and FreezeBackbone leave it (buffers
    kept, track_running_stats False) keeps its statistics and, in eval mode, normalises with them
    during the passes: the next layer sees what it sees in training."""
    frozen, live = nn.BatchNorm3d(3), nn.BatchNorm3d(3)
    frozen.running_mean.fill_(1.0)
    frozen.running_var.fill_(4.0)
    frozen.track_running_stats = False
    model = nn.Sequential(frozen, live)
    model[0].eval()  # FreezeBackbone's mode during training; the rest of the model trains
    update_precise_bn(model, _data(), 5)
    assert torch.equal(frozen.running_mean, torch.full((3,), 1.0)) and torch.equal(frozen.running_var, torch.full((3,), 4.0))
    mean, var = _population([(x - 1.0) / (4.0 + frozen.eps) ** 0.5 for x in _data()])
    torch.testing.assert_close(live.running_mean, mean)
    torch.testing.assert_close(live.running_var, var)
    assert model.training and not frozen.training  # each module's mode restored, not model.train(was_training)


def test_a_layer_unused_by_a_batch_counts_only_the_batches_it_saw() -> None:
    class Alternate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.even, self.odd = nn.BatchNorm3d(3), nn.BatchNorm3d(3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.even(x) if x.mean() < 1.5 else self.odd(x)  # _data: batch i has mean ~i

    model = Alternate()
    update_precise_bn(model, _data(), 5)
    data = _data()
    torch.testing.assert_close(model.even.running_mean, _population(data[:2])[0])
    torch.testing.assert_close(model.odd.running_var, _population(data[2:])[1])


def test_empty_loader_and_bad_count_raise() -> None:
    with pytest.raises(ValueError, match="empty"):
        update_precise_bn(nn.BatchNorm3d(3), [], 10)
    with pytest.raises(ValueError, match="num_batches"):
        update_precise_bn(nn.BatchNorm3d(3), _data(), 0)
    bn = nn.BatchNorm3d(3, momentum=0.2)
    with pytest.raises(ValueError, match="precise BN: the loader ended after 2 of 3 batches"):  # an unsized iterable
        update_precise_bn(bn, iter(_data(2)), 3)
    assert torch.equal(bn.running_mean, torch.zeros(3)) and torch.equal(bn.running_var, torch.ones(3))  # left as it was
    assert bn.momentum == 0.2
    shared = nn.BatchNorm3d(3)
    with pytest.raises(ValueError, match="BatchNorm '1' runs twice in one forward pass"):
        update_precise_bn(nn.Sequential(nn.Identity(), shared, shared), _data(), 2)


def _worker(rank: int, port: int, out: dict) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        bn = nn.BatchNorm3d(3)
        update_precise_bn(bn, _data(3, seed=rank), 3)
        out[rank] = (bn.running_mean.clone(), bn.running_var.clone())
    finally:
        dist.destroy_process_group()


def test_ddp_averages_statistics_over_processes() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(port, out), nprocs=2, join=True)
        results = dict(out)
    per_rank = [_population(_data(3, seed=r)) for r in range(2)]
    for rank in range(2):
        torch.testing.assert_close(results[rank][0], (per_rank[0][0] + per_rank[1][0]) / 2)
        torch.testing.assert_close(results[rank][1], (per_rank[0][1] + per_rank[1][1]) / 2)


# ------------------------------------------- PreciseBN together with FreezeBackbone (issue 23, 8b)
class _TinyNet(nn.Module):
    """BatchNorm, a 1x1x1 conv, BatchNorm, global pooling, a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.bn_in, self.conv, self.bn = nn.BatchNorm3d(3), nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bn(self.conv(self.bn_in(x))).relu().mean((2, 3, 4)))  # [N, C, T, H, W] -> [N, 3]


def _batches(n: int, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    items = [{"video": torch.randn(3, 2, 4, 4, generator=g) * 2 + 1, "label": i % 3, "video_index": i, "path": f"v{i}.mp4"} for i in range(n)]
    return DataLoader(items, batch_size=4)


def test_freeze_backbone_with_precise_bn_keeps_the_loaded_statistics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FreezeBackbone keeps the backbone's BatchNorm statistics as loaded; PreciseBN, before each
    validation, recomputes the statistics that training updates. Only the head trains, so after two
    epochs, each followed by precise BN and a validation, the backbone's state is as loaded."""
    from lightning.pytorch import Trainer  # here, not at the top: the DDP test's spawned workers import this file

    import videoattn.callbacks.precise_bn as callback_module
    from videoattn.module import VideoClassifier

    calls: list[int] = []

    def spy(*args: Any, **kwargs: Any) -> int:
        calls.append(update_precise_bn(*args, **kwargs))
        return calls[-1]

    monkeypatch.setattr(callback_module, "update_precise_bn", spy)
    torch.manual_seed(0)
    backbone = _TinyNet()
    for bn in (backbone.bn_in, backbone.bn):  # "loaded" statistics, not the defaults
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    model = VideoClassifier(backbone, num_classes=3, freeze_backbone=True, precise_bn_batches=3, lr=0.1)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    trainer = Trainer(default_root_dir=tmp_path, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False, use_distributed_sampler=False, num_sanity_val_steps=0, max_epochs=2)
    trainer.fit(model, train_dataloaders=_batches(12, 0), val_dataloaders=_batches(4, 1))
    assert calls == [3, 3]  # precise BN ran before each of the two validations
    after = backbone.state_dict()
    assert {k for k in before if not torch.equal(before[k], after[k])} == {"head.weight", "head.bias"}
