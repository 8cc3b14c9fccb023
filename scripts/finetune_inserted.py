#!/usr/bin/env python
"""Insert blocks into a trained network, then fine-tune, through the CLI as a user would.

1. Pretrain: `videoattn fit --config <pretrain recipe> --model.backbone i3d_probe` (seed 0) on one
   task (default: relations); its last checkpoint is the pretrained network.
2. Identity at initialisation, measured on that checkpoint: the plain network and the network with
   blocks (`i3d_probe_<block>`), both built from the checkpoint as `--model.weights` builds them,
   score every view of every test video of the fine-tuning task; the largest absolute difference
   of their logits is reported (0 for a block that is the identity at initialisation: NL, GC, CGNL).
3. Fine-tune from the same checkpoint with the same recipe, several seeds each:
   `videoattn fit --config <task recipe> --model.backbone i3d_probe_<block> --model.weights CKPT`
   against the same with `--model.backbone i3d_probe`, then `videoattn test`.

Results: one JSON line per measurement in <work>/results.jsonl (an interrupted run resumes), then
<out>.jsonl (the pretrained run, the identity check, one line per fine-tuning run) and <out>.md (a
table: clip and multi-view top-1, mean ± std over seeds, the difference to the plain network with
its 95% Welch interval from scripts/ablation.py).

  python scripts/finetune_inserted.py --jobs 2                      # relations -> temporal, nl, 3 seeds
  python scripts/finetune_inserted.py --pretrain-task temporal --task relations --jobs 2
  python scripts/finetune_inserted.py --smoke                       # tiny data, 1 epoch: seconds to a minute
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ablation  # noqa: E402  (scripts/ablation.py: recipes per task, run helpers, Welch's interval)

ROOT = ablation.ROOT
TASKS = ("relations", "temporal")  # tasks whose recipes train i3d_probe
BACKBONE = "i3d_probe"
SMOKE_VIDEOS = 5  # per class: 4 train, 1 test


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "videoattn.cli", *args]


def _run(args: argparse.Namespace, cmd: list[str], log: Path, threads: int) -> None:
    """Run a `videoattn` command: in a subprocess as the ablation does, or (``--in-process``, what
    --smoke uses: no interpreter start per command) through the same entry point in this process."""
    if not args.in_process:
        ablation._run(cmd, log, threads)
        return
    import contextlib

    import torch

    from videoattn.cli import main as videoattn_main

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with log.open("a") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            videoattn_main(cmd[3:])  # drop `python -m videoattn.cli`
    except SystemExit as err:
        if err.code:
            raise SystemExit(f"failed ({err.code}): {' '.join(cmd)}; see {log}") from None
    finally:
        torch.set_num_threads(before)


def _data(args: argparse.Namespace, task: str, given: str | None) -> Path:
    """The dataset of ``task``: ``given``, or the ablation's (generated with seed 0 if missing)."""
    default = Path(args.work) / task / "synth" if args.smoke else Path("runs/ablation") / task / "synth"
    path = Path(given or default)
    if not (path / "train.csv").is_file():
        videos = SMOKE_VIDEOS if args.smoke else ablation.TASKS[task].videos_per_class
        subprocess.run(_cli("synth", str(path), "--task", task, "--videos-per-class", str(videos), "--seed", "0", "--quiet"), check=True)
    return path


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = ["--trainer.enable_progress_bar", "false"]
    if args.epochs:
        extra += ["--trainer.max_epochs", str(args.epochs)]
    if args.smoke:
        extra += ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "0", "--data.init_args.num_workers", "0"]
    return extra


