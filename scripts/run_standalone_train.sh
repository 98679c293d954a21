#!/usr/bin/env bash
# Train on one device.
# Usage: bash scripts/run_standalone_train.sh CONFIG [DEVICE_ID] [-- KEY VALUE ...overrides]
#   e.g. bash scripts/run_standalone_train.sh config/voc2012_pspnet50.yaml 0 -- train.epochs 50
#   Paths are taken relative to the folder you call it from; DRY_RUN=1 prints the command instead.
set -euo pipefail
run() { if [ -n "${DRY_RUN:-}" ]; then printf '%q ' "$@"; echo; else exec "$@"; fi; }  # DRY_RUN=1 prints the command

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
CONFIG=$1; shift
DEVICE_ID=0
if [ $# -ge 1 ] && [ "$1" != "--" ]; then DEVICE_ID=$1; shift; fi
[ "${1:-}" = "--" ] && shift
[ -f "$CONFIG" ] || { echo "error: config not found: $CONFIG" >&2; usage; }
[[ "$DEVICE_ID" =~ ^[0-9]+$ ]] || { echo "error: DEVICE_ID must be a number, got '$DEVICE_ID'" >&2; usage; }
CONFIG=$(realpath "$CONFIG")   # before changing to the repository root
cd "$(dirname "$0")/.."
PY=python3; [ -x .venv/bin/python ] && PY=.venv/bin/python
export DEVICE_ID
run "$PY" train.py --config "$CONFIG" --resume auto --opts device.device_id "$DEVICE_ID" "$@"
