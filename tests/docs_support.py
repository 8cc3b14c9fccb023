"""Running the documentation's commands on synthetic data (tests/test_docs_commands.py,
tests/test_tutorials.py).

A page's ```bash blocks are cut into commands (backslash continuations joined, heredocs kept
whole, comments dropped). Each command is then
  - not run, when it matches NOT_RUN (each entry says why: a cluster, the network, hours of
    compute, a GPU); an entry that matches no command of the docs fails the tests, so the list
    cannot go stale;
  - else rewritten by the rules below and run with bash, the page's commands in order, in a
    working folder that looks like the repository's root (configs/, scripts/, docs/ linked)
    and holds the files the docs name (a demo run, my_video.mp4, videos/, checkpoints/...).

Rules, in order:
  1. PLACEHOLDERS: paths of the docs that stand for the user's data become the test's (a tiny
     synthetic dataset in Kinetics layout for /data/kinetics400, one with `path label` lists for
     /data/ucf101, a fake downloaded Kinetics for /raw/..., a pytorchvideo-format checkpoint of
     the tiny backbone for checkpoints/I3D_8x8_R50.pyth, ...).
  2. `-j N` / `--workers N` become 2; `videoattn synth` gets `--videos-per-class 10 --quiet`.
  3. Lightning subcommands (fit, validate, test, predict, extract; also under torchrun) get
     TRAINER_TINY: the CPU, one process, 32-bit, one epoch of at most 2 train batches, 1 val
     batch, 2 test and predict batches; and, when they read a config, DataLoader workers 0.
  4. Commands on a full-size recipe (configs/k400_*.yaml) also get TINY_DATA and the tiny
     backbone of the same family (i3d_r50_nl -> i3d_tiny_nl, slowfast_r50 -> slowfast_tiny, ...).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<code>.*?)^```", re.S | re.M)
LIGHTNING = ("fit", "validate", "test", "predict", "extract")

# (pattern on the command, why it is not run here)
NOT_RUN: list[tuple[str, str]] = [
    (r"^make (demo|test)\b", "the set-up commands themselves: `make test` runs this suite, `make demo` is CI's fresh-clone check"),
    (r"^make docs$", "`make test` builds the site with `mkdocs build --strict` and tests/test_docs_results.py checks the rendered tables"),
    (r"^make docs-serve$", "a web server that runs until it is stopped"),
    (r"^mkdir -p /data/\w+ && cd /data/\w+$", "makes the folder the archives below are unpacked in"),
    (r"^(unrar|unzip) |^cat 20bn-something", "unpacks archives downloaded from the dataset's site (the world holds the unpacked layout)"),
    (r"^python scripts/finetune_inserted\.py --jobs 2", "3 seeds x 2 fine-tuning runs: about 45 minutes (its --smoke runs here)"),
    (r"^python scripts/block_dynamics\.py runs/ablation/", "reads the runs of the actions_long ablation, which is not run"),
    (r"^torchrun --nnodes 2\b", "two nodes of 8 GPUs each"),
    (r"^#!/bin/bash\n#SBATCH", "a SLURM batch script"),
    (r"^aws s3 ", "the network and an S3 bucket"),
    (r"^python scripts/ablation\.py --task \w+( --variants [\w ]+)? --jobs 2", "blocks x 3 seeds: hours of training"),
    (r"^python scripts/ablation\.py --task relations --variants", "trains six models for minutes each"),
    (r"^python scripts/bench_gpu\.py", "a CUDA GPU"),
    (r"^DEMO_DIR=\S+ bash scripts/demo\.sh --trainer\.accelerator gpu", "a CUDA GPU"),
    (r"^python scripts/bench_(blocks|data|models|predict|train_step|lr_paths)\.py", "a benchmark: minutes of timing on an idle machine"),
    (r"^python scripts/gc_diagnose\.py run ", "trains 6-16 epochs per seed: minutes to hours"),
    (r"^python scripts/gc_diagnose\.py plot runs/gc_diag/", "plots the logs of the `gc_diagnose.py run` commands, which are not run"),
]

TRAINER_TINY = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.num_nodes", "1", "--trainer.strategy", "auto",
                "--trainer.precision", "32-true", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "2", "--trainer.limit_predict_batches", "2",
                "--trainer.num_sanity_val_steps", "0", "--trainer.enable_progress_bar", "false"]
TINY_DATA = ["--model.precise_bn_batches", "0", "--data.init_args.batch_size", "2", "--data.init_args.test_batch_size", "1",
             "--data.init_args.clip.train_short_side", "[32,32]", "--data.init_args.clip.crop_size", "32",
             "--data.init_args.clip.test_short_side", "32", "--data.init_args.clip.test_crop_size", "32",
             "--data.init_args.clip.test_views", "[2,1]"]


@dataclass
class Command:
    """One command of a page: its text, the page and line it comes from."""

    text: str
    page: str
    line: int

    def not_run(self) -> str | None:
        """Why this command is not run, or None."""
        for pattern, reason in NOT_RUN:
            if re.search(pattern, self.text):
                return reason
        return None


def pages() -> list[Path]:
    """README.md and the Markdown pages under docs/, tutorials excepted (tests/test_tutorials.py runs those)."""
    return [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").rglob("*.md") if "tutorials" not in p.parts)


def tutorials() -> list[Path]:
    return sorted(p for p in (ROOT / "docs" / "tutorials").glob("*.md") if p.name != "index.md")


def code_blocks(page: Path, langs: tuple[str, ...] = ("bash", "sh", "shell", "console")) -> list[tuple[str, str, int]]:
    """(language, code, line number) of the fenced blocks of ``page`` in ``langs``, in order."""
    text = page.read_text()
    out = []
    for match in FENCE.finditer(text):
        if match.group("lang") in langs:
            out.append((match.group("lang"), match.group("code"), text[: match.start()].count("\n") + 1))
    return out


def commands(code: str, page: str = "", line: int = 0) -> list[Command]:
    """The commands of a shell block: continuation lines joined, comment lines and trailing
    comments dropped, a heredoc kept with its command. A block that opens with a shebang is one
    script."""
    if code.startswith("#!"):
        return [Command(code.strip(), page, line)]
    out: list[Command] = []
    lines = code.splitlines()
    i = 0
    while i < len(lines):
        start = i
        current = lines[i]
        while current.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            current = current.rstrip()[:-1].rstrip() + " " + lines[i].strip()
        depth = _depth(current)
        while depth > 0 and i + 1 < len(lines):  # a loop or an if: up to its done / fi
            i += 1
            current += "\n" + lines[i]
            depth += _depth(lines[i])
        heredoc = re.search(r"<<-?\s*'?\"?(\w+)'?\"?", current)
        if heredoc:
            end = heredoc.group(1)
            body = []
            while i + 1 < len(lines):
                i += 1
                body.append(lines[i])
                if lines[i].strip() == end:
                    break
            current = current + "\n" + "\n".join(body)
        i += 1
        text = current if heredoc or "\n" in current else _strip_comment(current).strip()
        if text and not text.startswith("#"):
            out.append(Command(text, page, line + 1 + start))
    return out


def _depth(line: str) -> int:
    """How many compound commands (for/while ... do ... done, if ... then ... fi, case ... esac)
    a line opens, minus those it closes."""
    words = re.findall(r"(?<![\w-])(do|done|then|fi|case|esac)(?![\w-])", re.sub(r"'[^']*'|\"[^\"]*\"", "", _strip_comment(line)))
    return sum(1 if w in ("do", "then", "case") else -1 for w in words)


def _strip_comment(line: str) -> str:
    """``line`` without a trailing `# comment` (outside quotes)."""
    quote = None
    for k, ch in enumerate(line):
        if ch in "'\"" and quote in (None, ch):
            quote = None if quote else ch
        elif ch == "#" and quote is None and (k == 0 or line[k - 1].isspace()):
            return line[:k]
    return line


def all_commands() -> list[Command]:
    """Every shell command of README.md and docs/, tutorials included."""
    out = []
    for page in pages() + tutorials():
        for _, code, line in code_blocks(page):
            out += commands(code, str(page.relative_to(ROOT)), line)
    return out


# ---------------------------------------------------------------------------------- the world
def _run(args: list[str], cwd: Path) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=environment())
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def environment() -> dict[str, str]:
    """The commands' environment: this Python's scripts (the `videoattn` console script) first on PATH, one torch thread."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "VIDEOATTN_RESULTS_DIR": os.environ.get("VIDEOATTN_RESULTS_DIR") or str(Path(tempfile.gettempdir()) / "videoattn_docs_results"),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def make_world(world: Path) -> Path:
    """The files the docs' placeholders stand for, made once per test session: synthetic videos
    in Kinetics layout (`path,label` CSVs with class names, classes.txt), with `path label`
    lists (UCF101's place), as a downloaded Kinetics (official CSVs, youtube-id file names), a
    demo run (dataset and checkpoint), and pytorchvideo-format checkpoints of the tiny backbones."""
    import torch

    from videoattn.models import create_model

    world.mkdir(parents=True, exist_ok=True)
    synth = world / "synth"
    _run([sys.executable, "-m", "videoattn.cli", "synth", str(synth), "--task", "relations", "--videos-per-class", "10", "--quiet"], world)
    classes = (synth / "classes.txt").read_text().split()
    k400 = world / "kinetics400"
    k400.mkdir()
    (k400 / "videos").symlink_to(synth / "videos")
    shutil.copy(synth / "classes.txt", k400 / "classes.txt")
    ucf = world / "ucf101"
    ucf.mkdir()
    (ucf / "videos").symlink_to(synth / "videos")
    raw, raw_csv = world / "raw_kinetics400", world / "raw_k400"
    raw.mkdir()
    raw_csv.mkdir()
    for split, official in (("train", "train"), ("val", "validate"), ("test", None)):
        rows = [line.split() for line in (synth / f"{split}.csv").read_text().splitlines()]
        (k400 / f"{split}.csv").write_text("".join(f"{path},{classes[int(label)]}\n" for path, label in rows))
        (ucf / f"{split}.txt").write_text("".join(f"{path} {label}\n" for path, label in rows))
        if official:
            lines = ["label,youtube_id,time_start,time_end,split"]
            for k, (path, label) in enumerate(rows):
                youtube_id = f"{official[:2]}{k:09d}"
                shutil.copy(synth / path, raw / f"{youtube_id}_{0:06d}_{10:06d}.mp4")
                lines.append(f"{classes[int(label)]},{youtube_id},0,10,{official}")
            (raw_csv / f"{official}.csv").write_text("\n".join(lines) + "\n")
    official_layouts(world, synth, classes)
    demo = world / "demo"
    shutil.copytree(synth, demo / "synth", symlinks=True)
    _run([sys.executable, "-m", "videoattn.cli", "fit", "--config", str(ROOT / "configs" / "relations.yaml"),
          "--config", str(ROOT / "configs" / "demo.yaml"), "--data.init_args.root", str(demo / "synth"),
          "--trainer.default_root_dir", str(demo), *TRAINER_TINY, "--data.init_args.num_workers", "0"], world)
    checkpoints = world / "checkpoints"
    checkpoints.mkdir()
    for name, file in (("i3d_tiny", "I3D_8x8_R50.pyth"), ("slowfast_tiny", "SLOWFAST_8x8_R50.pyth")):
        torch.save({"model_state": create_model(name, num_classes=400).state_dict()}, checkpoints / file)
    (world / "videos" / "class_a").mkdir(parents=True)
    for k, path in enumerate(sorted((synth / "videos").rglob("*.mp4"))[:3]):
        shutil.copy(path, world / "videos" / "class_a" / f"clip_{k}.mp4")
    shutil.copy(sorted((synth / "videos").rglob("*.mp4"))[0], world / "my_video.mp4")
    return world


