"""Tests for KineticsDataModule (with its samplers and collation): classes known right after"""
# __init__ without decoding, batch dicts for train / val / test / predict and SlowFast, bad
# videos in batches, worker processes, unpadded disjoint eval shares, per-epoch train shuffling,
# class order kept in checkpoints, and a Lightning fit/test round trip.
from __future__ import annotations

import dataclasses
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from videoattn.data import ClipSettings, KineticsDataModule
from videoattn.data import decode as decode_module
from videoattn.data.collate import VideoCollate
from videoattn.data.samplers import ShardedEvalSampler, train_sampler

SMALL = dict(num_frames=4, sampling_rate=2, train_short_side=(32, 40), crop_size=32, test_short_side=32, test_crop_size=32, num_workers=0)
CLIP_KEYS = {f.name for f in dataclasses.fields(ClipSettings)}


def make_dm(root: str, *sources: str, **kwargs) -> KineticsDataModule:
    """KineticsDataModule with the clip settings among the keywords gathered into ``clip``."""
    clip = {k: kwargs.pop(k) for k in list(kwargs) if k in CLIP_KEYS}
    return KineticsDataModule(root, *sources, clip=ClipSettings(**clip), **kwargs)


@pytest.fixture
def dataset_root(tmp_path: Path, make_video) -> Path:
    """5 good videos in 2 classes plus one unreadable file, listed in `path,label` lines."""
    lines = []
    for i in range(5):
        make_video(f"videos/v{i}.mp4", num_frames=20, height=32, width=48, seed=i)
        lines.append(f"videos/v{i}.mp4,{['yoga', 'abseiling'][i % 2]}")
    (tmp_path / "videos/broken.mp4").write_bytes(b"\0" * 500)
    lines.insert(2, "videos/broken.mp4,yoga")  # row 2
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "predict.txt").write_text("videos/v0.mp4\nvideos/v1.mp4\n")
    return tmp_path


def test_classes_known_after_init_without_decoding(dataset_root: Path, monkeypatch) -> None:
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoding attempted")

    monkeypatch.setattr(decode_module, "open_reader", no_decoding)  # any decoding attempt would fail
    dm = make_dm(str(dataset_root), train="train.csv", val="train.csv", **SMALL)
    assert dm.classes == ["abseiling", "yoga"] and dm.num_classes == 2
    (dataset_root / "classes.txt").write_text("yoga\nabseiling\nzumba\n")
    dm = make_dm(str(dataset_root), train="train.csv", classes="classes.txt", **SMALL)
    assert dm.classes == ["yoga", "abseiling", "zumba"] and dm.num_classes == 3
    dm.setup("fit")
    assert [r.label for r in dm.records["train"]] == [0, 1, 0, 0, 1, 0]


def test_batches_for_every_stage(dataset_root: Path) -> None:
    dm = make_dm(str(dataset_root), "train.csv", "train.csv", "train.csv", "predict.txt", batch_size=3, test_batch_size=2, test_views=(2, 3), **SMALL)
    train = list(dm.train_dataloader())
    assert len(train) == 2
    for batch in train:
        assert set(batch) == {"video", "label", "video_index", "path", "skipped"}
        assert batch["video"].shape == (3, 3, 4, 32, 32) and batch["label"].dtype == torch.long
        assert 2 not in batch["video_index"].tolist()  # the broken video was replaced
    skipped = [s for b in train for s in b["skipped"]]
    # the broken row is hit once by the sampler, and again whenever a random replacement draws it
    assert {s["video_index"] for s in skipped} == {2} and skipped[0]["path"].endswith("broken.mp4")

    val = list(dm.val_dataloader())
    assert [b["video_index"].tolist() for b in val] == [[0, 1], [3, 4, 5]]  # row 2 dropped
    assert val[0]["video"].shape == (2, 3, 4, 32, 32) and val[0]["label"].tolist() == [1, 0]
    assert [s["video_index"] for b in val for s in b["skipped"]] == [2]

    test = next(iter(dm.test_dataloader()))
    assert test["video"].shape == (2, 6, 3, 4, 32, 32) and test["path"][1].endswith("v1.mp4")
    predict = next(iter(dm.predict_dataloader()))
    assert predict["video"].shape == (2, 6, 3, 4, 32, 32) and predict["label"].tolist() == [-1, -1]


