#!/usr/bin/env bash
# Evaluate a checkpoint (or exported model) by the reference protocol.
# Usage: bash scripts/run_eval.sh CONFIG MODEL [ms|mindir|onnx|lite] [-- overrides]
#        bash scripts/run_eval.sh YAML DEVICE_ID      (the model zoo's form: the model is the config's
#                                                      eval.model_path / TEST.model_path / DATA.ckpt)
#   The backend defaults to the model's extension (.ckpt ms, .mindir mindir, .onnx onnx; a semseg .pth is
#   converted in memory).
#   Paths are taken relative to the folder you call it from; DRY_RUN=1 prints the command instead.
#   The log also goes to eval.log in the results folder (dated lines). Exit status: eval.py's.
#   An earlier evaluation's results in that folder are replaced only with OVERWRITE=1.
set -euo pipefail
run() { if [ -n "${DRY_RUN:-}" ]; then printf '%q ' "$@"; echo; else exec "$@"; fi; }  # DRY_RUN=1 prints the command

usage() { sed -n '2,/^set -e/p' "$0" | grep "^#" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 2 ] || usage
CONFIG=$1; MODEL=$2; shift 2
BACKEND=
model_args=()
if [[ "$MODEL" =~ ^[0-9]+$ ]] && [ ! -e "$MODEL" ]; then  # the model zoo's form: YAML DEVICE_ID
  model_args=(--device_id "$MODEL"); MODEL=
fi
if [ $# -ge 1 ] && [ "$1" != "--" ]; then BACKEND=$1; shift; fi
[ "${1:-}" = "--" ] && shift
[ -f "$CONFIG" ] || { echo "error: config not found: $CONFIG" >&2; usage; }
if [ -n "$MODEL" ]; then
  [ -f "$MODEL" ] || { echo "error: model not found: $MODEL" >&2; usage; }
  model_args=(--ckpt "$(realpath "$MODEL")")
fi
case "$BACKEND" in ""|ms|mindir|onnx|lite) ;; *) echo "error: backend must be ms, mindir, onnx or lite" >&2; usage;; esac
[ -n "$BACKEND" ] && model_args+=(--backend "$BACKEND")
CONFIG=$(realpath "$CONFIG")
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib/launch.sh"; PY=$(pick_python "$ROOT")
extra=(); [ -n "${OVERWRITE:-}" ] && extra=(--overwrite)
run "$PY" "$ROOT/eval.py" --config "$CONFIG" "${model_args[@]}" "${extra[@]+"${extra[@]}"}" --opts "$@"
