"""Writing the synthetic dataset of one task (videoattn.synth.tasks): one H.264 mp4 per video
(PyAV), generated in parallel with a progress bar, plus train/val/test annotation files
(`path label`, paths relative to the dataset folder), classes.txt and synth.json (the task, seed
and settings, from which every video can be drawn again). Every video draws from its own seed
(dataset seed, class, index), so the output is the same whatever the number of worker processes.
"""
from __future__ import annotations

import json
import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from videoattn.synth.tasks import get_task
from videoattn.video_io import write_video

__all__ = ["generate_dataset", "video_rng", "read_settings", "SPLITS"]

SPLITS = ("train", "val", "test")
X264_OPTIONS = {"threads": "1", "x264-params": "mbtree=0"}


@dataclass(frozen=True)
class _Job:
    out_dir: str
    relpath: str
    label: int
    index: int
    seed: int
    frames: tuple[int, int]
    task: str


def video_rng(seed: int, label: int, index: int) -> np.random.Generator:
    """The random generator of video ``index`` of class ``label`` in the dataset of ``seed``."""
    return np.random.default_rng([seed, label, index])


def _make_one(job: _Job) -> str:
    task = get_task(job.task)
    rng = video_rng(job.seed, job.label, job.index)
    spec = task.sample_spec(rng, frames=job.frames)
    frames, spec = task.render(job.label, rng, spec)
    # One encoder thread (the pool already uses the cores). x264's macroblock-tree rate control
    # gave different bytes for the same frames from one call to the next: off, for reproducibility.
    write_video(Path(job.out_dir) / job.relpath, frames, fps=spec.fps, options=X264_OPTIONS)
    return job.relpath


def _split_sizes(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    n_val = int(round(n * fractions[1]))
    n_test = int(round(n * fractions[2]))
    return n - n_val - n_test, n_val, n_test


DEFAULT_FRAMES = (32, 48)  # video lengths in frames, min and max (the actions and relations tasks')


def generate_dataset(
    out_dir: str | Path,
    *,
    task: str = "actions",
    videos_per_class: int = 60,
    seed: int = 0,
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    frames: tuple[int, int] | None = None,
    workers: int = 2,
    progress: bool = True,
) -> dict[str, Path]:
    """Generate the dataset of ``task`` ("actions", "relations" or "temporal") into ``out_dir``;
    ``frames`` (min, max video length) defaults to the task's. Returns the paths of the annotation
    files, classes.txt and synth.json (keys: train, val, test, classes, settings)."""
    classes = get_task(task).classes
    frames = tuple(frames or get_task(task).frames)
    if videos_per_class < 1:
        raise ValueError(f"videos_per_class must be >= 1, got {videos_per_class}")
    if len(split_fractions) != 3 or min(split_fractions) < 0 or abs(sum(split_fractions) - 1) > 1e-6:
        raise ValueError(f"split_fractions must be 3 non-negative numbers summing to 1, got {split_fractions}")
    if not 1 <= frames[0] <= frames[1]:
        raise ValueError(f"frames must be (min, max) with 1 <= min <= max, got {frames}")
    get_task(task).sample_spec(np.random.default_rng(seed), frames=frames)  # a range the task cannot draw fails here, not in a worker
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    sizes = _split_sizes(videos_per_class, split_fractions)
    jobs: list[_Job] = []
    rows: dict[str, list[str]] = {s: [] for s in SPLITS}
    for label, name in enumerate(classes):
        for index in range(videos_per_class):
            relpath = f"videos/{name}/{name}_{index:04d}.mp4"
            split = SPLITS[0] if index < sizes[0] else SPLITS[1] if index < sizes[0] + sizes[1] else SPLITS[2]
            rows[split].append(f"{relpath} {label}")
            jobs.append(_Job(str(out), relpath, label, index, seed, tuple(frames), task))
    _run(jobs, workers, progress)
    paths = {}
    for split in SPLITS:
        paths[split] = out / f"{split}.csv"
        paths[split].write_text("".join(r + "\n" for r in rows[split]))
    paths["classes"] = out / "classes.txt"
    paths["classes"].write_text("".join(c + "\n" for c in classes))
    paths["settings"] = out / "synth.json"
    settings = {"task": task, "seed": seed, "videos_per_class": videos_per_class, "frames": list(frames), "split_fractions": list(split_fractions)}
    paths["settings"].write_text(json.dumps(settings, indent=1) + "\n")
    return paths


def read_settings(dataset: str | Path) -> dict:
    """The settings a dataset was generated with (its synth.json): task, seed, frames, ..."""
    path = Path(dataset) / "synth.json"
    if not path.is_file():
        raise ValueError(f"{dataset}: no synth.json; not a dataset written by `videoattn synth` (or written before it recorded its settings)")
    return json.loads(path.read_text())


def _run(jobs: list[_Job], workers: int, progress: bool) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="synth", unit="video", disable=not progress)
    if workers <= 1:
        for job in jobs:
            _make_one(job)
            bar.update()
    else:
        # fork where available (workers only use numpy and PyAV, never torch); spawn elsewhere
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(workers) as pool:
            for _ in pool.imap_unordered(_make_one, jobs, chunksize=4):
                bar.update()
    bar.close()
