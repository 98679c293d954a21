#!/usr/bin/env bash
# Data-parallel training with MindSpore's msrun (HCCL on Ascend), on one or several nodes.
# Usage: bash scripts/run_distribute_train.sh CONFIG DEVICES_PER_NODE [NODES NODE_RANK MASTER_ADDR [MASTER_PORT]] [-- overrides]
#        bash scripts/run_distribute_train.sh --rank-table RANK_TABLE.json CONFIG DEVICES [RANK_START] [-- overrides]
#   One node with 8 devices:  bash scripts/run_distribute_train.sh config/voc2012_pspnet50.yaml 8
#   Two nodes, this is rank 1: bash scripts/run_distribute_train.sh config/voc2012_pspnet50.yaml 8 2 1 10.0.0.1
#   Rank table, second node of two with 8 devices each: ... --rank-table hccl_16p.json CONFIG 8 8
# Paths are relative to the folder you call it from. train.save_dir must be on a file system every node
# shares for --resume auto to continue all ranks from the same checkpoint. HCCL_CONNECT_TIMEOUT defaults
# to 600 s unless set. Logs go to LOG_DIR (default ./logs_distributed). DRY_RUN=1 prints the commands.
set -euo pipefail
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
is_num() { [[ "$1" =~ ^[0-9]+$ ]]; }
run() { if [ -n "${DRY_RUN:-}" ]; then printf '%q ' "$@"; echo; else exec "$@"; fi; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY=python3; [ -x "$ROOT/.venv/bin/python" ] && PY="$ROOT/.venv/bin/python"
LOG_DIR=$(realpath -m "${LOG_DIR:-logs_distributed}")
export HCCL_CONNECT_TIMEOUT=${HCCL_CONNECT_TIMEOUT:-600}

if [ "${1:-}" = "--rank-table" ]; then
  [ $# -ge 4 ] || usage
  RANK_TABLE=$2; CONFIG=$3; DEVICES=$4; shift 4
  RANK_START=0
  if [ $# -ge 1 ] && [ "$1" != "--" ]; then RANK_START=$1; shift; fi
  [ "${1:-}" = "--" ] && shift
  [ -f "$RANK_TABLE" ] || { echo "error: rank table not found: $RANK_TABLE" >&2; exit 2; }
  [ -f "$CONFIG" ] || { echo "error: config not found: $CONFIG" >&2; exit 2; }
  is_num "$DEVICES" && [ "$DEVICES" -ge 1 ] || { echo "error: DEVICES must be a positive number" >&2; usage; }
  is_num "$RANK_START" || { echo "error: RANK_START must be a number, got '$RANK_START'" >&2; usage; }
  RANK_TABLE=$(realpath "$RANK_TABLE"); CONFIG=$(realpath "$CONFIG")
  TOTAL=$("$PY" -c 'import json, sys
t = json.load(open(sys.argv[1]))
print(sum(len(s.get("device", [])) for s in t.get("server_list", [])))' "$RANK_TABLE") \
    || { echo "error: cannot read the device list of rank table $RANK_TABLE" >&2; exit 2; }
  [ "$TOTAL" -ge $((RANK_START + DEVICES)) ] || {
    echo "error: rank table $RANK_TABLE lists $TOTAL devices; ranks $RANK_START..$((RANK_START + DEVICES - 1)) do not fit" >&2; exit 2; }
  export RANK_TABLE_FILE=$RANK_TABLE RANK_SIZE=$TOTAL
  cd "$ROOT"
  mkdir -p "$LOG_DIR"
  for ((i = 0; i < DEVICES; i++)); do
    rank=$((RANK_START + i))
    if [ -n "${DRY_RUN:-}" ]; then
      echo "DEVICE_ID=$i RANK_ID=$rank RANK_SIZE=$TOTAL $PY train.py --config $CONFIG --resume auto --opts train.distributed true $*"
      continue
    fi
    DEVICE_ID=$i RANK_ID=$rank "$PY" train.py --config "$CONFIG" --resume auto --opts train.distributed true "$@" \
      > "$LOG_DIR/rank_$rank.log" 2>&1 &
  done
  [ -n "${DRY_RUN:-}" ] && exit 0
  echo "started ranks $RANK_START..$((RANK_START + DEVICES - 1)) of $TOTAL; logs in $LOG_DIR/rank_*.log"
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
CONFIG=$(realpath "$CONFIG")
cd "$ROOT"
export PATH="$(dirname "$(realpath "$PY")"):$PATH"   # msrun starts workers with the python on PATH
run msrun --worker_num=$((PER_NODE * NODES)) --local_worker_num="$PER_NODE" --node_rank="$NODE_RANK" \
  --master_addr="$MASTER" --master_port="$PORT" --log_dir="$LOG_DIR" --join=True \
  train.py --config "$CONFIG" --resume auto --opts train.distributed true "$@"
