#!/usr/bin/env bash
# Data-parallel training on this machine's CPU with msrun (MindSpore's TCP collectives) - to test the
# distributed path without accelerators.
# Usage: bash scripts/run_distribute_train_cpu.sh CONFIG [WORKERS=2] [-- overrides]
#   Paths are taken relative to the folder you call it from; DRY_RUN=1 prints the command instead.
#   RESUME=auto (default) | none | PATH, as in run_distribute_train.sh. Exit status: msrun's (non-zero when a
#   worker failed); Ctrl-C / TERM / HUP stops every worker within STOP_GRACE (20) + 5 s. Logs: LOG_DIR (default ./logs_cpu_msrun).
set -euo pipefail
usage() { sed -n '2,/^set -e/p' "$0" | grep "^#" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage;; esac
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib/launch.sh"
CONFIG=$1; shift
WORKERS=2
if [ $# -ge 1 ] && [ "$1" != "--" ]; then WORKERS=$1; shift; fi
[ "${1:-}" = "--" ] && shift
[ -f "$CONFIG" ] || { echo "error: config not found: $CONFIG" >&2; usage; }
[[ "$WORKERS" =~ ^[0-9]+$ ]] && [ "$WORKERS" -ge 1 ] || { echo "error: WORKERS must be a positive number" >&2; usage; }
RES=$(resume_choice) || exit 2
CONFIG=$(realpath "$CONFIG")
LOG_DIR=$(realpath -m "${LOG_DIR:-logs_cpu_msrun}")
PY=$(pick_python "$ROOT")
cmd=(msrun --worker_num="$WORKERS" --local_worker_num="$WORKERS" --master_addr=127.0.0.1
     --master_port="${MASTER_PORT:-8129}" --log_dir="$LOG_DIR" --join=True
     "$ROOT/train.py" --config "$CONFIG" --resume "$RES" --opts train.distributed true device.target CPU "$@")
run_msrun "$PY" "$LOG_DIR" "${cmd[@]}"