def official_layouts(world: Path, synth: Path, classes: list[str]) -> None:
    """UCF101, HMDB51, Something-Something v2 and Kinetics-700 as their archives unpack
    (docs/datasets.md), holding the synthetic videos under each dataset's file names: the train
    list's videos as the train split, the val list's as the test split. SSv2's are re-encoded
    as VP9 .webm; the others are copied (PyAV reads the container from the file, not its name)."""
    from videoattn.data.decode import probe_num_frames, read_frames
    from videoattn.video_io import write_video

    rows = {split: [line.split() for line in (synth / f"{split}.csv").read_text().splitlines()] for split in ("train", "val")}
    # UCF101: UCF-101/<Class>/v_<Class>_gGG_cCC.avi, ucfTrainTestlist/ (1-based indices, Windows line ends)
    ucf = world / "ucf101"
    (ucf / "ucfTrainTestlist").mkdir(parents=True, exist_ok=True)
    (ucf / "ucfTrainTestlist" / "classInd.txt").write_text("".join(f"{i} {c}\r\n" for i, c in enumerate(classes, 1)), newline="")
    for split, name, first_group in (("train", "trainlist01.txt", 8), ("val", "testlist01.txt", 1)):
        lines = []
        for k, (path, label) in enumerate(rows[split]):
            c = classes[int(label)]
            rel = f"{c}/v_{c}_g{first_group + k // 4:02d}_c{k % 4 + 1:02d}.avi"
            (ucf / "UCF-101" / c).mkdir(parents=True, exist_ok=True)
            shutil.copy(synth / path, ucf / "UCF-101" / rel)
            lines.append(f"{rel} {int(label) + 1}" if split == "train" else rel)
        (ucf / "ucfTrainTestlist" / name).write_text("".join(line + "\r\n" for line in lines), newline="")
    # HMDB51: <class>/<video>.avi, testTrainMulti_7030_splits/<class>_test_split1.txt (1 train, 2 test)
    hmdb = world / "hmdb51"
    (hmdb / "testTrainMulti_7030_splits").mkdir(parents=True)
    for c_index, c in enumerate(classes):
        (hmdb / c).mkdir()
        lines = []
        for split, mark in (("train", 1), ("val", 2)):
            for k, (path, label) in enumerate(rows[split]):
                if int(label) == c_index:
                    video = f"{split}_{c}_u_nm_np1_fr_goo_{k}.avi"
                    shutil.copy(synth / path, hmdb / c / video)
                    lines.append(f"{video} {mark} \n")
        (hmdb / "testTrainMulti_7030_splits" / f"{c}_test_split1.txt").write_text("".join(lines))
    # Something-Something v2: labels/*.json, 20bn-something-something-v2/<id>.webm (VP9)
    ssv2 = world / "ssv2"
    (ssv2 / "labels").mkdir(parents=True)
    (ssv2 / "20bn-something-something-v2").mkdir()
    templates = [f"Showing [something] of {c.replace('_', ' ')}" for c in classes]
    (ssv2 / "labels" / "labels.json").write_text(json.dumps({t.replace("[something]", "something"): str(i) for i, t in enumerate(templates)}, indent=1))
    for split, name, count in (("train", "train", 12), ("val", "validation", 4), (None, "test", 2)):
        entries = []
        for k, (path, label) in enumerate(rows[split or "val"][:count]):
            video_id = {"train": 1000, "validation": 2000, "test": 3000}[name] + k
            frames = read_frames(synth / path, range(probe_num_frames(synth / path))).numpy()
            write_video(ssv2 / "20bn-something-something-v2" / f"{video_id}.webm", frames, fps=12, codec="libvpx-vp9",
                        options={"deadline": "realtime", "cpu-used": "8"})
            entry = {"id": str(video_id)}
            if split:
                t = templates[int(label)]
                entry.update(label=t.replace("[something]", "a cup"), template=t, placeholders=["a cup"])
            entries.append(entry)
        (ssv2 / "labels" / f"{name}.json").write_text("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]\n")
    # Kinetics-700-2020 (cvdfoundation): annotations/{train,val,test}.csv, <split>/<label>/<id>_<start>_<end>.mp4
    k700 = world / "k700-2020"
    (k700 / "annotations").mkdir(parents=True)
    for split in ("train", "val", "test"):
        lines = ["label,youtube_id,time_start,time_end,split" if split != "test" else "youtube_id,time_start,time_end,split"]
        for k, (path, label) in enumerate(rows["val" if split == "test" else split]):
            youtube_id = f"{split[:2]}_{k:08d}"
            folder = k700 / split / classes[int(label)] if split != "test" else k700 / split
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(synth / path, folder / f"{youtube_id}_000000_000010.mp4")
            lines.append(f"{classes[int(label)]},{youtube_id},0,10,{split}" if split != "test" else f"{youtube_id},0,10,{split}")
        (k700 / "annotations" / f"{split}.csv").write_text("\n".join(lines) + "\n")


