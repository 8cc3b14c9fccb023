"""Tests for videoattn.data.datasets (VideoClipDataset, VideoClips, ShardSamples): which frames"""
# end up in train / val / test samples (videos whose frame i is a flat grey 20 + 4*i), uint8
# clips that normalise to the numbers of the float path, multi-view test equal to decoding
# each view separately, repeated augmentation from one decode, seeded keys, short and tiny
# videos, bad videos (train replaces them, evaluation reports them; logged once per path and
# process), and shard entries giving the samples of their files.
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from videoattn.data import datasets as datasets_module
from videoattn.data.annotations import VideoRecord
from videoattn.data.clip import ClipSettings
from videoattn.data.datasets import VideoClipDataset
from videoattn.data.decode import read_frames
from videoattn.data.sampling import uniform_clips
from videoattn.data.transforms import normalize, normalize_video, short_side_resize, spatial_crops, to_tchw
from videoattn.video_io import write_video

MEAN, STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


def grey_video(path: Path, num_frames: int = 40, h: int = 32, w: int = 48) -> Path:
    """Frame i is flat grey 20 + 4 * i (survives H.264 to within a level or two)."""
    values = (20 + 4 * np.arange(num_frames)).astype(np.uint8)
    frames = np.broadcast_to(values[:, None, None, None], (num_frames, h, w, 3)).copy()
    return write_video(path, frames, fps=30, gop=10, crf=0)


def frame_numbers(video: torch.Tensor) -> list[int]:
    """[C, T, H, W] grey clip (uint8, or normalised) -> the source frame index of each of its T frames."""
    grey = video.float() if video.dtype == torch.uint8 else (video * STD[0] + MEAN[0]) * 255  # undo normalisation
    return [round((float(v) - 20) / 4) for v in grey.mean(dim=(0, 2, 3))]


@pytest.fixture
def grey_records(tmp_path: Path) -> list[VideoRecord]:
    return [VideoRecord(str(grey_video(tmp_path / f"g{i}.mp4", 40)), i % 2, i) for i in range(3)]


SMALL = dict(train_short_side=(32, 40), crop_size=32, test_short_side=32, test_crop_size=32)


def test_train_clip_is_a_strided_clip_with_random_scale_and_crop(grey_records) -> None:
    ds = VideoClipDataset(grey_records, "train", ClipSettings(num_frames=4, sampling_rate=3, **SMALL))
    torch.manual_seed(0)
    starts = set()
    for _ in range(12):
        sample = ds[1]
        assert sample["label"] == 1 and sample["video_index"] == 1 and sample["path"] == grey_records[1].path
        assert sample["skipped"] == []
        video = sample["video"]
        assert video.shape == (1, 3, 4, 32, 32) and video.dtype == torch.uint8
        idx = frame_numbers(video[0])
        assert np.diff(idx).tolist() == [3, 3, 3] and 0 <= idx[0] <= 40 - 10
        starts.add(idx[0])
    assert len(starts) > 3  # the start is random


def test_val_is_the_centre_clip(grey_records) -> None:
    ds = VideoClipDataset(grey_records, "val", ClipSettings(num_frames=4, sampling_rate=3, **SMALL))
    sample = ds[0]
    assert sample["video"].shape == (1, 3, 4, 32, 32)
    assert frame_numbers(sample["video"][0]) == [15, 18, 21, 24]  # span 10, slack 30 -> start 15


def test_test_views_from_one_decode_equal_per_view_decoding(grey_records, tmp_path: Path, make_video, monkeypatch) -> None:
    path = make_video("moving.mp4", num_frames=30, height=48, width=64)
    calls = []
    original = datasets_module.decode_frames
    monkeypatch.setattr(datasets_module, "decode_frames", lambda *a, **k: calls.append(a[0]) or original(*a, **k))
    ds = VideoClipDataset([VideoRecord(str(path), 0, 0)], "test", ClipSettings(num_frames=4, sampling_rate=2, test_views=(3, 3), crop_size=36, test_short_side=40, test_crop_size=36, train_short_side=(40, 40)))
    video = ds[0]["video"]
    assert len(calls) == 1  # one decode for all 9 views
    assert video.shape == (9, 3, 4, 36, 36)
    assert video.dtype == torch.uint8
    expected = []
    for clip in uniform_clips(30, 4, 2, 3):  # each view decoded separately, normalised as floats
        frames = short_side_resize(to_tchw(read_frames(path, clip)), 40)
        expected += [normalize(c) for c in spatial_crops(frames, 36, 3)]
    # the model's input: the uint8 views normalised (on the device) equal the float path
    assert torch.equal(normalize_video(video), torch.stack(expected))  # temporal-major view order