def test_slowfast_and_repeated_augmentation_batches(dataset_root: Path) -> None:
    opts = {**SMALL, "num_frames": 8}
    dm = make_dm(str(dataset_root), "train.csv", test="train.csv", batch_size=2, slowfast_alpha=4, clips_per_video=2, test_views=(2, 1), **opts)
    batch = next(iter(dm.train_dataloader()))
    slow, fast = batch["video"]
    rows = slow.shape[0]
    assert rows in (4, 2) and slow.shape[1:] == (3, 2, 32, 32) and fast.shape == (rows, 3, 8, 32, 32)
    assert batch["label"].shape == (rows,) and batch["video_index"].tolist()[0] == batch["video_index"].tolist()[1]
    assert dm.test_batch_size == 1  # default: batch_size // views videos, at least one
    slow, fast = next(iter(dm.test_dataloader()))["video"]
    assert slow.shape == (1, 2, 3, 2, 32, 32) and fast.shape == (1, 2, 3, 8, 32, 32)


def test_all_failed_batch() -> None:
    out = VideoCollate("test")([{"video": None, "label": 0, "video_index": 4, "path": "a.mp4", "skipped": [{"video_index": 4, "path": "a.mp4", "reason": "r"}]}])
    assert out["video"] is None and out["label"].shape == (0,) and out["video_index"].dtype == torch.long
    assert out["skipped"] == [{"video_index": 4, "path": "a.mp4", "reason": "r"}]


def test_workers_persistent_and_pinned(dataset_root: Path) -> None:
    opts = {**SMALL, "num_workers": 2}
    dm = make_dm(str(dataset_root), "train.csv", val="train.csv", batch_size=2, persistent_workers=True, pin_memory=False, **opts)
    loader = dm.train_dataloader()
    assert loader.persistent_workers and loader.num_workers == 2
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        assert sum(b["video"].shape[0] for b in loader) == 6
    assert [i for b in dm.val_dataloader() for i in b["video_index"].tolist()] == [0, 1, 3, 4, 5]


@pytest.mark.parametrize("world", [1, 2, 3, 4, 7])
def test_eval_shares_are_disjoint_and_unpadded(world: int) -> None:
    shares = [list(ShardedEvalSampler(10, rank=r, world_size=world)) for r in range(world)]
    assert sorted(i for s in shares for i in s) == list(range(10))
    assert [len(ShardedEvalSampler(10, rank=r, world_size=world)) for r in range(world)] == [len(s) for s in shares]


def test_train_sampler_shuffles_per_epoch_and_splits_ranks() -> None:
    a, b = train_sampler(20, seed=3, rank=0, world_size=2), train_sampler(20, seed=3, rank=1, world_size=2)
    epoch0 = list(a)
    assert sorted(epoch0 + list(b)) == list(range(20)) and epoch0 != list(range(0, 20, 2))
    a.set_epoch(1)
    assert list(a) != epoch0
    a.set_epoch(0)
    assert list(a) == epoch0  # reproducible per (seed, epoch)
    with pytest.raises(ValueError, match="rank"):
        ShardedEvalSampler(5, rank=2, world_size=2)


def test_class_order_is_checked_when_loading_state(dataset_root: Path) -> None:
    dm = make_dm(str(dataset_root), "train.csv", **SMALL)
    state = dm.state_dict()
    assert state == {"classes": ["abseiling", "yoga"]}
    dm.load_state_dict(state)
    with pytest.raises(ValueError, match="class order"):
        dm.load_state_dict({"classes": ["yoga", "abseiling"]})


