#!/usr/bin/env python
"""Attention as a measurement on the relations task (`videoattn synth --task relations`): for a
trained model with Non-local blocks, how much of the attention of a query on one object falls on
its partner, the other object of the relation, against what uniform attention would give it.

For every test video the scene is drawn again from the dataset's synth.json (task, seed, frames),
which gives each object's pixels in the frames of the centre clip; averaged over the cells of
each NL block's query grid and key grid, they give the share of each cell that an object covers.
For each query cell on object A (covered at least half as much as A's most covered cell):

    ratio = sum_k w_k c_B(k) / mean_k c_B(k)

with w the query's attention over the key cells (softmax: sums to 1) and c_B the share of key
cell k covered by B: 1 for uniform attention, 1 / mean(c_B) at most. The figure is averaged over
A's query cells, then over both directions (A -> B and B -> A), then over the test videos, per NL
block (module path).

  python scripts/attention_share.py --checkpoint runs/relations/checkpoints/last.ckpt --data runs/relations/synth
  python scripts/attention_share.py ... --figure docs/attention_relations.png   # also render one map
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/: the results file helper
import results_file  # noqa: E402


def cell_cover(mask: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """Share of each cell of a (t, h, w) grid that an object covers: ``mask`` float [T, H, W] in
    [0, 1] (its pixels in the clip's frames), averaged over the cells (adaptive average pooling)."""
    return F.adaptive_avg_pool3d(mask[None, None].float(), grid)[0, 0]  # (1, 1, T, H, W) -> (t, h, w)


def partner_ratio(weights: torch.Tensor, cover_query: torch.Tensor, cover_partner: torch.Tensor) -> float | None:
    """The attention-share ratio of one clip and one direction.

    weights: (Tq, Hq, Wq, Tk, Hk, Wk), each query's attention over the key cells (normalised here
    by its absolute sum); cover_query: (Tq, Hq, Wq) share of each query cell covered by the query
    object; cover_partner: (Tk, Hk, Wk) share of each key cell covered by the partner. Returns the
    mean over the query cells covered at least half as much as the most covered one of
    ``sum_k w_k c(k) / mean_k c(k)``, or None when either object covers nothing."""
    if cover_query.max() <= 0 or cover_partner.max() <= 0:
        return None
    queries = cover_query >= 0.5 * cover_query.max()  # (Tq, Hq, Wq)
    w = weights[queries].flatten(1).abs()  # (Q, Tk*Hk*Wk)
    w = w / w.sum(dim=1, keepdim=True)
    c = cover_partner.flatten()
    return float((w @ c).mean() / c.mean())


def _object_masks(scene, indices: np.ndarray) -> list[torch.Tensor]:
    """Coverage [T, H, W] in [0, 1] of A and of B (each drawn alone) in the frames ``indices``."""
    from videoattn.synth.canvas import draw_shape
    from videoattn.synth.relations import FRAME_SIZE

    masks = []
    for sprite in scene.sprites:
        m = np.zeros((len(indices), FRAME_SIZE, FRAME_SIZE, 3), dtype=np.float32)
        for j, i in enumerate(indices):
            alpha = float(sprite.alpha[i]) if isinstance(sprite.alpha, np.ndarray) else float(sprite.alpha)
            draw_shape(m[j], sprite.shape, np.ones(3), float(sprite.x[i]), float(sprite.y[i]), float(sprite.size),
                       angle=float(sprite.angle), alpha=alpha)
        masks.append(torch.from_numpy(m[..., 0]))
    return masks


def _scene(dataset: Path, settings: dict, relpath: str, label: int):
    """The scene of a test video, drawn again from the dataset's seed."""
    from videoattn.synth import get_task, video_rng
    from videoattn.synth.relations import relation_video

    index = int(Path(relpath).stem.rsplit("_", 1)[1])
    rng = video_rng(settings["seed"], label, index)
    spec = get_task("relations").sample_spec(rng, frames=tuple(settings["frames"]))
    _, scene = relation_video(label, rng, spec)
    return scene, spec


def measure(checkpoint: str, dataset: str, *, split: str = "test", limit: int | None = None) -> tuple[dict[str, list[float]], dict]:
    """Per NL block: the ratio of every test video (mean of both directions); and one example."""
    from videoattn.attention_maps import AttentionRecorder
    from videoattn.data.sampling import centre_clip
    from videoattn.synth.generator import read_settings
    from videoattn.tools.visualize import KINETICS_MEAN, KINETICS_STD, load_classifier, load_clip

    data = Path(dataset)
    settings = read_settings(data)
    if settings["task"] != "relations":
        raise ValueError(f"--data {dataset}: a {settings['task']!r} dataset; the attention share needs the relations task")
    model, info = load_classifier(checkpoint)
    t, stride = info.get("num_frames") or 8, info.get("sampling_rate") or 4
    size = info.get("crop_size") or 64
    lines = [line.split() for line in (data / f"{split}.csv").read_text().splitlines() if line.strip()][:limit]
    ratios: dict[str, list[float]] = {}
    example: dict = {}
    for relpath, label in lines:
        scene, spec = _scene(data, settings, relpath, int(label))
        frames, clip = load_clip(data / relpath, num_frames=t, sampling_rate=stride, size=size,
                                 mean=info.get("mean") or KINETICS_MEAN, std=info.get("std") or KINETICS_STD)
        indices = centre_clip(spec.num_frames, t, stride)
        mask_a, mask_b = _object_masks(scene, indices)
        with AttentionRecorder(model) as rec, torch.no_grad():
            probs = model(clip).softmax(-1)[0]
        for name, amap in rec.maps.items():
            if amap.kind != "nl":
                continue
            w = amap.weights[0]  # (Tq, Hq, Wq, Tk, Hk, Wk)
            q_grid, k_grid = tuple(w.shape[:3]), tuple(w.shape[3:])
            both = [partner_ratio(w, cell_cover(mq, q_grid), cell_cover(mk, k_grid)) for mq, mk in ((mask_a, mask_b), (mask_b, mask_a))]
            both = [r for r in both if r is not None]
            if both:
                ratios.setdefault(name, []).append(statistics.mean(both))
                if not example.get("correct"):  # the first correctly classified video, else the first video
                    example = {"correct": int(probs.argmax()) == int(label), "path": str(data / relpath), "label": int(label), "block": name, "ratio": both[0], "frames": frames,
                               "map": amap, "cover_a": cell_cover(mask_a, q_grid), "prob": float(probs.max())}
    return ratios, example


def render(example: dict, out: Path, class_names: list[str] | None) -> None:
    """The example's clip, and the attention of a query on object A (the cell it covers most in the
    middle time step) in its first NL block."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from videoattn.tools.visualize import render_attention

    cover = example["cover_a"]  # (Tq, Hq, Wq)
    tq = cover.shape[0] // 2
    if cover[tq].max() <= 0:
        tq = int(cover.flatten(1).amax(1).argmax())
    hq, wq = divmod(int(cover[tq].flatten().argmax()), cover.shape[2])
    query = ((tq + 0.5) / cover.shape[0], (hq + 0.5) / cover.shape[1], (wq + 0.5) / cover.shape[2])
    image = render_attention(example["frames"], example["map"], query=query, scale=2)
    name = class_names[example["label"]] if class_names else str(example["label"])
    fig, ax = plt.subplots(figsize=(image.shape[1] / 100, image.shape[0] / 100 + 0.5))
    ax.imshow(image)
    ax.axis("off")
    ax.set_title(f"{Path(example['path']).name} ({name}), NL {example['block']}: query on one object (cross), "
                 f"attention share on the other = {example['ratio']:.1f}x uniform", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a trained model with NL blocks (videoattn/Lightning checkpoint)")
    p.add_argument("--data", required=True, help="the relations dataset (videoattn synth --task relations) it was trained on")
    p.add_argument("--split", default="test", help="annotation list of the videos to measure (default test)")
    p.add_argument("--limit", type=int, help="only the first N videos of the list")
    p.add_argument("--figure", help="also render one map (the first correctly classified video) to this PNG")
    p.add_argument("--json", help="write the per-video ratios per block to this JSON file")
    p.add_argument("--label", help="the model's name in the results file (default: the checkpoint's path)")
    results_file.add_argument(p, "attention_share")
    args = p.parse_args(argv)
    try:
        ratios, example = measure(args.checkpoint, args.data, split=args.split, limit=args.limit)
    except ValueError as err:
        raise SystemExit(f"attention_share: error: {err}") from None
    if not ratios:
        raise SystemExit("attention_share: error: the model has no Non-local block (nothing to measure)")
    for name, values in ratios.items():
        print(f"{name}: attention share on the partner object / uniform share: mean {statistics.mean(values):.2f}, "
              f"median {statistics.median(values):.2f}, over {len(values)} videos")
    if args.json:
        Path(args.json).write_text(json.dumps(ratios) + "\n")
    path = results_file.chosen(args.results, "attention_share")
    if path:
        records = [{"model": args.label or args.checkpoint, "block": name, "mean": round(statistics.mean(values), 4),
                    "median": round(statistics.median(values), 4), "videos": len(values), "split": args.split} for name, values in ratios.items()]
        print(f"results: {results_file.write(path, records)}")
    if args.figure:
        from videoattn.checkpoints import load_checkpoint

        names = (load_checkpoint(args.checkpoint).get("hyper_parameters") or {}).get("class_names")
        render(example, Path(args.figure), names)
        print(f"wrote {args.figure} ({example['path']}, ratio {example['ratio']:.2f})")


if __name__ == "__main__":
    main()
