#!/usr/bin/env bash
# Evaluate a checkpoint (or exported model) by the reference protocol.
# Usage: bash scripts/run_eval.sh CONFIG MODEL [ms|mindir|onnx|lite] [-- overrides]
#   Paths are taken relative to the folder you call it from; DRY_RUN=1 prints the command instead.
#   The log also goes to eval.log in the results folder (dated lines). Exit status: eval.py's.
#   An earlier evaluation's results in that folder are replaced only with OVERWRITE=1.
set -euo pipefail
run() { if [ -n "${DRY_RUN:-}" ]; then printf '%q ' "$@"; echo; else exec "$@"; fi; }  # DRY_RUN=1 prints the command

usage() { sed -n '2,/^set -e/p' "$0" | grep "^#" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 2 ] || usage
CONFIG=$1; MODEL=$2; shift 2
BACKEND=ms
if [ $# -ge 1 ] && [ "$1" != "--" ]; then BACKEND=$1; shift; fi
[ "${1:-}" = "--" ] && shift
[ -f "$CONFIG" ] || { echo "error: config not found: $CONFIG" >&2; usage; }
[ -f "$MODEL" ] || { echo "error: model not found: $MODEL" >&2; usage; }
case "$BACKEND" in ms|mindir|onnx|lite) ;; *) echo "error: backend must be ms, mindir, onnx or lite" >&2; usage;; esac
CONFIG=$(realpath "$CONFIG"); MODEL=$(realpath "$MODEL")
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib/launch.sh"; PY=$(pick_python "$ROOT")
extra=(); [ -n "${OVERWRITE:-}" ] && extra=(--overwrite)
run "$PY" "$ROOT/eval.py" --config "$CONFIG" --ckpt "$MODEL" --backend "$BACKEND" "${extra[@]+"${extra[@]}"}" --opts "$@"
