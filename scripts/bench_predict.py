"""Inference benchmark, ratios from one run.

(a) predict: 10x3-view videos/s on Kinetics-like files (10 s, 30 fps, 340x256 H.264, written by
    scripts/bench_data.py's generator) through videoattn's predict data path
    (KineticsDataModule(predict=FOLDER).predict_dataloader(), then the model over the 30 views,
    softmax averaged per video) against pytorchvideo 0.1.5's per-view pipeline (bench_data.py's
    LabeledVideoDataset loader: one clip per item, seeking per clip, float transforms) feeding the
    same model. One DataLoader worker with one thread each; the model runs in the main process
    (one thread) while the worker decodes the next video. The default model is a linear probe on
    pooled pixels (no backbone), so that the figure is the data path's: any real backbone at 30
    views of 8x256x256 costs more than decoding on a CPU (--model NAME runs a registered one; its
    time per video is printed alone as well).
(b) export: latency per clip (batch 1, 8x224x224, medians) of i3d_r50_nl exported to ONNX and run
    by onnxruntime against eager PyTorch (inference mode), the same --threads for both, on the CPU;
    with the largest difference between the two.

Usage: python scripts/bench_predict.py [--videos 6] [--repeats 3] [--part a b] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import kinetics_like_videos, ptv_loader  # noqa: E402  (the generator and anchor of bench_data.py)
import results_file  # noqa: E402  (scripts/: the results file helper)

NUM_CLASSES = 400


class LinearProbe(nn.Module):
    """Global average of each colour channel over the clip, then a linear layer: (N, 3, T, H, W) -> (N, K).
    Almost no compute, so that a predict benchmark measures the data path."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3, 4)))


def _model(name: str) -> nn.Module:
    if name == "probe":
        return LinearProbe(NUM_CLASSES).eval()
    from videoattn.models import create_model

    return create_model(name, num_classes=NUM_CLASSES).eval()


def ours_videos(folder: Path, model: nn.Module) -> tuple[float, int]:
    """(seconds per video after the first, videos) through videoattn's predict data path."""
    from videoattn.data import KineticsDataModule

    dm = KineticsDataModule(str(folder), predict=str(folder), classes=[str(i) for i in range(NUM_CLASSES)],
                            num_workers=1, test_batch_size=1, persistent_workers=False, pin_memory=False)
    # defaults: 10 x 3 test views of 8 x 8 clips, short side 256, 3 crops 256
    if hasattr(dm, "setup"):
        dm.setup("predict")
    scores = {}
    start, count = None, 0
    with torch.inference_mode():
        for batch in dm.predict_dataloader():
            batch = dm.on_after_batch_transfer(batch, 0)  # what Lightning applies on the device (identity if unused)
            video = batch["video"]  # (B, V, C, T, H, W)
            logits = model(video.flatten(0, 1)).view(video.shape[0], video.shape[1], -1)
            for index, probs in zip(batch["video_index"].tolist(), logits.softmax(-1).mean(1)):
                scores[index] = probs
            if start is None:  # the first video includes the worker's start-up
                start = time.perf_counter()
            else:
                count += video.shape[0]
    return (time.perf_counter() - start) / max(count, 1), len(scores)


def ptv_videos(paths: list[str], model: nn.Module) -> tuple[float, int]:
    """(seconds per video after the first, videos) through pytorchvideo's per-view pipeline:
    10 items per video (one temporal clip each, 3 crops), softmax averaged per video."""
    scores: dict[int, list[torch.Tensor]] = {}
    start, items = None, 0
    with torch.inference_mode():
        for item in ptv_loader(paths, "test", 10):
            video = item["video"]  # (1, 3 crops, C, T, H, W)
            probs = model(video.flatten(0, 1)).softmax(-1)
            scores.setdefault(int(item["video_index"]), []).append(probs)
            items += 1
            if items == 10:  # the first video includes the worker's start-up
                start = time.perf_counter()
    return (time.perf_counter() - start) / max(len(scores) - 1, 1), len(scores)