def test_repeated_augmentation_uses_one_decode(grey_records, monkeypatch) -> None:
    calls = []
    original = datasets_module.decode_frames
    monkeypatch.setattr(datasets_module, "decode_frames", lambda *a, **k: calls.append(a[0]) or original(*a, **k))
    ds = VideoClipDataset(grey_records, "train", ClipSettings(num_frames=4, sampling_rate=2, clips_per_video=3, **SMALL))
    torch.manual_seed(1)
    video = ds[2]["video"]
    assert video.shape == (3, 3, 4, 32, 32) and len(calls) == 1
    assert all(np.diff(frame_numbers(v)).tolist() == [2, 2, 2] for v in video)


def test_short_and_tiny_videos_are_clamped_and_upscaled(tmp_path: Path) -> None:
    path = grey_video(tmp_path / "tiny.mp4", num_frames=5, h=16, w=24)
    ds = VideoClipDataset([VideoRecord(str(path), 0, 0)], "val", ClipSettings(num_frames=4, sampling_rate=2, **SMALL))
    video = ds[0]["video"]
    assert video.shape == (1, 3, 4, 32, 32)
    assert frame_numbers(video[0]) == [0, 2, 4, 4]  # span 7 > 5 frames: last frame repeated


def test_slowfast_samples(grey_records) -> None:
    ds = VideoClipDataset(grey_records, "test", ClipSettings(num_frames=8, sampling_rate=2, test_views=(2, 1), slowfast_alpha=4, **SMALL))
    slow, fast = ds[0]["video"]
    assert slow.shape == (2, 3, 2, 32, 32) and fast.shape == (2, 3, 8, 32, 32)
    assert frame_numbers(slow[0]) == [frame_numbers(fast[0])[i] for i in (0, 7)]


def test_bad_videos_train_replaces_eval_reports_warn_once(grey_records, tmp_path: Path, caplog) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 100)
    records = [VideoRecord(str(bad), 1, 0)] + [VideoRecord(r.path, r.label, r.row + 1) for r in grey_records]
    datasets_module._WARNED.discard(str(bad))
    train = VideoClipDataset(records, "train", ClipSettings(num_frames=2, sampling_rate=2, **SMALL))
    with caplog.at_level(logging.DEBUG, logger="videoattn.data"):
        torch.manual_seed(0)
        sample = train[0]
        assert sample["video"] is not None and sample["path"] != str(bad)
        assert sample["skipped"][0]["path"] == str(bad) and sample["skipped"][0]["video_index"] == 0
        assert sample["skipped"][0]["reason"]
        test = VideoClipDataset(records, "test", ClipSettings(num_frames=2, sampling_rate=2, test_views=(2, 1), **SMALL))
        failed = test[0]
        assert failed["video"] is None and failed["video_index"] == 0 and failed["label"] == 1
        assert failed["skipped"] == [{"video_index": 0, "path": str(bad), "reason": failed["skipped"][0]["reason"]}]
    assert sum(str(bad) in r.getMessage() for r in caplog.records) == 1  # logged once, not per access


def test_all_bad_training_data_raises_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_text("text")
    ds = VideoClipDataset([VideoRecord(str(bad), 0, 0)], "train", ClipSettings(**SMALL), max_retries=3)
    with pytest.raises(RuntimeError, match="4 videos in a row failed.*check-data"):
        ds[0]


