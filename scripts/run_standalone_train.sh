#!/usr/bin/env bash
# Train on one device.
# Usage: bash scripts/run_standalone_train.sh CONFIG [DEVICE_ID] [-- KEY VALUE ...overrides]
#   e.g. bash scripts/run_standalone_train.sh config/voc2012_pspnet50.yaml 0 -- train.epochs 50
#   RESUME=auto (default) continues from the newest checkpoint in train.save_dir (a finished run says "nothing
#   left to train"); RESUME=none starts fresh; RESUME=PATH continues from that checkpoint.
#   The log also goes to <train.save_dir>/train.log (dated lines). Exit status: train.py's.
#   Paths are taken relative to the folder you call it from; DRY_RUN=1 prints the command instead.
set -euo pipefail
run() { if [ -n "${DRY_RUN:-}" ]; then printf '%q ' "$@"; echo; else exec "$@"; fi; }  # DRY_RUN=1 prints the command
usage() { sed -n '2,/^set -e/p' "$0" | grep "^#" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage;; esac
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib/launch.sh"
CONFIG=$1; shift
DEVICE_ID=0
if [ $# -ge 1 ] && [ "$1" != "--" ]; then DEVICE_ID=$1; shift; fi
[ "${1:-}" = "--" ] && shift
[ -f "$CONFIG" ] || { echo "error: config not found: $CONFIG" >&2; usage; }
[[ "$DEVICE_ID" =~ ^[0-9]+$ ]] || { echo "error: DEVICE_ID must be a number, got '$DEVICE_ID'" >&2; usage; }
RES=$(resume_choice) || exit 2
CONFIG=$(realpath "$CONFIG")
PY=$(pick_python "$ROOT")
run "$PY" "$ROOT/train.py" --config "$CONFIG" --resume "$RES" --device_id "$DEVICE_ID" --opts "$@"