def workdir(world: Path, folder: Path) -> Path:
    """A folder that looks like the repository's root for the docs' relative paths."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("configs", "scripts", "docs"):
        (folder / name).symlink_to(ROOT / name)
    shutil.copytree(world / "kinetics400", folder / "kinetics400", symlinks=True)  # the page's own (prepare_kinetics writes there)
    (folder / "data").mkdir()
    (folder / "data" / "kinetics400").symlink_to(folder / "kinetics400")
    (folder / "runs").mkdir()
    shutil.copytree(world / "demo", folder / "runs" / "demo", symlinks=True)
    shutil.copytree(world / "checkpoints", folder / "checkpoints")
    shutil.copytree(world / "videos", folder / "videos")
    shutil.copy(world / "my_video.mp4", folder / "my_video.mp4")
    shutil.copy(world / "demo" / "checkpoints" / "last.ckpt", folder / "last.ckpt")
    for split in ("train", "val"):  # lists named on the command line next to --root /data/kinetics400
        shutil.copy(world / "kinetics400" / f"{split}.csv", folder / f"{split}.csv")
    return folder


# ------------------------------------------------------------------------------- the rewrite
def placeholders(world: Path, work: Path) -> list[tuple[str, str]]:
    """(text in the docs, what the test puts there), applied in order."""
    return [
        ("/data/kinetics400/clean", str(work / "clean")),
        ("/data/kinetics400", str(work / "kinetics400")),
        ("/data/ucf101", str(world / "ucf101")),
        ("/data/hmdb51", str(world / "hmdb51")),
        ("/data/ssv2", str(world / "ssv2")),
        ("/data/k700-2020", str(world / "k700-2020")),
        ("K400_SLOWFAST.ckpt", str(world / "checkpoints" / "SLOWFAST_8x8_R50.pyth")),
        ("K400.ckpt", str(world / "checkpoints" / "I3D_8x8_R50.pyth")),
        ("/raw/kinetics400", str(world / "raw_kinetics400")),
        ("/raw/k400/", str(world / "raw_k400") + "/"),
        ("/shards/", str(work / "shards") + "/"),
        ("'/videos/**/*.mp4'", f"'{work}/videos/**/*.mp4'"),
        # the demo's test video; the test's demo dataset has 10 videos per class
        ("different_colour_0400.mp4", "different_colour_0008.mp4"),
    ]


def _backbone(args: list[str]) -> str | None:
    """The backbone a Lightning command trains: its last --model.backbone, else the last config's."""
    backbone = None
    for k, arg in enumerate(args[:-1]):
        if arg in ("--config", "-c"):
            path = ROOT / args[k + 1] if not os.path.isabs(args[k + 1]) else Path(args[k + 1])
            if path.is_file():
                backbone = ((yaml.safe_load(path.read_text()) or {}).get("model") or {}).get("backbone", backbone)
        elif arg == "--model.backbone":
            backbone = args[k + 1]
    return backbone