def test_invalid_options_are_named() -> None:
    recs = [VideoRecord("x.mp4", 0, 0)]
    with pytest.raises(ValueError, match="mode"):
        VideoClipDataset(recs, "training")
    with pytest.raises(ValueError, match="crop_size 224 exceeds the smallest clip.train_short_side 128"):
        VideoClipDataset(recs, "train", ClipSettings(train_short_side=(128, 160)))
    with pytest.raises(ValueError, match="test_views"):
        VideoClipDataset(recs, "test", ClipSettings(test_views=(10, 2)))
    with pytest.raises(ValueError, match="slowfast_alpha"):
        VideoClipDataset(recs, "train", ClipSettings(num_frames=4, slowfast_alpha=8))


def test_target_fps_keeps_clip_duration(tmp_path: Path) -> None:
    """A 15 fps video sampled for 30 fps: every 4 frames at 30 fps = every 2 frames here."""
    frames = (20 + 4 * np.arange(40)).astype(np.uint8)
    video = np.broadcast_to(frames[:, None, None, None], (40, 32, 48, 3)).copy()
    path = write_video(tmp_path / "slow.mp4", video, fps=15, gop=10, crf=0)
    ds = VideoClipDataset([VideoRecord(str(path), 0, 0)], "val", ClipSettings(num_frames=4, sampling_rate=4, target_fps=30, **SMALL))
    assert frame_numbers(ds[0]["video"][0]) == [16, 18, 20, 22]  # stride 2, span 7, slack 33 -> start 16
    native = VideoClipDataset([VideoRecord(str(path), 0, 0)], "val", ClipSettings(num_frames=4, sampling_rate=4, **SMALL))
    assert np.diff(frame_numbers(native[0]["video"][0])).tolist() == [4, 4, 4]


def test_seeded_keys_give_reproducible_draws_without_touching_the_global_generator(tmp_path: Path, make_video) -> None:
    path = make_video("moving.mp4", num_frames=40, height=48, width=64)
    ds = VideoClipDataset([VideoRecord(str(path), 0, 0)], "train", ClipSettings(num_frames=4, sampling_rate=2, train_short_side=(32, 48), crop_size=32))
    before = torch.get_rng_state()
    first, again = ds[(0, 123)]["video"], ds[(0, 123)]["video"]
    assert torch.equal(first, again)
    others = [ds[(0, seed)]["video"] for seed in range(8)]
    assert sum(not torch.equal(first, v) for v in others) >= 6  # start, scale, crop and flip change with the seed
    assert torch.equal(torch.get_rng_state(), before)


def _entry(path: str, label: int, row: int):
    from videoattn.data.decode import probe_video
    from videoattn.data.shards import ShardEntry

    return ShardEntry(Path(path).read_bytes(), label, row, path, probe_video(path))


@pytest.mark.parametrize("mode", ["train", "val", "test"])
def test_a_shard_entry_gives_the_sample_of_its_file(tmp_path: Path, make_video, mode: str) -> None:
    from videoattn.data.datasets import ShardSamples, VideoClips
    from videoattn.data.samplers import sample_seed

    clip = ClipSettings(num_frames=4, sampling_rate=2, test_views=(2, 3), train_short_side=(32, 40), crop_size=32, test_short_side=32, test_crop_size=32)
    paths = [str(make_video(f"v{i}.mp4", num_frames=24 + i, height=32, width=48, seed=i)) for i in range(3)]
    files = VideoClipDataset([VideoRecord(p, i % 2, i) for i, p in enumerate(paths)], mode, clip)
    shards = ShardSamples(VideoClips(mode, clip), seed=7 if mode == "train" else None)
    shards.set_epoch(3)
    for i, p in enumerate(paths):
        key = (i, sample_seed(7, 3, i)) if mode == "train" else i  # what the train sampler gives for epoch 3
        expected, got = files[key], shards(_entry(p, i % 2, i))
        assert torch.equal(got["video"], expected["video"]) and got["video"].dtype == torch.uint8
        assert {k: got[k] for k in ("label", "video_index", "path", "skipped")} == {k: expected[k] for k in ("label", "video_index", "path", "skipped")}


