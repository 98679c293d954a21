#!/usr/bin/env bash
# Ascend 310 inference on a list, in chunks of images: preprocess -> 310 app -> merge + score -> delete, so the
# work folder never holds more than MAX_DISK_GB (printed before it starts); then results.json and report.md.
# Usage: bash scripts/run_infer_310.sh MINDIR CONFIG [DEVICE_ID] [WORK_DIR]
#        bash scripts/run_infer_310.sh MINDIR YAML DATA_PATH DEVICE_ID   (the model zoo's form; WORK_DIR ./infer_310)
#   WORK_DIR (default ./infer_310, relative to the folder you call it from): new, or a previous run's work
#   folder, where only files the flow wrote are replaced (its results only with OVERWRITE=1); a user's files stay.
#   The MINDIR's batch is read from its export sidecar (<MINDIR>.json, written by export.py).
#   LITE_HOME: the unpacked MindSpore Lite package (the app is built on first use; its runtime/lib and
#   runtime/third_party libraries are put on LD_LIBRARY_PATH). PRECISION=float32 (default) | float16.
#   MAX_DISK_GB=4 (default). RUNNER=python runs the MINDIR with the Python runner on this host instead (no Lite).
#   Everything is checked before the first image is cut. Exit status: the flow's (2: a bad argument or file).
set -euo pipefail
usage() { sed -n '2,/^set -e/p' "$0" | grep "^#" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 2 ] || usage
case "$1" in -h|--help) usage;; esac
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib/launch.sh"
. "$ROOT/inference/ascend310/lite_env.sh"
MINDIR=$1; CONFIG=$2; DEVICE_ID=${3:-0}; WORK=${4:-infer_310}
DATA_ARGS=()
if [ $# -eq 4 ] && [ -d "$3" ] && [[ "$4" =~ ^[0-9]+$ ]]; then  # the model zoo's form: MINDIR YAML DATA_PATH DEVICE_ID
  DATA_ARGS=(--opts data.data_root "$(realpath "$3")"); DEVICE_ID=$4; WORK=infer_310
fi
[ -f "$MINDIR" ] || { echo "error: MINDIR not found: $MINDIR" >&2; exit 2; }
[ -f "$CONFIG" ] || { echo "error: config not found: $CONFIG" >&2; exit 2; }
[[ "$DEVICE_ID" =~ ^[0-9]+$ ]] || { echo "error: DEVICE_ID must be a number, got '$DEVICE_ID'" >&2; exit 2; }
PRECISION=${PRECISION:-float32}
case "$PRECISION" in float32|float16) ;; *) echo "error: PRECISION must be float32 or float16, got '$PRECISION'" >&2; exit 2;; esac
MINDIR=$(realpath "$MINDIR"); CONFIG=$(realpath "$CONFIG"); WORK=$(realpath -m "$WORK")   # from the caller's folder
PY=$(pick_python "$ROOT")
args=(--config "$CONFIG" --model "$MINDIR" --work "$WORK" --device_id "$DEVICE_ID" --max-disk-gb "${MAX_DISK_GB:-4}")
[ -n "${OVERWRITE:-}" ] && args+=(--overwrite)
args+=("${DATA_ARGS[@]+"${DATA_ARGS[@]}"}")
if [ "${RUNNER:-app}" = "python" ]; then
  exec "$PY" "$ROOT" flow310 "${args[@]}" --runner python --backend mindir
fi
lite_env || exit 2
APP=${APP:-$ROOT/inference/ascend310/build/pspnet_310}
if [ ! -x "$APP" ]; then
  bash "$ROOT/inference/ascend310/build.sh" || { echo "error: building the 310 app failed" >&2; exit 2; }
fi
exec "$PY" "$ROOT" flow310 "${args[@]}" --runner app --app "$APP" --precision "$PRECISION"
