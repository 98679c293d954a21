#!/usr/bin/env bash
# Evaluate a checkpoint (or exported model) by the reference protocol.
# Usage: bash scripts/run_eval.sh CONFIG MODEL [ms|mindir|onnx] [-- overrides]
set -euo pipefail
usage() { sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 2 ] || usage
CONFIG=$1; MODEL=$2; shift 2
BACKEND=ms
if [ $# -ge 1 ] && [ "$1" != "--" ]; then BACKEND=$1; shift; fi
[ "${1:-}" = "--" ] && shift
[ -f "$CONFIG" ] || { echo "error: config not found: $CONFIG" >&2; usage; }
[ -f "$MODEL" ] || { echo "error: model not found: $MODEL" >&2; usage; }
case "$BACKEND" in ms|mindir|onnx) ;; *) echo "error: backend must be ms, mindir or onnx" >&2; usage;; esac
cd "$(dirname "$0")/.."
PY=python3; [ -x .venv/bin/python ] && PY=.venv/bin/python
exec "$PY" eval.py --config "$CONFIG" --ckpt "$MODEL" --backend "$BACKEND" --overwrite --opts "$@"