def model_seconds_per_video(model: nn.Module, repeats: int) -> float:
    x = torch.randn(30, 3, 8, 256, 256)
    times = []
    with torch.inference_mode():
        model(x[:2])
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def part_a(args: argparse.Namespace, root: Path) -> dict:
    torch.set_num_threads(1)
    folder = root / "videos"
    folder.mkdir(exist_ok=True)
    paths = kinetics_like_videos(folder, args.videos)
    model = _model(args.model)
    ours, ptv = [], []
    for _ in range(args.repeats):  # interleaved
        seconds, n = ours_videos(folder, model)
        assert n == len(paths), f"videoattn predicted {n} of {len(paths)} videos"
        ours.append(seconds)
        seconds, n = ptv_videos(paths, model)
        assert n == len(paths), f"pytorchvideo predicted {n} of {len(paths)} videos"
        ptv.append(seconds)
    o, p = statistics.median(ours), statistics.median(ptv)
    print(f"(a) predict, 10x3 views (short side 256, 3 crops 256, 8x8 clips), {args.videos} videos of 10 s 30 fps 340x256 H.264; "
          f"model {args.model}; 1 worker + main process, 1 thread each; medians of {args.repeats}")
    print(f"    {'videoattn predict data path':<36}{1 / o:8.2f} videos/s")
    print(f"    {'pytorchvideo per-view pipeline':<36}{1 / p:8.2f} videos/s")
    print(f"    ratio videoattn / pytorchvideo: {p / o:.2f}x")
    print(f"    the model alone ({args.model}, 30 views, 1 thread): {model_seconds_per_video(model, 3):.3f} s per video")
    return {"part": "predict", "what": "10x3-view videos/s, predict data path against pytorchvideo's per-view pipeline",
            "ratio": round(p / o, 4), "videoattn_videos_per_s": round(1 / o, 3), "pytorchvideo_videos_per_s": round(1 / p, 3),
            "model": args.model, "videos": args.videos, "repeats": args.repeats, "workers": 1, "threads": 1}


def part_b(args: argparse.Namespace, root: Path) -> dict:
    import onnxruntime

    from videoattn.models import create_model
    from videoattn.tools.export import export_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model("i3d_r50_nl", num_classes=NUM_CLASSES).eval()
    with torch.no_grad():  # trained-like NL blocks (their norms are zero at initialisation)
        for m in model.modules():
            if type(m).__name__ == "NonLocal3d":
                nn.init.normal_(m.norm.weight, std=0.1)
    path = root / "i3d_r50_nl.onnx"
    start = time.perf_counter()
    export_model(model, (torch.randn(2, 3, 8, 224, 224),), path, fmt="onnx", names=["video"], metadata={})
    export_s = time.perf_counter() - start
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
    session = onnxruntime.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3, 8, 224, 224)
    feed = {"video": x.numpy()}
    with torch.inference_mode():
        expected = model(x)
    diff = (torch.from_numpy(session.run(None, feed)[0]) - expected).abs().max().item()
    eager, ort = [], []
    with torch.inference_mode():
        for _ in range(args.clips):  # interleaved
            start = time.perf_counter()
            model(x)
            eager.append(time.perf_counter() - start)
            start = time.perf_counter()
            session.run(None, feed)
            ort.append(time.perf_counter() - start)
    e, o = statistics.median(eager), statistics.median(ort)
    print(f"(b) i3d_r50_nl, batch 1, 8x224x224, fp32 CPU, {args.threads} thread(s), medians of {args.clips} "
          f"(export took {export_s:.0f} s; max |onnxruntime - PyTorch| = {diff:.1e})")
    print(f"    eager PyTorch {e * 1000:8.1f} ms/clip")
    print(f"    onnxruntime   {o * 1000:8.1f} ms/clip   (onnxruntime / eager: {o / e:.2f}x)")
    return {"part": "export", "model": "i3d_r50_nl", "what": "time per clip, onnxruntime against eager PyTorch", "ratio": round(o / e, 4),
            "eager_ms": round(e * 1000, 2), "onnxruntime_ms": round(o * 1000, 2), "max_abs_diff": diff, "batch": 1, "input": "8x224x224",
            "clips": args.clips, "threads": args.threads}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3, help="runs of (a) per pipeline")
    parser.add_argument("--model", default="probe", help="model fed by both predict pipelines: 'probe' (default) or a registered name")
    parser.add_argument("--clips", type=int, default=7, help="timed clips per runtime in (b)")
    parser.add_argument("--threads", type=int, default=2, help="threads of (b), both runtimes")
    parser.add_argument("--part", nargs="+", default=["a", "b"], choices=["a", "b"])
    parser.add_argument("--workdir", default=None, help="where to write the videos and the ONNX file (default: a temp dir)")
    results_file.add_argument(parser, "bench_predict")
    args = parser.parse_args(argv)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        if "a" in args.part:
            records.append(part_a(args, root))
        if "b" in args.part:
            records.append(part_b(args, root))
    path = results_file.chosen(args.results, "bench_predict")
    if path:
        print(f"results: {results_file.write(path, records)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
