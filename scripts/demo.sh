#!/usr/bin/env bash
# `make demo` (after the install, with .venv/bin on PATH): generate the synthetic action dataset,
# train configs/demo.yaml (a tiny I3D with Non-local blocks) on it, run the 10x3 multi-view test,
# and print the multi-view top-1 / top-5 on the test split. Outputs go to runs/demo/ (DEMO_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${DEMO_DIR:-runs/demo}"
start=$(date +%s)
rm -rf "$out/checkpoints"  # a fresh run, not a resumed one

echo "== 1/3 synthetic dataset -> $out/synth"
videoattn synth "$out/synth" --videos-per-class "${DEMO_VIDEOS_PER_CLASS:-150}" --seed 0 \
  --min-frames 32 --max-frames 48

t1=$(date +%s)
echo "== 2/3 training configs/demo.yaml"
videoattn fit --config configs/demo.yaml --data.init_args.root "$out/synth" --trainer.default_root_dir "$out" "$@"

t2=$(date +%s)
echo "== 3/3 10x3 multi-view test"
videoattn test --config configs/demo.yaml --data.init_args.root "$out/synth" --trainer.default_root_dir "$out" \
  --ckpt_path "$out/checkpoints/last.ckpt" --model.predictions_csv "$out/test_predictions.csv" "$@"

t3=$(date +%s)
echo "phase wall times: dataset $((t1 - start)) s, training $((t2 - t1)) s, test $((t3 - t2)) s"
python - "$out/test_predictions.csv" "$start" <<'PY'
import csv, sys, time

rows = list(csv.DictReader(open(sys.argv[1])))
top1 = sum(r["label"] == r["class_1"] for r in rows) / len(rows)
top5 = sum(r["label"] in [r[f"class_{i}"] for i in range(1, 6)] for r in rows) / len(rows)
minutes = (time.time() - int(sys.argv[2])) / 60
print(f"\ndemo: multi-view (10 clips x 3 crops) test on {len(rows)} videos: top-1 {top1:.3f}  top-5 {top5:.3f}  "
      f"(dataset + training + test: {minutes:.1f} min; per-video predictions in {sys.argv[1]})")
PY
