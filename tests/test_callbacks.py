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
