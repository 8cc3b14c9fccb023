"""videoattn.callbacks: the non-finite-loss stop read one step late (as on accelerators), user
callbacks taking precedence over the module's defaults, and the per-process result files merged
in video order with each video once.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_module import TinyData, _module, _trainer

from videoattn.callbacks import FreezeBackbone, NonFiniteLossError, StopOnNonFiniteLoss
from videoattn.callbacks.rank_files import RankFiles


def test_lagged_nonfinite_check_names_the_step_of_the_nan(tmp_path: Path) -> None:
    """The flag of step 2 is read at step 3 (no wait on the device at step 2), and still names step 2."""
    stop = StopOnNonFiniteLoss(lagged=True)
    trainer = _trainer(tmp_path, max_epochs=1, limit_val_batches=0, callbacks=[stop])
    with pytest.raises(NonFiniteLossError, match=r"global step 2 .*v00[89]\.mp4"):
        trainer.fit(_module(), TinyData(nan_at=9))  # batch 2 (items 8-11) holds a NaN video
    assert trainer.global_step == 3  # step 2 was applied; the stop came before step 3's backward
    assert [c for c in trainer.callbacks if isinstance(c, StopOnNonFiniteLoss)] == [stop]  # the user's, not a default copy


def test_lagged_check_also_catches_a_nan_in_the_last_step_of_an_epoch(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, max_epochs=1, limit_val_batches=0, callbacks=[StopOnNonFiniteLoss(lagged=True)])
    with pytest.raises(NonFiniteLossError, match=r"global step 5 "):
        trainer.fit(_module(), TinyData(nan_at=21))  # the 6th and last batch (items 20-23)
    assert not list(tmp_path.rglob("*.ckpt"))  # stopped before any checkpoint of the diverged model


def test_a_callback_in_the_trainer_works_without_the_module_option(tmp_path: Path) -> None:
    model = _module()
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    _trainer(tmp_path, max_epochs=1, limit_val_batches=0, callbacks=[FreezeBackbone()]).fit(model, TinyData())
    changed = {k for k, v in model.backbone.state_dict().items() if not torch.equal(before[k], v)}
    assert changed == {"head.weight", "head.bias"}


def test_rank_files_merge_in_video_order_each_video_once(tmp_path: Path) -> None:
    ranks = [RankFiles(tmp_path / "parts", r) for r in range(3)]
    for i in range(10):  # the eval sampler's shares: rank r gets r, r + 3, ...
        ranks[i % 3].write({"video_index": i, "v": f"v{i}"})
    ranks[0].write({"video_index": 9, "v": "v9"})  # a duplicate is dropped
    for r in ranks:
        r.close()
    assert [row["video_index"] for row in ranks[0].merged()] == list(range(10))
    ranks[0].remove()
    assert not (tmp_path / "parts").exists()


def test_rank_files_sort_a_process_rows_streamed_out_of_order(tmp_path: Path) -> None:
    """Shards stream a process's share in its DataLoader workers' chunk order."""
    ranks = [RankFiles(tmp_path / "parts", r) for r in range(2)]
    for i in (4, 5, 0, 1):  # worker 1's chunk before worker 0's
        ranks[0].write({"video_index": i})
    for i in (6, 2, 3):
        ranks[1].write({"video_index": i})
    for r in ranks:
        r.close()
    assert [row["video_index"] for row in ranks[0].merged()] == [0, 1, 2, 3, 4, 5, 6]


def test_precise_bn_sees_the_normalised_clips_of_the_data_module(tmp_path: Path, make_video) -> None:
    """The train batches PreciseBN draws are uint8 on the loader's side: it applies the data
    module's on_after_batch_transfer, so the statistics are those of the model's real inputs."""
    import lightning as L

    from videoattn.callbacks import PreciseBN
    from videoattn.data import ClipSettings, KineticsDataModule

    for i in range(4):
        make_video(f"v{i}.mp4", num_frames=20, height=32, width=48, seed=i)
    (tmp_path / "list.txt").write_text("".join(f"v{i}.mp4 {i % 2}\n" for i in range(4)))
    clip = ClipSettings(num_frames=4, sampling_rate=2, train_short_side=(32, 40), crop_size=32, test_short_side=32, test_crop_size=32)

    def data() -> KineticsDataModule:
        return KineticsDataModule(str(tmp_path), "list.txt", "list.txt", clip=clip, batch_size=2, num_workers=0)

    class BNOnly(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.bn = torch.nn.BatchNorm3d(3)
            self.head = torch.nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.bn(x).mean(dim=(2, 3, 4)))

        def training_step(self, batch, batch_idx):
            return torch.nn.functional.cross_entropy(self(batch["video"]), batch["label"])

        def validation_step(self, batch, batch_idx):
            pass

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    model = BNOnly()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, use_distributed_sampler=False, num_sanity_val_steps=0, callbacks=[PreciseBN(2)])
    trainer.fit(model, datamodule=data())
    reference = data()
    means = []
    for batch in reference.train_dataloader():  # epoch 0's clips: the seeded draws PreciseBN saw
        assert batch["video"].dtype == torch.uint8
        means.append(reference.on_after_batch_transfer(batch, 0)["video"].mean(dim=(0, 2, 3, 4)))
    torch.testing.assert_close(model.bn.running_mean, torch.stack(means).mean(0), rtol=1e-5, atol=1e-6)
    assert model.bn.running_mean.abs().max() < 3  # normalised values, not 0..255
