"""Tests of the temporal task of the synthetic dataset: the two classes of a pair differ only in the
late event (no single event tells them apart), every clip of the recipe holds both events farther
apart in time than the probe backbone's temporal receptive field (measured on the networks, and
no position of any stage of i3d_probe or i3d_probe_lr depends on both events), the gap between
them is empty, nuisances vary, generation is deterministic and writes real H.264 files and lists.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import yaml
from conftest import pretend_pretrained

from videoattn.data.clip import ClipSettings
from videoattn.data.sampling import clip_span, uniform_clips
from videoattn.models import create_model, res_stage_paths
from videoattn.synth import RELATIONS, TEMPORAL_CLASSES, generate_dataset, get_task, video_rng
from videoattn.synth import relations as spatial
from videoattn.synth import temporal
from videoattn.synth.canvas import draw_shape
from videoattn.synth.temporal import (
    CLIP_FRAMES, FRAME_SIZE, FRAMES, MIN_SEPARATION, TONES, event_lengths, sample_temporal_scene, sample_temporal_spec, temporal_video,
)
from videoattn.tools.synth import main as synth_main

ROOT = Path(__file__).parent.parent
PAIRS = list(RELATIONS.items())


def _scene(label: int | str, seed: int, frames: tuple[int, int] = FRAMES):
    rng = np.random.default_rng(seed)
    return sample_temporal_scene(label, rng, sample_temporal_spec(rng, frames=frames))


def _recipe_clip() -> ClipSettings:
    """The clip settings of configs/temporal.yaml, the recipe every temporal run uses."""
    return ClipSettings(**yaml.safe_load((ROOT / "configs" / "temporal.yaml").read_text())["data"]["init_args"]["clip"])


def _temporal_fields(model: torch.nn.Module, num_frames: int = 32, size: int = 16) -> list[int]:
    """Per residual stage, the frames of the input on which the centre time position of the stage's
    output depends: the gradient of that position (every channel, row and column) w.r.t. the input
    clip, in eval mode (one forward pass, one backward pass per stage)."""
    captured: list[torch.Tensor] = []
    handles = [model.get_submodule(p).register_forward_hook(lambda m, a, out: captured.append(out)) for p in res_stage_paths(model)]
    x = torch.randn(1, 3, num_frames, size, size, generator=torch.Generator().manual_seed(0), requires_grad=True)
    try:
        model.eval()(x)
    finally:
        for h in handles:
            h.remove()
    fields = []
    for out in captured:  # (1, C, T', H', W') per stage
        (grad,) = torch.autograd.grad(out[:, :, out.shape[2] // 2].pow(2).sum(), x, retain_graph=True)
        frames = (grad.abs().sum(dim=(0, 1, 3, 4)) > 0).nonzero().flatten()  # input frames it depends on
        fields.append(int(frames[-1] - frames[0] + 1) if 0 < frames[0] and frames[-1] < num_frames - 1 else num_frames)
    return fields


def test_four_classes_registered_with_their_video_lengths() -> None:
    task = get_task("temporal")
    assert task.classes == TEMPORAL_CLASSES == ["same_colour", "different_colour", "same_shade", "different_shade"]
    assert task.frames == FRAMES == (48, 56)
    with pytest.raises(ValueError, match="unknown class 'bigger'"):
        _scene("bigger", 0)
    with pytest.raises(ValueError, match=r"frames \(32, 48\): the temporal task's videos are 48-70 frames long"):
        sample_temporal_spec(np.random.default_rng(0), frames=(32, 48))
    with pytest.raises(ValueError, match="48-70 frames long, got 71"):
        event_lengths(np.random.default_rng(0), 71)
    assert temporal.LONGEST == 70 and sample_temporal_spec(np.random.default_rng(0), frames=(70, 70)).num_frames == 70


@pytest.mark.parametrize("relation, pair", PAIRS, ids=[r for r, _ in PAIRS])
def test_the_two_classes_of_a_pair_differ_only_in_the_late_event(relation: str, pair: tuple[str, str]) -> None:
    """The same random draws give both classes: every frame before B appears is pixel-identical;
    after it, only B's pixels differ, and only in B's tone."""
    for seed in range(3):
        spec = sample_temporal_spec(np.random.default_rng(100 + seed))
        holds, holds_scene = temporal_video(pair[0], np.random.default_rng(seed), spec)
        not_holds, not_scene = temporal_video(pair[1], np.random.default_rng(seed), spec)
        assert (holds_scene.a_end, holds_scene.b_start) == (not_scene.a_end, not_scene.b_start)
        differ = np.any(holds != not_holds, axis=-1)  # [T, H, W]
        assert differ.any() and not differ[: holds_scene.b_start].any()
        b = not_scene.sprites[1]
        reach = temporal.EXTENT * b.size + 1.5
        for i in np.nonzero(differ.any(axis=(1, 2)))[0]:
            ys, xs = np.nonzero(differ[i])
            assert np.hypot(xs - b.x[i], ys - b.y[i]).max() <= reach  # only where B is drawn
        changed = {k for k in ("shape", "tone", "size", "angle") if getattr(holds_scene.objects[1], k) != getattr(not_scene.objects[1], k)}
        assert holds_scene.objects[0] == not_scene.objects[0] and changed == {"tone"}


@pytest.mark.parametrize("relation, pair", PAIRS, ids=[r for r, _ in PAIRS])
def test_no_single_event_tells_the_pair_apart(relation: str, pair: tuple[str, str]) -> None:
    """Each event's tone is uniform in both classes of a pair, and its timing does not depend on the
    class; only the joint of A and B differs: the relation holds in every video of one class and in
    none of the other."""
    n = 600
    counts, timings = {}, {}
    for holds, name in zip((True, False), pair):
        scenes = [_scene(name, seed) for seed in range(n)]
        for which in (0, 1):
            counts[holds, which] = Counter(s.objects[which].tone for s in scenes)
        timings[holds] = [(s.a_end, s.b_start) for s in scenes]
        same = [s.objects[0].tone == s.objects[1].tone for s in scenes]
        assert all(same) if holds else not any(same)
    assert timings[True] == timings[False]  # the same draws: the same timelines, whatever the class
    support = set(range(len(TONES[relation])))
    for which in (0, 1):
        for holds in (True, False):
            c = counts[holds, which]
            assert set(c) == support
            for v in support:  # uniform: within 5 binomial standard deviations
                p = 1 / len(support)
                assert abs(c[v] / n - p) < 5 * np.sqrt(p * (1 - p) / n), (which, holds, c)


@pytest.mark.parametrize("relation", list(RELATIONS))
def test_tones_are_drawn_as_in_the_relations_task(relation: str) -> None:
    """The pair distribution is the relations task's (A uniform; B the same, or uniform among the
    others), so the bound tests/test_synth_relations.py enumerates for a sum of per-object scores
    (0.75 within a pair) holds here for a sum of per-event scores."""
    for holds in (True, False):
        for seed in range(50):
            ours = temporal._tones(relation, holds, np.random.default_rng(seed))
            theirs = spatial._relational_pair(relation, holds, np.random.default_rng(seed))
            assert ours == theirs


def test_every_clip_of_the_recipe_holds_both_events_farther_apart_than_the_fields() -> None:
    """With configs/temporal.yaml's clip (48 consecutive frames), every view a test takes and every
    window a training clip can start at holds a frame of A and a frame of B, at least MIN_SEPARATION
    clip frames apart (last frame of A to first frame of B); MIN_SEPARATION exceeds the temporal
    receptive field of every stage of i3d_probe (16 frames) and of i3d_probe_lr (24), measured on
    the networks by gradients."""
    clip = _recipe_clip()
    assert (clip.num_frames, clip.sampling_rate, clip.crop_size, clip.test_crop_size) == (CLIP_FRAMES, 1, FRAME_SIZE, FRAME_SIZE)
    separations = []
    for seed in range(300):
        s = _scene(TEMPORAL_CLASSES[seed % 4], seed)
        length = len(s.sprites[0].x)
        slack = max(length - clip_span(clip.num_frames, clip.sampling_rate), 0)
        views = [*uniform_clips(length, clip.num_frames, clip.sampling_rate, clip.test_views[0]),
                 *(start + np.arange(clip.num_frames) * clip.sampling_rate for start in range(slack + 1))]  # test views, every train window
        for idx in views:
            in_a, in_b = np.nonzero(idx < s.a_end)[0], np.nonzero(idx >= s.b_start)[0]
            assert len(in_a) and len(in_b), (seed, s.a_end, s.b_start, idx)
            separations.append(in_b.min() - in_a.max())
    assert min(separations) == MIN_SEPARATION
    torch.manual_seed(0)
    fields = {name: _temporal_fields(pretend_pretrained(create_model(name, num_classes=4))) for name in ("i3d_probe", "i3d_probe_lr")}
    assert fields["i3d_probe"] == [7, 12, 16, 16] and fields["i3d_probe_lr"] == [7, 16, 24, 24]
    assert max(fields["i3d_probe_lr"]) < MIN_SEPARATION
    nl = _temporal_fields(pretend_pretrained(create_model("i3d_probe_nl", num_classes=4)), size=FRAME_SIZE)  # its pooled keys need 2x2 at res4
    assert nl == [7, 32, 32, 32]  # non-local blocks at res3 and res4 see the whole (32-frame) input


def _clip(scene, start: int, drop: str | None = None) -> torch.Tensor:
    """The recipe's clip starting at ``start`` of ``scene`` drawn on a plain background, without
    event ``drop`` ("a" or "b"): (1, 3, CLIP_FRAMES, H, W)."""
    frames = np.full((CLIP_FRAMES, FRAME_SIZE, FRAME_SIZE, 3), 120.0, dtype=np.float32)
    a, b = scene.sprites
    for k in range(CLIP_FRAMES):
        i = start + k
        for sprite, shown in ((a, i < scene.a_end and drop != "a"), (b, i >= scene.b_start and drop != "b")):
            if shown:
                draw_shape(frames[k], sprite.shape, sprite.colour, float(sprite.x[i]), float(sprite.y[i]), float(sprite.size), angle=float(sprite.angle))
    return torch.from_numpy(frames / 255.0 - 0.45).permute(3, 0, 1, 2)[None].float()


def _stage_outputs(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    outs: list[torch.Tensor] = []
    handles = [model.get_submodule(p).register_forward_hook(lambda m, a, o: outs.append(o)) for p in res_stage_paths(model)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return outs


def test_no_position_of_the_probe_depends_on_both_events() -> None:
    """The claim the task rests on, checked on the networks: in eval mode, at every residual stage
    of i3d_probe and of i3d_probe_lr (a local space-time operator), each output position changes
    with event A or with event B, never with both, in the first and last views of the longest
    videos; with a non-local block (i3d_probe_nl) some position depends on both."""
    torch.manual_seed(0)  # residual branches carry signal (their last norms are zero-initialised)
    models = {n: pretend_pretrained(create_model(n, num_classes=4)).eval() for n in ("i3d_probe", "i3d_probe_lr", "i3d_probe_nl")}
    both = dict.fromkeys(models, False)
    for seed, start in ((0, 0), (1, FRAMES[1] - CLIP_FRAMES)):  # the first and the last view of a longest video
        s = _scene(TEMPORAL_CLASSES[seed], seed, frames=(FRAMES[1], FRAMES[1]))
        batch = torch.cat([_clip(s, start, drop) for drop in (None, "a", "b")])  # full, without A, without B
        for name, model in models.items():
            for k, out in enumerate(_stage_outputs(model, batch)):  # eval mode: the three clips do not interact
                ref, wa, wb = out[0], out[1], out[2]  # (C, T, H, W)
                scale = ref.abs().max()
                dep_a = (ref - wa).abs().amax(dim=0) > 1e-5 * scale  # (T, H, W): depends on A
                dep_b = (ref - wb).abs().amax(dim=0) > 1e-5 * scale
                assert dep_a.any() and dep_b.any()
                if name == "i3d_probe_nl":
                    both[name] |= bool((dep_a & dep_b).any())
                else:
                    assert not (dep_a & dep_b).any(), f"res{k + 2} of {name} depends on both events (seed {seed}, start {start})"
    assert both["i3d_probe_nl"]


def test_between_the_events_only_grey() -> None:
    """Without noise, the frames between the events hold no colour and no object: only the grey
    background and distractors (every pixel R = G = B), the same in both classes."""
    rng = np.random.default_rng(5)
    spec = replace(sample_temporal_spec(rng), noise=0.0, num_distractors=2)
    frames, scene = temporal_video("different_colour", rng, spec)
    coloured = np.ptp(frames.astype(int), axis=-1) > 0  # [T, H, W]
    assert coloured[: scene.a_end].any() and coloured[scene.b_start:].any()
    assert not coloured[scene.a_end: scene.b_start].any()
    assert all(np.ptp(d.colour) == 0 for d in scene.distractors)


def test_nuisances_vary() -> None:
    specs = [sample_temporal_spec(np.random.default_rng(i)) for i in range(200)]
    assert len({s.fps for s in specs}) == 4 and {s.num_frames for s in specs} == set(range(FRAMES[0], FRAMES[1] + 1))
    assert {s.num_distractors for s in specs} == {0, 1, 2} and np.ptp([s.noise for s in specs]) > 1.5
    scenes = [_scene(TEMPORAL_CLASSES[i % 4], i) for i in range(200)]
    assert len({s.a_end for s in scenes}) >= 4 and len({len(s.sprites[0].x) - s.b_start for s in scenes}) >= 4
    assert np.ptp([o.size for s in scenes for o in s.objects]) > 1 and np.ptp([o.angle for s in scenes for o in s.objects]) > 0.4
    for axis in ("x", "y"):  # anywhere in the frame, A and B independently
        start = np.array([[getattr(sp, axis)[0] for sp in s.sprites] for s in scenes])  # [videos, (A, B)]
        assert start.min() < 0.3 * FRAME_SIZE and start.max() > 0.7 * FRAME_SIZE
        assert abs(np.corrcoef(start[:, 0], start[:, 1])[0, 1]) < 0.2


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])


def test_generate_temporal_files_lists_and_determinism(tmp_path: Path) -> None:
    kwargs = dict(task="temporal", videos_per_class=2, split_fractions=(0.5, 0.0, 0.5), progress=False)
    paths = generate_dataset(tmp_path / "a", seed=3, workers=2, **kwargs)
    generate_dataset(tmp_path / "b", seed=3, workers=1, **kwargs)
    generate_dataset(tmp_path / "c", seed=4, workers=1, **kwargs)
    assert paths["classes"].read_text().split() == TEMPORAL_CLASSES
    assert yaml.safe_load(paths["settings"].read_text())["frames"] == list(FRAMES)  # the task's lengths by default
    test = [line.split() for line in paths["test"].read_text().splitlines()]
    assert sorted(int(label) for _, label in test) == list(range(4))
    for rel, label in test:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes() != (tmp_path / "c" / rel).read_bytes()
    rel, label = test[0]
    frames = _decode(tmp_path / "a" / rel)
    rng = video_rng(3, int(label), 1)
    expected, _ = temporal_video(int(label), rng, sample_temporal_spec(rng, frames=FRAMES))
    assert frames.shape == expected.shape and frames.shape[1:3] == (FRAME_SIZE, FRAME_SIZE)
    assert np.abs(frames.astype(float) - expected).mean() < 6  # lossy H.264, same content
    with pytest.raises(ValueError, match="the temporal task's videos are 48-70 frames long"):
        generate_dataset(tmp_path / "d", task="temporal", videos_per_class=1, frames=(8, 8), progress=False)
    assert not (tmp_path / "d").exists()


def test_cli_task_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    assert synth_main([str(out), "--task", "temporal", "--videos-per-class", "1", "--workers", "1", "--quiet"]) == 0
    assert "wrote 4 videos of 4 classes (temporal)" in capsys.readouterr().out
    assert (out / "classes.txt").read_text().split() == TEMPORAL_CLASSES
    assert synth_main([str(tmp_path / "bad"), "--task", "temporal", "--max-frames", "80", "--quiet"]) == 2
    message = capsys.readouterr().out.strip()
    assert message.startswith("videoattn synth: error: frames (48, 80)") and "\n" not in message