def test_bad_arguments_are_named(dataset_root: Path) -> None:
    with pytest.raises(ValueError, match="root .*nope.* is not a directory"):
        make_dm(str(dataset_root / "nope"), "train.csv").setup("fit")
    with pytest.raises(ValueError, match="missing.csv"):
        make_dm(str(dataset_root), "missing.csv", **SMALL).setup("fit")
    with pytest.raises(ValueError, match="backend"):
        make_dm(str(dataset_root), "train.csv", backend="opencv", **SMALL)
    with pytest.raises(ValueError, match="crop_size"):
        make_dm(str(dataset_root), "train.csv", **{**SMALL, "crop_size": 64})
    dm = make_dm(str(dataset_root), "train.csv", **SMALL)
    with pytest.raises(ValueError, match="no test annotations"):
        dm.test_dataloader()
    assert dm.val_dataloader() == []  # fit without validation data


class _Recorder(L.LightningModule):
    """Minimal module: a linear layer on the mean colour; records what the loaders gave it."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.head = torch.nn.Linear(3, num_classes)
        self.seen: dict[str, list] = {"epochs": [], "val_index": [], "test_index": [], "skipped": []}

    def training_step(self, batch, batch_idx):
        self.seen["epochs"].append(self.trainer.train_dataloader.sampler.epoch)
        return torch.nn.functional.cross_entropy(self.head(batch["video"].mean(dim=(2, 3, 4))), batch["label"])

    def validation_step(self, batch, batch_idx):
        self.seen["val_index"] += batch["video_index"].tolist()

    def test_step(self, batch, batch_idx):
        self.seen["skipped"] += [s["path"] for s in batch["skipped"]]
        if batch["video"] is not None:
            self.seen["test_index"] += batch["video_index"].tolist()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_fit_and_test(dataset_root: Path) -> None:
    dm = make_dm(str(dataset_root), "train.csv", test="train.csv", batch_size=2, test_views=(2, 1), **SMALL)
    model = _Recorder(dm.num_classes)
    trainer = L.Trainer(
        max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
    )
    trainer.fit(model, datamodule=dm)
    assert sorted(set(model.seen["epochs"])) == [0, 1]  # Lightning called set_epoch on our sampler
    assert model.seen["val_index"] == []  # no val data: the loop is skipped, fit still runs
    trainer.test(model, datamodule=dm, verbose=False)
    assert sorted(model.seen["test_index"]) == [0, 1, 3, 4, 5] and len(model.seen["skipped"]) == 1


def _ddp_worker(rank: int, world: int, root: str, port: int, out_dir: str) -> None:
    import json

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        dm = make_dm(root, "train.csv", test="train.csv", batch_size=2, test_batch_size=2, test_views=(1, 1), **SMALL)
        test_rows = [i for b in dm.test_dataloader() for i in b["video_index"].tolist()]
        skipped = [s["video_index"] for b in dm.test_dataloader() for s in b["skipped"]]
        sampler = dm.train_dataloader().sampler
        train = {}
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            train[epoch] = [index for index, _ in sampler]  # (index, seed of its draws) pairs
        Path(out_dir, f"{rank}.json").write_text(json.dumps({"test": test_rows, "skipped": skipped, "train": train}))
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_get_disjoint_unpadded_test_shares(dataset_root: Path, tmp_path: Path) -> None:
    """Two gloo processes: the DataModule reads rank and world size from torch.distributed."""
    import json
    import socket

    import torch.multiprocessing as tmp_mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # fork: the children need no fresh import of torch and Lightning (seconds each here)
    tmp_mp.start_processes(_ddp_worker, args=(2, str(dataset_root), port, str(tmp_path)), nprocs=2, join=True, start_method="fork")
    results = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]
    tests = [r["test"] for r in results]
    assert not set(tests[0]) & set(tests[1])
    assert sorted(tests[0] + tests[1] + results[0]["skipped"] + results[1]["skipped"]) == list(range(6))  # each row once
    for epoch in ("0", "1"):
        shares = [r["train"][epoch] for r in results]
        # 6 = 2 x 3: no padding needed; whole batches of 2: one video per process left out each epoch
        assert len(shares[0]) == len(shares[1]) == 2 and len(set(shares[0] + shares[1])) == 4 and set(shares[0] + shares[1]) <= set(range(6))
    assert results[0]["train"]["0"] != results[0]["train"]["1"]


def test_flip_option_reaches_the_datasets(dataset_root: Path, monkeypatch) -> None:
    from videoattn.data import datasets

    flips = []
    monkeypatch.setattr(datasets, "horizontal_flip", lambda x: flips.append(1) or x.flip(-1))
    for flip in (True, False):
        dm = make_dm(str(dataset_root), "train.csv", flip=flip, **SMALL)
        torch.manual_seed(0)
        flips.clear()
        dm.setup("fit")
        for _ in range(20):
            dm.datasets["train"][0]
        assert (len(flips) > 0) is flip


def test_a_stage_reads_only_its_own_lists(dataset_root: Path, monkeypatch) -> None:
    """test needs only the test list (train.csv and classes.txt may be missing), fit only train."""
    opened: list[str] = []
    from videoattn.data import datamodule as dm_module

    real = dm_module.read_raw_annotations
    monkeypatch.setattr(dm_module, "read_raw_annotations", lambda src, root, **kw: opened.append(str(src)) or real(src, root, **kw))
    dm = make_dm(str(dataset_root), "missing_train.csv", "missing_val.csv", "train.csv", classes=["abseiling", "yoga"], **SMALL)
    dm.setup("test")
    assert opened == ["train.csv"] and len(dm.test_dataloader().dataset) == 6
    with pytest.raises(ValueError, match="missing_train.csv"):
        dm.setup("fit")
    with pytest.raises(ValueError, match="the predict stage needs `predict=`"):
        dm.setup("predict")


def test_test_labels_outside_the_classes_are_named(dataset_root: Path) -> None:
    (dataset_root / "other.csv").write_text("videos/v0.mp4,yoga\nvideos/v1.mp4,zumba\nvideos/v2.mp4,zumba\nvideos/v3.mp4,salsa\n")
    dm = make_dm(str(dataset_root), test="other.csv", classes=["abseiling", "yoga"], **SMALL)
    with pytest.raises(ValueError, match=r"2 labels are not among the 2 classes.*'salsa' \(1 videos\), 'zumba' \(2 videos\)"):
        dm.setup("test")


@pytest.mark.parametrize("source", ["videos/v1.mp4", "videos", "videos/**/*.mp4", "predict.txt"])
def test_predict_takes_a_file_a_folder_a_glob_or_a_list(dataset_root: Path, source: str) -> None:
    (dataset_root / "videos" / "more").mkdir()
    (dataset_root / "videos" / "v0.mp4").rename(dataset_root / "videos" / "more" / "v0.mp4")
    (dataset_root / "predict.txt").write_text("videos/more/v0.mp4\nvideos/v1.mp4\n")
    dm = make_dm(str(dataset_root), predict=source, classes=["abseiling", "yoga"], test_views=(1, 1), **SMALL)
    dm.setup("predict")
    paths = [Path(r.path).relative_to(dataset_root).as_posix() for r in dm.records["predict"]]
    expected = {
        "videos/v1.mp4": ["videos/v1.mp4"],
        "predict.txt": ["videos/more/v0.mp4", "videos/v1.mp4"],
    }.get(source, ["videos/broken.mp4", "videos/more/v0.mp4", "videos/v1.mp4", "videos/v2.mp4", "videos/v3.mp4", "videos/v4.mp4"])
    assert paths == expected and all(r.label == -1 for r in dm.records["predict"])
    batch = next(iter(dm.predict_dataloader()))
    assert batch["label"].tolist() == [-1] * len(batch["label"])


def test_predict_on_absolute_paths_needs_no_root(dataset_root: Path) -> None:
    video = str(dataset_root / "videos" / "v1.mp4")
    dm = make_dm(str(dataset_root / "not here"), predict=video, classes=["a", "b"], **SMALL)
    dm.setup("predict")
    assert [r.path for r in dm.records["predict"]] == [video]


def test_predict_source_that_matches_nothing_is_named(dataset_root: Path) -> None:
    for source, message in (("nothing/*.mp4", "no video files .* match"), ("empty", "no video files"), ("nope.txt", "neither a video file")):
        (dataset_root / "empty").mkdir(exist_ok=True)
        with pytest.raises(ValueError, match=message):
            make_dm(str(dataset_root), predict=source, classes=["a"], **SMALL).setup("predict")


# ---------------------------------------------------------------------------- shards


def _write_shards(root: Path, list_name: str, out: str, **kwargs) -> Path:
    from videoattn.data.annotations import load_annotations
    from videoattn.data.shards import write_shards

    records, classes = load_annotations(str(root / list_name), str(root), kwargs.pop("classes", None))
    write_shards(records, root / out, classes=classes, progress=False, **kwargs)
    return root / out


def _same_batches(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x["video"], y["video"]) and torch.equal(x["label"], y["label"]) and torch.equal(x["video_index"], y["video_index"])
        assert x["path"] == y["path"] and x["skipped"] == y["skipped"]


def test_shards_read_where_lists_are_read_give_the_batches_of_the_files(dataset_root: Path, tmp_path: Path) -> None:
    (dataset_root / "good.csv").write_text("".join(line + "\n" for line in (dataset_root / "train.csv").read_text().splitlines() if "broken" not in line))
    shards = _write_shards(dataset_root, "good.csv", "shards", chunk_bytes=2000)  # several chunks
    opts = dict(batch_size=2, test_batch_size=2, test_views=(2, 3), **SMALL)
    from_files = make_dm(str(dataset_root), "good.csv", "good.csv", "good.csv", "good.csv", **opts)
    for source in ("shards", str(shards), f"file://{shards}", f"local:{shards}"):  # relative to root, absolute, URLs
        dm = make_dm(str(dataset_root), source, source, source, source, shard_cache_dir=str(tmp_path / "cache"), **opts)
        assert dm.classes == from_files.classes == ["abseiling", "yoga"]  # classes.txt of the shards
        dm.setup("fit")
        assert dm.datasets == {} and dm.shard_location("train") is not None  # datasets are made per loader
        for stage in ("val", "test", "predict"):  # one process, no workers: every video once, in list order
            _same_batches(list(getattr(dm, f"{stage}_dataloader")()), list(getattr(from_files, f"{stage}_dataloader")()))
        train = list(dm.train_dataloader())
        assert len(train) == len(dm.train_dataloader()) == 2 and all(b["video"].dtype == torch.uint8 for b in train)
        assert sorted(i for b in train for i in b["video_index"].tolist()) == [0, 1, 2, 3]  # shuffled, whole batches
    assert list(tmp_path.glob("cache/**/chunk-*.bin"))  # the URLs were streamed through LitData's cache


def test_shard_labels_are_mapped_to_the_data_classes_by_name(dataset_root: Path) -> None:
    (dataset_root / "good.csv").write_text("videos/v0.mp4,yoga\nvideos/v1.mp4,abseiling\n")
    _write_shards(dataset_root, "good.csv", "shards", classes=["yoga", "abseiling"])  # written with another order
    dm = make_dm(str(dataset_root), test="shards", classes=["abseiling", "yoga"], test_views=(1, 1), **SMALL)
    dm.setup("test")
    assert next(iter(dm.test_dataloader()))["label"].tolist() == [1, 0]
    with pytest.raises(ValueError, match="test shards at .* have 1 classes that are not among the 2 classes .*'yoga'"):
        make_dm(str(dataset_root), test="shards", classes=["abseiling", "zumba"], **SMALL).setup("test")
    predict = make_dm(str(dataset_root), predict="shards", classes=["abseiling", "zumba"], test_views=(1, 1), **SMALL)
    predict.setup("predict")  # predict: labels outside the classes are unknown, not an error
    assert next(iter(predict.predict_dataloader()))["label"].tolist() == [-1, 0]


def test_a_corrupt_shard_entry_is_reported_and_a_batch_without_any_readable_video_raises(dataset_root: Path, tmp_path: Path) -> None:
    from test_shards import noisy_corrupt

    noisy_corrupt(dataset_root / "videos" / "corrupt.mp4")
    (dataset_root / "mixed.csv").write_text("videos/v0.mp4,yoga\nvideos/corrupt.mp4,yoga\nvideos/v1.mp4,abseiling\n")
    _write_shards(dataset_root, "mixed.csv", "shards", check="probe")  # the corrupt video probes fine: written
    opts = {**SMALL, "num_frames": 8, "sampling_rate": 3}  # clips across the whole video, through its corrupt middle
    dm = make_dm(str(dataset_root), "shards", test="shards", batch_size=3, test_batch_size=3, test_views=(3, 1), **opts)
    test = next(iter(dm.test_dataloader()))
    assert test["video_index"].tolist() == [0, 2] and [s["video_index"] for s in test["skipped"]] == [1]
    assert test["skipped"][0]["path"].endswith("corrupt.mp4") and test["skipped"][0]["reason"]
    train = next(iter(dm.train_dataloader()))  # a stream cannot draw another video: the batch is one short
    assert sorted(train["video_index"].tolist()) == [0, 2] and [s["video_index"] for s in train["skipped"]] == [1]
    (dataset_root / "bad.csv").write_text("videos/corrupt.mp4,yoga\n")
    _write_shards(dataset_root, "bad.csv", "bad_shards", check="probe")
    bad = make_dm(str(dataset_root), "bad_shards", batch_size=1, **opts)
    with pytest.raises(RuntimeError, match="no video of a training batch could be decoded .*corrupt.mp4"):
        next(iter(bad.train_dataloader()))


def test_batches_are_uint8_and_normalised_after_transfer_as_the_float_path(dataset_root: Path) -> None:
    from videoattn.data.transforms import normalize

    dm = make_dm(str(dataset_root), test="train.csv", test_views=(2, 3), mean=(0.4, 0.45, 0.5), std=(0.2, 0.25, 0.3), **SMALL)
    batch = next(iter(dm.test_dataloader()))
    raw = batch["video"]
    assert raw.dtype == torch.uint8
    model_input = dm.on_after_batch_transfer(batch, 0)["video"]
    # the float path: the same uint8 pixels normalised as the datasets did before (frames [..., T, 3, H, W])
    expected = normalize(raw.transpose(-4, -3), (0.4, 0.45, 0.5), (0.2, 0.25, 0.3))
    assert model_input.dtype == torch.float32 and torch.equal(model_input, expected)
    assert dm.on_after_batch_transfer({"video": None, "label": torch.zeros(0)}, 0)["video"] is None


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("slowfast", [False, True])
def test_train_clips_finished_on_the_device_give_the_same_model_inputs(dataset_root: Path, workers: int, slowfast: bool) -> None:
    """finish_on_device=True: batches of unfinished windows ([B, T, crop, crop, 3] uint8 and a
    `window` list) that on_after_batch_transfer finishes and normalises into the model inputs of
    finish_on_device=False, batch for batch (in process, and through 2 workers' slot pools)."""
    opts = dict(SMALL, num_workers=workers, batch_size=2, pool_slots=2, **({"num_frames": 8, "slowfast_alpha": 4} if slowfast else {}))
    inputs = {}
    for on_device in (False, True):
        dm = make_dm(str(dataset_root), "train.csv", finish_on_device=on_device, **opts)
        dm.setup("fit")
        batches = list(dm.train_dataloader())
        if on_device:
            assert all(b["video"].shape[1:] == (opts["num_frames"], 32, 32, 3) and len(b["window"]) == len(b["label"]) for b in batches)
        inputs[on_device] = [dm.on_after_batch_transfer(b, 0) for b in batches]
    for a, b in zip(inputs[False], inputs[True], strict=True):
        assert "window" not in b and torch.equal(a["video_index"], b["video_index"])
        va, vb = (a["video"], b["video"]) if slowfast else ([a["video"]], [b["video"]])
        assert all(x.dtype == torch.float32 and torch.equal(x, y) for x, y in zip(va, vb, strict=True))


def test_train_clips_are_finished_on_the_device_when_training_on_an_accelerator(dataset_root: Path) -> None:
    """The default: in the workers without a trainer or on the CPU, on the device otherwise."""
    from types import SimpleNamespace

    dm = make_dm(str(dataset_root), "train.csv", **SMALL)
    assert dm._train_finish() == "worker"
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cuda", 0)))
    assert dm._train_finish() == "device"
    dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")))
    assert dm._train_finish() == "worker"
    assert make_dm(str(dataset_root), "train.csv", finish_on_device=True, **SMALL)._train_finish() == "device"


def test_train_sampler_resumes_mid_epoch_and_after_an_epoch_end() -> None:
    sampler = train_sampler(10, seed=1, rank=0, world_size=1, batch_size=4, sample_seeds=True)
    assert len(sampler) == 8  # whole batches of 4
    sampler.set_epoch(2)
    order = list(sampler)
    assert len(order) == 8 and len({i for i, _ in order}) == 8 and len({s for _, s in order}) == 8
    it = iter(sampler)
    taken = [next(it) for _ in range(3)]
    state = sampler.state_dict()
    assert state == {"epoch": 2, "yielded": 3} and taken == order[:3]
    resumed = train_sampler(10, seed=1, rank=0, world_size=1, batch_size=4, sample_seeds=True)
    resumed.load_state_dict(state)
    assert list(resumed) == order[3:]  # the rest of epoch 2
    finished = train_sampler(10, seed=1, rank=0, world_size=1, batch_size=4, sample_seeds=True)
    finished.load_state_dict({"epoch": 2, "yielded": 8})
    following = train_sampler(10, seed=1, rank=0, world_size=1, batch_size=4, sample_seeds=True)
    following.set_epoch(3)
    assert list(finished) == list(following) and finished.epoch == 3  # an epoch that was over: the next one
    finished.load_state_dict({"epoch": 2, "yielded": 5})
    finished.set_epoch(4)  # another epoch: from its start
    assert len(list(finished)) == 8


# ------------------------------------------------------------------------- at Kinetics scale


def _kinetics_csv(path: Path, rows: int) -> Path:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 36**6, rows)
    with open(path, "w") as f:
        f.write("label,youtube_id,time_start,time_end,split\n")
        f.writelines(f"class {i % 400},{i:05d}{v:011d},{i % 300},{i % 300 + 10},train\n" for i, v in enumerate(ids))
    return path