def _fit_and_test(args: argparse.Namespace, task: str, data: Path, model: str, seed: int, run_dir: Path, threads: int,
                  weights: Path | None) -> dict:
    """`videoattn fit` then `videoattn test` of ``model`` on ``task``'s recipe in ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "log.txt"
    common = ["--config", str(ROOT / ablation.TASKS[task].config), "--model.backbone", model, "--data.init_args.root", str(data),
              "--trainer.default_root_dir", str(run_dir), *_overrides(args)]
    if weights is not None:
        common += ["--model.weights", str(weights)]
    start = time.perf_counter()
    _run(args, _cli("fit", *common, "--seed_everything", str(seed)), log, threads)
    minutes = (time.perf_counter() - start) / 60
    predictions = run_dir / "test_predictions.csv"
    _run(args, _cli("test", *common, "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"), "--model.predictions_csv", str(predictions)),
                  log, threads)
    return {"model": model, "seed": seed, "clip_top1": ablation._clip_top1(run_dir), "video_top1": ablation._video_top1(predictions),
            "train_minutes": minutes, "epochs": args.epochs, "threads": threads}


def identity_at_init(checkpoint: Path, task: str, data: Path, block: str) -> dict:
    """The plain network and the network with ``block`` inserted, both loaded from ``checkpoint``
    as `--model.weights` loads them, on every test view of ``task``'s test set (its recipe's clip
    settings): the largest absolute logit difference, and each one's accuracies."""
    import torch
    import yaml

    from videoattn.data.clip import ClipSettings
    from videoattn.module import VideoClassifier
    from videoattn.synth.datamodule import SyntheticDataModule

    recipe = yaml.safe_load((ROOT / ablation.TASKS[task].config).read_text())
    init = recipe["data"]["init_args"]
    dm = SyntheticDataModule(str(data), test=init["test"], clip=ClipSettings(**init["clip"]), test_batch_size=init.get("test_batch_size", 4),
                             num_workers=0)
    dm.setup("test")
    kwargs = dict(num_classes=dm.num_classes, weights=str(checkpoint), backbone_kwargs=recipe["model"].get("backbone_kwargs"))
    # the same seed before each: if the checkpoint has another class count, both get the same new head
    # (it is drawn before the blocks are inserted)
    torch.manual_seed(0)
    plain = VideoClassifier(BACKBONE, **kwargs).eval()
    torch.manual_seed(0)
    inserted = VideoClassifier(ablation.model_name(BACKBONE, block), **kwargs).eval()
    worst, views, videos, right, clip_right = 0.0, 0, 0, {"plain": 0, "blocks": 0}, {"plain": 0, "blocks": 0}
    with torch.no_grad():
        for batch in dm.test_dataloader():
            batch = dm.on_after_batch_transfer(batch, 0)
            labels = batch["label"]
            logits = {"plain": plain.multiview_logits(batch["video"]), "blocks": inserted.multiview_logits(batch["video"])}  # [B, V, K]
            worst = max(worst, float((logits["plain"] - logits["blocks"]).abs().max()))
            videos += len(labels)
            views += logits["plain"].shape[:2].numel()
            for name, value in logits.items():
                right[name] += int((value.mean(dim=1).argmax(-1) == labels).sum())
                clip_right[name] += int((value.argmax(-1) == labels[:, None]).sum())
    return {"kind": "identity", "task": task, "plain": BACKBONE, "model": ablation.model_name(BACKBONE, block), "checkpoint": str(checkpoint),
            "videos": videos, "views": views, "max_abs_logit_diff": worst,
            "plain_video_top1": right["plain"] / videos, "blocks_video_top1": right["blocks"] / videos,
            "plain_clip_top1": clip_right["plain"] / views, "blocks_clip_top1": clip_right["blocks"] / views}


