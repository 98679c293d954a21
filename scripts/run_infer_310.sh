#!/usr/bin/env bash
# Ascend 310 inference on a list: preprocess -> 310 app -> postprocess (mIoU, color masks).
# Usage: bash scripts/run_infer_310.sh MINDIR CONFIG [DEVICE_ID] [WORK_DIR]
#   The MINDIR must be exported with --batch_size equal to eval.batch_size of CONFIG.
#   RUNNER=python uses inference/run.py (MindSpore MINDIR on this host) instead of the 310 app.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
MINDIR=$(realpath "$1"); CONFIG=$(realpath "$2"); DEVICE_ID=${3:-0}; WORK=${4:-infer_310}
[ -f "$MINDIR" ] || { echo "error: MINDIR not found: $MINDIR" >&2; exit 2; }
[ -f "$CONFIG" ] || { echo "error: config not found: $CONFIG" >&2; exit 2; }
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
rm -rf "$WORK"
"$PY" inference/preprocess.py --config "$CONFIG" --out "$WORK"
if [ "${RUNNER:-ascend}" = "python" ]; then
  "$PY" inference/run.py --work "$WORK" --model "$MINDIR"
else
  [ -x inference/ascend310/build/pspnet_310 ] || bash inference/ascend310/build.sh
  inference/ascend310/build/pspnet_310 --mindir_path="$MINDIR" --input_dir="$WORK/input" \
    --output_dir="$WORK/output" --device_id="$DEVICE_ID"
fi
"$PY" inference/postprocess.py --config "$CONFIG" --work "$WORK" --results-dir "$WORK/results"