def test_setup_reads_the_list_once_with_no_work_per_row_on_paths_or_files(tmp_path: Path, monkeypatch) -> None:
    """The list is read once (class names and records come from one read; its first line is
    peeked at to detect the format unless it is named: before, the whole list was read twice);
    pathlib and the file system are used a bounded number of times (the layout probe), not per
    row; the records take less than 120 bytes per row (a 240,000-row list: under 30 MB)."""
    import builtins
    import cProfile
    import gc
    import pstats
    import tracemalloc

    opened: list[str] = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda file, *a, **k: opened.append(str(file)) or real_open(file, *a, **k))
    counts = {}
    for rows in (2_000, 20_000):
        csv_path = _kinetics_csv(tmp_path / f"train{rows}.csv", rows)
        opened.clear()
        make_dm(str(tmp_path), train=csv_path.name, format="kinetics", **SMALL).setup("fit")
        assert opened.count(str(csv_path)) == 1
        opened.clear()
        dm = make_dm(str(tmp_path), train=csv_path.name, **SMALL)
        profile = cProfile.Profile()
        profile.runcall(dm.setup, "fit")
        assert opened.count(str(csv_path)) == 2 and dm.num_classes == 400 and len(dm.records["train"]) == rows
        stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
        counts[rows] = {
            "pathlib": sum(s[1] for (file, _, _), s in stats.items() if file.endswith("pathlib.py")),
            "stat": sum(s[1] for (file, _, name), s in stats.items() if file == "~" and "stat" in name),
        }
    assert counts[2_000] == counts[20_000], counts  # nothing grows with the rows
    assert counts[20_000]["stat"] <= 6 * 64 + 32  # the layout probe: 64 rows x 6 layouts
    monkeypatch.setattr(builtins, "open", real_open)
    dm = make_dm(str(tmp_path), train="train20000.csv", **SMALL)
    gc.collect()
    tracemalloc.start()
    dm.setup("fit")
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert held / 20_000 < 120, f"{held / 20_000:.0f} bytes per row"
