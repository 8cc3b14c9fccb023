#!/usr/bin/env bash
# `make demo` (after the install, with .venv/bin on PATH): generate the synthetic relations dataset,
# train configs/relations.yaml + configs/demo.yaml (i3d_probe_nl: a tiny I3D whose receptive field
# is smaller than the distance between the two objects, with two Non-local blocks) on it, run the
# 10-clip multi-view test, and end with one line: the model's multi-view top-1 against the same
# recipe without the blocks (from the committed ablation results). Outputs go to runs/demo/
# (DEMO_DIR). Torch runs DEMO_THREADS threads (default 2): the run is deterministic for a given
# number of threads on a given machine, and another number gives another (equally good) run.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${DEMO_DIR:-runs/demo}"
threads="${DEMO_THREADS:-2}"
export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
configs=(--config configs/relations.yaml --config configs/demo.yaml)
start=$(date +%s)
rm -rf "$out/checkpoints"  # a fresh run, not a resumed one

echo "== 1/3 synthetic relations dataset -> $out/synth"
videoattn synth "$out/synth" --task relations --videos-per-class "${DEMO_VIDEOS_PER_CLASS:-500}" --seed 0

t1=$(date +%s)
echo "== 2/3 training i3d_probe_nl (configs/relations.yaml + configs/demo.yaml, $threads threads)"
videoattn fit "${configs[@]}" --data.init_args.root "$out/synth" --trainer.default_root_dir "$out" "$@"

t2=$(date +%s)
echo "== 3/3 multi-view test"
videoattn test "${configs[@]}" --data.init_args.root "$out/synth" --trainer.default_root_dir "$out" \
  --ckpt_path "$out/checkpoints/last.ckpt" --model.predictions_csv "$out/test_predictions.csv" "$@"

t3=$(date +%s)
echo "phase wall times: dataset $((t1 - start)) s, training $((t2 - t1)) s, test $((t3 - t2)) s; total $(( (t3 - start) / 60 )) min $(( (t3 - start) % 60 )) s"
python scripts/demo_summary.py "$out/test_predictions.csv"
