"""Tests of the synthetic action dataset: class pairs differ only by time order, nuisances vary,
generation is deterministic per seed and writes readable H.264 files and annotation files.
"""
from __future__ import annotations

import dataclasses

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from videoattn.synth import ACTIONS, CLASSES, MOTIONS, generate_dataset, render_video, sample_spec, video_rng
from videoattn.tools.synth import main as synth_main


def test_at_least_ten_classes_in_time_reversed_pairs() -> None:
    assert len(CLASSES) >= 10 and len(set(CLASSES)) == len(CLASSES)
    assert len(MOTIONS) * 2 == len(CLASSES)
    for _, forwards, backwards in MOTIONS.values():
        assert not ACTIONS[forwards].reverse and ACTIONS[backwards].reverse


@pytest.mark.parametrize("motion", list(MOTIONS))
def test_partner_classes_are_the_same_frames_reversed(motion: str) -> None:
    _, forwards, backwards = MOTIONS[motion]
    spec = sample_spec(np.random.default_rng(1), frames=(12, 12))
    a, _ = render_video(forwards, np.random.default_rng(7), spec)
    b, _ = render_video(backwards, np.random.default_rng(7), spec)
    np.testing.assert_array_equal(a, b[::-1])  # no single frame tells the pair apart
    assert not np.array_equal(a[0], a[-1])  # but the video does change over time


def test_motions_move_the_actors() -> None:
    """The forward classes do what their names say (in image coordinates, y down)."""
    rng = np.random.default_rng(0)
    from videoattn.synth.actions import Scene, chase, distance, horizontal, opacity, rotation, scale, vertical

    scene = Scene(30, 96, 128, np.zeros(3))
    colour = lambda: np.ones(3)  # noqa: E731
    (s,) = horizontal(rng, scene, colour)
    assert s.x[-1] - s.x[0] > 0.3 * scene.width
    (s,) = vertical(rng, scene, colour)
    assert s.y[-1] - s.y[0] > 0.3 * scene.height
    a, b = distance(rng, scene, colour)
    gap = np.hypot(a.x - b.x, a.y - b.y)
    assert gap[-1] - gap[0] > 0.15 * scene.short and np.all(np.diff(gap) >= 0)
    (s,) = opacity(rng, scene, colour)
    assert s.alpha[0] < 0.2 and s.alpha[-1] > 0.8
    (s,) = scale(rng, scene, colour)
    assert s.size[-1] > 2 * s.size[0]
    (s,) = rotation(rng, scene, colour)
    assert np.all(np.diff(s.angle) > 0)  # growing angle = clockwise on screen
    follower, leader = chase(rng, scene, colour)
    assert follower.shape == "disk" and leader.shape == "square"
    direction = np.array([follower.x[-1] - follower.x[0], follower.y[-1] - follower.y[0]])
    ahead = np.array([leader.x[0] - follower.x[0], leader.y[0] - follower.y[0]])
    assert direction @ ahead > 0  # the square is in front of the circle: the circle chases it
    for sprite in (follower, leader):
        assert sprite.x.min() >= 0 and sprite.x.max() <= scene.width and sprite.y.min() >= 0 and sprite.y.max() <= scene.height


def test_nuisances_vary_like_real_data() -> None:
    specs = [sample_spec(np.random.default_rng(i)) for i in range(200)]
    assert {s.fps for s in specs} == {24.0, 25.0, 29.97, 30.0}
    assert len({(s.height, s.width) for s in specs}) >= 5
    assert all(s.height % 2 == 0 and s.width % 2 == 0 and 64 <= min(s.height, s.width) <= 80 for s in specs)
    lengths = [s.num_frames for s in specs]
    assert min(lengths) >= 32 and max(lengths) <= 48 and len(set(lengths)) > 12
    assert len({s.num_distractors for s in specs}) > 1


def test_unknown_class_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown class 'jumping'"):
        render_video("jumping", np.random.default_rng(0))


def _decode(path: Path) -> tuple[np.ndarray, float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        return frames, float(stream.average_rate)


def test_generate_dataset_files_and_determinism(tmp_path: Path) -> None:
    kwargs = dict(videos_per_class=2, split_fractions=(0.5, 0.0, 0.5), frames=(16, 20), progress=False)
    paths = generate_dataset(tmp_path / "a", seed=3, workers=2, **kwargs)
    # the same seed with another number of processes gives the same bytes
    generate_dataset(tmp_path / "b", seed=3, workers=1, **kwargs)
    generate_dataset(tmp_path / "c", seed=4, workers=1, **kwargs)
    assert (tmp_path / "a" / "classes.txt").read_text().split() == CLASSES
    train = [line.split() for line in paths["train"].read_text().splitlines()]
    test = [line.split() for line in paths["test"].read_text().splitlines()]
    assert paths["val"].read_text() == ""
    assert len(train) == len(test) == len(CLASSES)
    assert sorted(int(label) for _, label in train) == list(range(len(CLASSES)))
    for rel, label in train + test:
        assert not Path(rel).is_absolute() and CLASSES[int(label)] in rel
        a, b, c = (tmp_path / d / rel for d in "abc")
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes() != c.read_bytes()
    rel, label = test[0]
    frames, fps = _decode(tmp_path / "a" / rel)
    rng = video_rng(3, int(label), 1)
    expected, spec = render_video(int(label), rng, sample_spec(rng, frames=(16, 20)))
    assert frames.shape == expected.shape and abs(fps - spec.fps) < 0.01
    assert np.abs(frames.astype(float) - expected).mean() < 6  # lossy H.264, same content


def test_cli_writes_dataset_and_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    assert synth_main([str(out), "--videos-per-class", "1", "--seed", "1", "--min-frames", "8", "--max-frames", "10", "--workers", "1", "--quiet"]) == 0
    assert f"wrote {len(CLASSES)} videos of {len(CLASSES)} classes" in capsys.readouterr().out
    assert len(list(out.glob("videos/*/*.mp4"))) == len(CLASSES)
    assert synth_main([str(out), "--videos-per-class", "0", "--quiet"]) == 2
    assert "videos_per_class must be >= 1" in capsys.readouterr().out


def test_synthetic_datamodule_keeps_left_and_right_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No horizontal flip (it would swap moving_left/right, clockwise/anticlockwise), and the
    label order of the generator's classes.txt."""
    import videoattn.data.datasets as datasets
    from videoattn.synth.datamodule import SyntheticDataModule

    flips = []
    monkeypatch.setattr(datasets, "horizontal_flip", lambda x: flips.append(1) or x.flip(-1))
    generate_dataset(tmp_path, videos_per_class=1, split_fractions=(1.0, 0.0, 0.0), frames=(12, 12), workers=1, progress=False)
    clip = dict(num_frames=4, sampling_rate=2, crop_size=32, train_short_side=(32, 32))
    dm = SyntheticDataModule(str(tmp_path), "train.csv", num_workers=0)
    dm = SyntheticDataModule(str(tmp_path), "train.csv", clip=dataclasses.replace(dm.clip, **clip), num_workers=0)
    dm.setup("fit")
    assert dm.classes == CLASSES and dm.num_classes == len(CLASSES)
    torch.manual_seed(0)
    for _ in range(20):
        dm.datasets["train"][0]
    assert flips == []
    flipping = SyntheticDataModule(str(tmp_path), "train.csv", clip=dataclasses.replace(dm.clip, flip=True), num_workers=0)
    flipping.setup("fit")
    for _ in range(20):
        flipping.datasets["train"][0]
    assert 0 < len(flips) < 20
