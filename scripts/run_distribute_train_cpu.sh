#!/usr/bin/env bash
# Data-parallel training on this machine's CPU with msrun (MindSpore's TCP collectives) - to test the
# distributed path without accelerators.
# Usage: bash scripts/run_distribute_train_cpu.sh CONFIG [WORKERS=2] [-- overrides]
#   Paths are taken relative to the folder you call it from; DRY_RUN=1 prints the command instead.
set -euo pipefail
run() { if [ -n "${DRY_RUN:-}" ]; then printf '%q ' "$@"; echo; else exec "$@"; fi; }  # DRY_RUN=1 prints the command

usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
CONFIG=$1; shift
WORKERS=2
if [ $# -ge 1 ] && [ "$1" != "--" ]; then WORKERS=$1; shift; fi
[ "${1:-}" = "--" ] && shift
[ -f "$CONFIG" ] || { echo "error: config not found: $CONFIG" >&2; usage; }
[[ "$WORKERS" =~ ^[0-9]+$ ]] && [ "$WORKERS" -ge 1 ] || { echo "error: WORKERS must be a positive number" >&2; usage; }
CONFIG=$(realpath "$CONFIG")   # before changing to the repository root
cd "$(dirname "$0")/.."
PY=python3; [ -x .venv/bin/python ] && PY=.venv/bin/python
export PATH="$(dirname "$(realpath "$PY")"):$PATH"
run msrun --worker_num="$WORKERS" --local_worker_num="$WORKERS" --master_addr=127.0.0.1 \
  --master_port="${MASTER_PORT:-8129}" --log_dir="${LOG_DIR:-logs_cpu_msrun}" --join=True \
  train.py --config "$CONFIG" --opts train.distributed true device.target CPU "$@"