def test_a_corrupt_shard_entry_is_skipped_and_labels_are_mapped(tmp_path: Path, make_video) -> None:
    from videoattn.data.datasets import ShardSamples, VideoClips
    from videoattn.data.shards import ShardEntry

    good = _entry(str(make_video("v.mp4", num_frames=20, height=32, width=48)), 1, 4)
    corrupt = ShardEntry(b"\0" * 300, 0, 5, "/data/bad.mp4", good.info)
    for mode in ("train", "test"):
        samples = ShardSamples(VideoClips(mode, ClipSettings(num_frames=2, sampling_rate=2, test_views=(1, 1), **SMALL)), labels=[2, 0], seed=0)
        failed = samples(corrupt)
        assert failed["video"] is None and failed["label"] == 2 and failed["video_index"] == 5
        assert failed["skipped"][0]["path"] == "/data/bad.mp4" and failed["skipped"][0]["video_index"] == 5 and failed["skipped"][0]["reason"]
        ok = samples(good)
        assert ok["video"] is not None and ok["label"] == 0 and ok["skipped"] == []


@pytest.mark.parametrize(
    "clip",
    [
        ClipSettings(num_frames=4, sampling_rate=2, train_short_side=(36, 48), crop_size=32),  # frames scaled up: windows of 22-32 px
        ClipSettings(num_frames=4, sampling_rate=2, train_short_side=(36, 48), crop_size=32, clips_per_video=3),  # repeated clips
        ClipSettings(num_frames=4, sampling_rate=2, train_short_side=(24, 28), crop_size=20),  # scaled down: windows of 23-27 px
        ClipSettings(num_frames=8, sampling_rate=1, train_short_side=(36, 48), crop_size=32, slowfast_alpha=4),
    ],
    ids=["upscaled", "repeated", "downscaled", "slowfast"],
)
def test_train_clips_finished_on_the_device_equal_the_workers(tmp_path: Path, make_video, clip: ClipSettings) -> None:
    """finish="device": each clip's window as decoded, [K, T, crop, crop, 3], and (side, flip);
    transforms.finish_clips (then the pathways) gives the very clips the worker makes, for the
    same draws, from files and from shard entries. Windows larger than the crop are resized in
    the worker (side == crop)."""
    from videoattn.data.datasets import ShardSamples, VideoClips
    from videoattn.data.samplers import sample_seed
    from videoattn.data.transforms import finish_clips, pack_pathways

    path = str(make_video("moving.mp4", num_frames=40, height=32, width=48))
    worker = VideoClipDataset([VideoRecord(path, 0, 0)], "train", clip)
    device = VideoClipDataset([VideoRecord(path, 0, 0)], "train", clip)
    device.clips.finish = "device"
    k, t, crop = clip.clips_per_video, clip.num_frames, clip.crop_size

    def finished(sample: dict) -> list[torch.Tensor]:
        assert sample["video"].shape == (k, t, crop, crop, 3) and len(sample["window"]) == k
        video = finish_clips(sample["video"], sample["window"], crop)
        return [video] if clip.slowfast_alpha is None else pack_pathways(video, clip.slowfast_alpha)

    def clips(sample: dict) -> list[torch.Tensor]:
        return sample["video"] if isinstance(sample["video"], list) else [sample["video"]]

    flips, sides = set(), set()
    for seed in range(8):
        got = device[(0, seed)]
        assert all(torch.equal(a, b) for a, b in zip(finished(got), clips(worker[(0, seed)]), strict=True))
        flips |= {flip for _, flip in got["window"]}
        sides |= {side for side, _ in got["window"]}
    assert flips == {False, True}
    assert sides == {crop} if crop == 20 else max(sides) < crop
    shard = ShardSamples(VideoClips("train", clip, finish="device"), seed=5)
    got = shard(_entry(path, 0, 0))
    assert all(torch.equal(a, b) for a, b in zip(finished(got), clips(worker[(0, sample_seed(5, 0, 0))]), strict=True))
    assert "window" not in worker[(0, 0)]
    with pytest.raises(ValueError, match="finish must be one of"):
        VideoClips("train", clip, finish="gpu")