def tiny_backbone(name: str) -> str:
    """The tiny model of ``name``'s family: i3d_r50_nl -> i3d_tiny_nl, slowfast_r50 -> slowfast_tiny."""
    from videoattn.models import list_models

    family = "slowfast" if name.startswith("slowfast") else "i3d"
    suffix = re.sub(r"^[a-z0-9]+_(r|lr)\d+", "", name)
    candidate = f"{family}_tiny{suffix}"
    return candidate if candidate in list_models() else f"{family}_tiny"


def rewrite(command: str, world: Path, work: Path) -> str:
    """The command as the test runs it (the rules of this module's docstring)."""
    for text, replacement in placeholders(world, work):
        command = command.replace(text, replacement)
    if "\n" in command:  # a heredoc: as written
        return command
    command = re.sub(r"(\s-j|\s--workers)\s+\d+", r"\1 2", command)
    words = shlex.split(command)
    extra: list[str] = []
    if words[:2] == ["videoattn", "synth"]:
        extra = ["--videos-per-class", "10", "--quiet"]
    sub = _lightning_subcommand(words)
    if sub:
        extra = list(TRAINER_TINY)
        if any(w in ("--config", "-c") for w in words):
            extra += ["--data.init_args.num_workers", "0"]
        if any(re.search(r"configs/k400_", w) for w in words):
            backbone = _backbone(words)
            extra += TINY_DATA + (["--model.backbone", tiny_backbone(backbone)] if backbone else [])
    if not extra:
        return command
    return command + " " + " ".join(shlex.quote(e) for e in extra)


