#!/usr/bin/env bash
# Data-parallel training with MindSpore's msrun (HCCL on Ascend), on one or several nodes.
# Usage: bash scripts/run_distribute_train.sh CONFIG DEVICES_PER_NODE [NODES NODE_RANK MASTER_ADDR [MASTER_PORT]] [-- overrides]
#        bash scripts/run_distribute_train.sh --rank-table RANK_TABLE.json CONFIG DEVICES [-- overrides]   (classic Ascend launch)
#   One node with 8 devices:  bash scripts/run_distribute_train.sh config/voc2012_pspnet50.yaml 8
#   Two nodes, this is rank 1: bash scripts/run_distribute_train.sh config/voc2012_pspnet50.yaml 8 2 1 10.0.0.1
# Logs go to LOG_DIR (default ./logs_distributed).
set -euo pipefail
usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
is_num() { [[ "$1" =~ ^[0-9]+$ ]]; }
cd "$(dirname "$0")/.."
PY=python3; [ -x .venv/bin/python ] && PY=.venv/bin/python
LOG_DIR=${LOG_DIR:-logs_distributed}

if [ "${1:-}" = "--rank-table" ]; then
  [ $# -ge 4 ] || usage
  RANK_TABLE=$(realpath "$2"); CONFIG=$3; DEVICES=$4; shift 4
  [ "${1:-}" = "--" ] && shift
  [ -f "$RANK_TABLE" ] || { echo "error: rank table not found: $RANK_TABLE" >&2; exit 2; }
  [ -f "$CONFIG" ] || { echo "error: config not found: $CONFIG" >&2; exit 2; }
  is_num "$DEVICES" && [ "$DEVICES" -ge 1 ] || { echo "error: DEVICES must be a positive number" >&2; usage; }
  export RANK_TABLE_FILE=$RANK_TABLE RANK_SIZE=$DEVICES
  mkdir -p "$LOG_DIR"
  for ((i = 0; i < DEVICES; i++)); do
    DEVICE_ID=$i RANK_ID=$i "$PY" train.py --config "$CONFIG" --resume auto --opts train.distributed true "$@" \
      > "$LOG_DIR/rank_$i.log" 2>&1 &
  done
  echo "started $DEVICES processes; logs in $LOG_DIR/rank_*.log"
  wait
  exit 0
fi

[ $# -ge 2 ] || usage
CONFIG=$1; PER_NODE=$2; shift 2
NODES=1; NODE_RANK=0; MASTER=127.0.0.1; PORT=8118
if [ $# -ge 3 ] && [ "$1" != "--" ]; then NODES=$1; NODE_RANK=$2; MASTER=$3; shift 3; fi
if [ $# -ge 1 ] && [ "$1" != "--" ]; then PORT=$1; shift; fi
[ "${1:-}" = "--" ] && shift
[ -f "$CONFIG" ] || { echo "error: config not found: $CONFIG" >&2; exit 2; }
for v in PER_NODE NODES NODE_RANK PORT; do is_num "${!v}" || { echo "error: $v must be a number, got '${!v}'" >&2; usage; }; done
[ "$PER_NODE" -ge 1 ] && [ "$NODES" -ge 1 ] && [ "$NODE_RANK" -lt "$NODES" ] || { echo "error: need DEVICES>=1, NODES>=1, NODE_RANK<NODES" >&2; usage; }
export PATH="$(dirname "$(realpath "$PY")"):$PATH"   # msrun starts workers with the python on PATH
exec msrun --worker_num=$((PER_NODE * NODES)) --local_worker_num="$PER_NODE" --node_rank="$NODE_RANK" \
  --master_addr="$MASTER" --master_port="$PORT" --log_dir="$LOG_DIR" --join=True \
  train.py --config "$CONFIG" --resume auto --opts train.distributed true "$@"
