#!/usr/bin/env bash
# From a fresh clone to a trained, evaluated, exported and visualized PSPNet on CPU, on the embedded
# synthetic data set (no downloads). 6-9 minutes on 2 cores (more on slower ones) with .venv set up, plus the
# pip install on a fresh machine.
# Usage: bash scripts/quickstart.sh [OUT_DIR=outputs/quickstart]
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -e/p' "$0" | grep "^#" | sed 's/^# \{0,1\}//'; exit 0;; esac
cd "$(dirname "$0")/.."
OUT=${1:-outputs/quickstart}
DATA=data/synthetic_shapes
CFG=config/demo_synthetic.yaml
export GLOG_v=${GLOG_v:-3}
bash scripts/setup_env.sh
PY=.venv/bin/python
step() { echo; echo "==> $*"; }

NUM=900  # 810 train / 90 val images of 128x96
step "1/6 synthetic VOC-format data set in $DATA ($NUM images)"
if [ -f "$DATA/info.json" ] && grep -q "\"num\": $NUM," "$DATA/info.json"; then
  echo "already there"
else
  if [ -e "$DATA" ] && [ ! -f "$DATA/info.json" ] && [ -n "$(ls -A "$DATA" 2>/dev/null)" ]; then
    echo "error: $DATA exists and is not a synthetic set this script wrote (no info.json); move it away" >&2
    exit 2
  fi
  # an older, smaller synthetic set of ours (info.json) is written over; only files the generator wrote are replaced
  "$PY" -m src synthetic --out "$DATA" --task shapes --num $NUM --size 128 --seed 0 --val-fraction 0.1 --overwrite
fi

step "2/6 training PSPNet-50 from scratch on CPU (config $CFG)"
"$PY" train.py --config "$CFG" --resume auto --opts train.save_dir "$OUT" data.data_root "$DATA"  # a rerun continues
CKPT=$(ls "$OUT"/checkpoints/epoch_*.ckpt | tail -n 1)

step "3/6 evaluating $CKPT by the reference protocol"
"$PY" eval.py --config "$CFG" --ckpt "$CKPT" --overwrite --results-dir "$OUT/eval_ms" \
  --opts train.save_dir "$OUT" data.data_root "$DATA" eval.save_images true

step "4/6 exporting MINDIR and ONNX (verified against MindSpore)"
BATCH=$("$PY" -c "from src.config import load_config; print(load_config('$CFG').eval.batch_size)")
for FMT in MINDIR ONNX; do
  "$PY" export.py --config "$CFG" --ckpt "$CKPT" --file_format $FMT --batch_size "$BATCH" \
    --file_name "$OUT/export/pspnet50" --overwrite > "$OUT/export_$FMT.json"
done

step "5/6 the Ascend-310 file flow (in chunks of images, bounded disk) with the Python runner on the ONNX model"
"$PY" -m src flow310 --config "$CFG" --model "$OUT/export/pspnet50.onnx" --work "$OUT/infer_310" --runner python \
  --save-images --overwrite --opts data.data_root "$DATA"

step "6/6 predict on a few images with the MINDIR"
mkdir -p "$OUT/predict_input"
head -n 4 "$DATA/val.txt" | while read -r img _; do cp "$DATA/$img" "$OUT/predict_input/"; done
"$PY" inference/predict.py --config "$CFG" --model "$OUT/export/pspnet50.mindir" --input "$OUT/predict_input" \
  --out "$OUT/predict" --overwrite

echo
echo "==================== quickstart done ===================="
grep -h "ss:mIoU" "$OUT/eval_ms/eval.log" | tail -n 1 | sed 's/^.* \(Synthetic\)/\1/' || true  # this run's line (the log keeps earlier runs')
echo "(chance level: predicting background everywhere gives mIoU ~ 1/6 of the background IoU)"
echo "checkpoints        $OUT/checkpoints/"
echo "training records   $OUT/metrics.jsonl  and the curves  $OUT/curves.png"
echo "eval report        $OUT/eval_ms/report.md  results.json  masks: $OUT/eval_ms/color/  overlays: $OUT/eval_ms/overlay/"
echo "exported models    $OUT/export/pspnet50.mindir  $OUT/export/pspnet50.onnx  (verification: $OUT/export_*.json)"
echo "310-style flow     $OUT/infer_310/results.json  masks: $OUT/infer_310/results/"
echo "predictions        $OUT/predict/overlay/"