def _lightning_subcommand(words: list[str]) -> str | None:
    if words[:1] == ["videoattn"] and len(words) > 1 and words[1] in LIGHTNING:
        return words[1]
    if words[:1] == ["torchrun"] and "videoattn.cli" in words:
        k = words.index("videoattn.cli")
        return words[k + 1] if k + 1 < len(words) and words[k + 1] in LIGHTNING else None
    return None


def run_commands(cmds: list[Command], world: Path, work: Path, timeout: float = 600) -> list[tuple[Command, float]]:
    """Run the runnable ``cmds`` in order in ``work`` (one bash process, variables carried from
    one command to the next); returns (command, seconds) per command run. A failure raises an
    AssertionError naming the page, the line, the command as written and as run, and its output."""
    import time

    timings = []
    env = environment()
    state = work / ".docs_env"
    for cmd in cmds:
        if cmd.not_run():
            continue
        runnable = rewrite(cmd.text, world, work)
        # one bash per command; shell variables and the working folder carry over through a state file
        script = f"set -eo pipefail\n[ -f {shlex.quote(str(state))} ] && source {shlex.quote(str(state))}\n{runnable}\n" \
                 f"declare -p | grep -v -E '^declare -[a-zA-Z-]*r' | grep -E '^declare -- [A-Za-z_][A-Za-z0-9_]*=' > {shlex.quote(str(state))} || true\n"
        start = time.perf_counter()
        done = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
        seconds = time.perf_counter() - start
        if done.returncode:
            raise AssertionError(f"{cmd.page}:{cmd.line}: command failed ({done.returncode})\nas written: {cmd.text}\nas run: {runnable}\n"
                                 f"--- stdout (end)\n{done.stdout[-4000:]}\n--- stderr (end)\n{done.stderr[-4000:]}")
        timings.append((cmd, seconds))
    return timings


def record_timings(path: Path, timings: list[tuple[Command, float]]) -> None:
    """Append the commands' run times to a JSON-lines file (for measuring the tests' cost)."""
    with path.open("a") as f:
        for cmd, seconds in timings:
            f.write(json.dumps({"page": cmd.page, "line": cmd.line, "seconds": round(seconds, 2), "command": cmd.text[:120]}) + "\n")