def finetune_table(results: list[dict]) -> str:
    """The experiment in Markdown from its JSON lines: the pretrained run, the identity check at
    step 0, and the fine-tuning rows (mean ± std over seeds, Δ to the plain network with Welch's
    95% interval). scripts/render_docs.py renders it into the docs from docs/results/finetune_inserted.jsonl."""
    pretrain = next((r for r in results if r["kind"] == "pretrain"), None)
    identity = next((r for r in results if r["kind"] == "identity"), None)
    runs = [r for r in results if r["kind"] == "finetune"]
    if not runs:
        raise ValueError("no fine-tuning run in the results")
    pretrain_task, task = runs[0]["pretrain_task"], runs[0]["task"]
    blocks = list(dict.fromkeys(r["variant"] for r in runs if r["variant"] != "plain"))
    base = [r for r in runs if r["variant"] == "plain"]
    rows = []
    for v in ["plain", *blocks]:
        mine = sorted((r for r in runs if r["variant"] == v), key=lambda r: r["seed"])
        if not mine:
            continue
        stats = {k: ablation._mean_std([r[k] for r in mine]) for k in ("clip_top1", "video_top1", "train_minutes")}
        diffs = []
        for key in ("video_top1", "clip_top1"):
            if v == "plain" or len(mine) < 2 or len(base) < 2:
                diffs.append("—")
            else:
                d, lo, hi = ablation.welch_ci([r[key] for r in mine], [r[key] for r in base])
                diffs.append(f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
        name = "plain (fine-tuned as is)" if v == "plain" else f"{ablation.label(v)} inserted, then fine-tuned"
        per_seed = " / ".join(f"{r['video_top1']:.3f}" for r in mine)
        rows.append(f"| {name} (`{mine[0]['model']}`) | {per_seed} | {stats['clip_top1'][0]:.3f} ± {stats['clip_top1'][1]:.3f} | "
                    f"{stats['video_top1'][0]:.3f} ± {stats['video_top1'][1]:.3f} | {diffs[0]} | {diffs[1]} | "
                    f"{stats['train_minutes'][0]:.1f} ± {stats['train_minutes'][1]:.1f} |")
    lines = []
    if pretrain:
        lines += [f"Pretrained: `{BACKBONE}` on the {pretrain_task} task (`{ablation.TASKS[pretrain_task].config}`, seed "
                  f"{pretrain['seed']}): multi-view top-1 {pretrain['video_top1']:.3f} on its test set.", ""]
    if identity:
        lines += [f"At step 0, on the {identity['task']} test set ({identity['videos']} videos, {identity['views']} views), "
                  f"`{identity['model']}` loaded from that checkpoint against `{identity['plain']}` loaded from it: largest absolute "
                  f"logit difference {identity['max_abs_logit_diff']:.3g}; multi-view top-1 {identity['blocks_video_top1']:.3f} "
                  f"against {identity['plain_video_top1']:.3f}.", ""]
    lines += [
        f"Fine-tuned on the {task} task from that checkpoint, recipe `{ablation.TASKS[task].config}` for every row "
        "(only `--model.backbone` differs). Mean ± standard deviation over seeds; Δ: difference of the means to the plain "
        "network's with its 95% confidence interval by Welch's t.", "",
        "| model | multi-view top-1 per seed | clip top-1 | multi-view top-1 | multi-view Δ vs plain [95% CI] | clip Δ vs plain [95% CI] | train time (min) |",
        "|---|---|---|---|---|---|---|", *rows,
    ]
    return "\n".join(lines)


def summarise(results: list[dict], args: argparse.Namespace) -> str:
    """Write the experiment to ``args.out``: <out>.jsonl (its lines, each with commit, machine and
    date) and <out>.md (the table); return the table."""
    meta = _results_file().metadata()
    results = [{**meta, **r} for r in results]  # a line recorded with its own provenance keeps it
    text = "\n".join([f"# Blocks inserted into a trained network, then fine-tuned: {args.pretrain_task} -> {args.task}", "",
                      finetune_table(results), "",
                      f"Generated by `python scripts/finetune_inserted.py --pretrain-task {args.pretrain_task} --task {args.task} "
                      f"--block {args.block}`; one line per measurement in [{Path(args.out).name}.jsonl]({Path(args.out).name}.jsonl).", ""])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    return text


def _results_file():
    """scripts/results_file.py (commit, machine, date of a results line)."""
    import results_file

    return results_file


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pretrain-task", default="relations", choices=TASKS, help="task the plain network is trained on (default %(default)s)")
    p.add_argument("--task", default="temporal", choices=TASKS, help="task it is fine-tuned on (default %(default)s)")
    p.add_argument("--block", default="nl", help="block inserted (a name of the block registry; default %(default)s)")
    p.add_argument("--seeds", nargs="+", type=int, help="fine-tuning seeds (default 0 1 2; --smoke: 0)")
    p.add_argument("--epochs", type=int, help="override both recipes' max_epochs (default: the recipes'; --smoke: 1)")
    p.add_argument("--jobs", type=int, default=1, help="fine-tuning runs at a time, cores/jobs threads each")
    p.add_argument("--pretrain-data", help="dataset of the pretraining task (default runs/ablation/<task>/synth, generated if missing)")
    p.add_argument("--data", help="dataset of the fine-tuning task (default runs/ablation/<task>/synth, generated if missing)")
    p.add_argument("--work", help="run folders and results.jsonl (default runs/finetune_inserted/<pretrain>_to_<task>)")
    p.add_argument("--out", help="<out>.md and <out>.jsonl (default docs/results/finetune_inserted; --smoke: <work>/finetune_inserted)")
    p.add_argument("--in-process", action="store_true", help="run the videoattn commands in this process, one at a time (default: subprocesses)")
    p.add_argument("--smoke", action="store_true",
                   help=f"a check that everything runs: {SMOKE_VIDEOS} videos per class, 1 epoch of 2 batches, one seed, in process")
    return p


def main(argv: list[str] | None = None) -> str:
    args = _parser().parse_args(argv)
    from videoattn.blocks import list_blocks

    if args.block not in list_blocks():
        raise SystemExit(f"unknown block {args.block!r}; valid: {', '.join(list_blocks())}")
    if args.pretrain_task == args.task and not args.smoke:
        print(f"note: pretraining and fine-tuning on the same task ({args.task})", file=sys.stderr)
    args.seeds = args.seeds or ([0] if args.smoke else [0, 1, 2])
    args.in_process = args.in_process or args.smoke
    args.jobs = 1 if args.in_process else args.jobs
    args.epochs = args.epochs or (1 if args.smoke else None)
    args.work = Path(args.work or f"runs/finetune_inserted{'_smoke' if args.smoke else ''}/{args.pretrain_task}_to_{args.task}")
    args.out = args.out or (str(args.work / "finetune_inserted") if args.smoke else "docs/results/finetune_inserted")
    args.work.mkdir(parents=True, exist_ok=True)
    results_path = args.work / "results.jsonl"
    done = [json.loads(line) for line in results_path.read_text().splitlines()] if results_path.is_file() else []
    lock = threading.Lock()

    def record(result: dict) -> None:
        result = {**result, **_results_file().metadata()}  # commit, machine, date of the measurement
        with lock:  # results.jsonl is the resume point: one complete line per finished measurement
            print(json.dumps(result), flush=True)
            done.append(result)
            with results_path.open("a") as f:
                f.write(json.dumps(result) + "\n")

    pretrain_data, data = _data(args, args.pretrain_task, args.pretrain_data), _data(args, args.task, args.data)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    pretrain_dir = args.work / "pretrain"
    checkpoint = pretrain_dir / "checkpoints" / "last.ckpt"
    if not any(r["kind"] == "pretrain" and r["epochs"] == args.epochs for r in done):
        print(f"== pretrain {BACKBONE} on {args.pretrain_task}", flush=True)
        result = _fit_and_test(args, args.pretrain_task, pretrain_data, BACKBONE, 0, pretrain_dir, os.cpu_count() or 1, None)
        record({"kind": "pretrain", "task": args.pretrain_task, **result})
    if not any(r["kind"] == "identity" and r["model"] == ablation.model_name(BACKBONE, args.block) for r in done):
        print(f"== identity at initialisation: {ablation.model_name(BACKBONE, args.block)} from {checkpoint}", flush=True)
        record(identity_at_init(checkpoint, args.task, data, args.block))
    todo = [(v, s) for s in args.seeds for v in ("plain", args.block)
            if not any(r["kind"] == "finetune" and r["variant"] == v and r["seed"] == s and r["epochs"] == args.epochs for r in done)]

    def run(variant: str, seed: int) -> None:
        model = BACKBONE if variant == "plain" else ablation.model_name(BACKBONE, variant)
        print(f"== fine-tune {model} on {args.task}, seed {seed} ({threads} threads)", flush=True)
        result = _fit_and_test(args, args.task, data, model, seed, args.work / f"{variant}_seed{seed}", threads, checkpoint)
        record({"kind": "finetune", "pretrain_task": args.pretrain_task, "task": args.task, "variant": variant, **result})

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run, v, s) for v, s in todo]
        try:
            for future in futures:
                future.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)  # finished runs are kept in results.jsonl; a rerun resumes
            raise
    mine = [r for r in done if r["kind"] != "finetune" or (r["variant"] in ("plain", args.block) and r["seed"] in args.seeds
                                                            and r["epochs"] == args.epochs)]
    mine = [r for r in mine if r["kind"] != "identity" or r["model"] == ablation.model_name(BACKBONE, args.block)]
    text = summarise(mine, args)
    print(text)
    return text


if __name__ == "__main__":
    main()
