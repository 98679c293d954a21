#!/usr/bin/env bash
# Data-parallel training with MindSpore's msrun (HCCL on Ascend), on one or several nodes.
# Usage: bash scripts/run_distribute_train.sh CONFIG DEVICES_PER_NODE [NODES NODE_RANK MASTER_ADDR [MASTER_PORT]] [-- overrides]
#        bash scripts/run_distribute_train.sh --rank-table RANK_TABLE.json CONFIG [SERVER] [-- overrides]
#        bash scripts/run_distribute_train.sh RANK_TABLE.json YAML       (the model zoo's order, same launch)
#   One node with 8 devices:  bash scripts/run_distribute_train.sh config/voc2012_pspnet50.yaml 8
#   Two nodes, this is rank 1: bash scripts/run_distribute_train.sh config/voc2012_pspnet50.yaml 8 2 1 10.0.0.1
#   Rank table (classic HCCL launch): this host's server_list entry gives each process its DEVICE_ID and
#   RANK_ID. SERVER is the entry's index or server_id; by default the entry whose server_id is an address of
#   this host. A table whose rank_ids are not 0..N-1, or with no entry for this host, is refused.
# RESUME=auto (default) continues from the newest checkpoint in train.save_dir (a finished run says "nothing
#   left to train"); RESUME=none starts fresh; RESUME=PATH continues from that checkpoint.
# Exit status: the worst rank's (under msrun, msrun's: non-zero when any worker failed). When one rank fails the
#   others are stopped; Ctrl-C / TERM / HUP stops every rank and its children within STOP_GRACE (20) + 5 s. Logs: LOG_DIR (default ./logs_distributed), a file per rank.
# Paths are relative to the folder you call it from. train.save_dir must be on a file system every node
# shares for RESUME=auto to continue all ranks from the same checkpoint. HCCL_CONNECT_TIMEOUT defaults
# to 600 s unless set. DRY_RUN=1 prints the commands; PYTHON=... chooses the interpreter.
set -euo pipefail
usage() { sed -n '2,/^set -e/p' "$0" | grep "^#" | sed 's/^# \{0,1\}//'; exit 2; }
case "${1:-}" in -h|--help|"") usage;; esac
is_num() { [[ "$1" =~ ^[0-9]+$ ]]; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib/launch.sh"
PY=$(pick_python "$ROOT")
LOG_DIR=$(realpath -m "${LOG_DIR:-logs_distributed}")
export HCCL_CONNECT_TIMEOUT=${HCCL_CONNECT_TIMEOUT:-600}
RES=$(resume_choice) || exit 2

if [ "${1:-}" != "--rank-table" ] && [[ "${1:-}" == *.json ]] && [ $# -ge 2 ]; then
  set -- --rank-table "$@"  # the model zoo's order: RANK_TABLE YAML
fi
if [ "${1:-}" = "--rank-table" ]; then
  [ $# -ge 3 ] || usage
  RANK_TABLE=$2; CONFIG=$3; shift 3
  SERVER=""
  if [ $# -ge 1 ] && [ "$1" != "--" ]; then SERVER=$1; shift; fi
  [ "${1:-}" = "--" ] && shift
  [ -f "$RANK_TABLE" ] || { echo "error: rank table not found: $RANK_TABLE" >&2; exit 2; }
  [ -f "$CONFIG" ] || { echo "error: config not found: $CONFIG" >&2; exit 2; }
  RANK_TABLE=$(realpath "$RANK_TABLE"); CONFIG=$(realpath "$CONFIG")
  plan=$("$PY" "$ROOT" rank-table "$RANK_TABLE" $SERVER) || exit 2
  TOTAL=$(echo "$plan" | sed -n '1s/^RANK_SIZE //p')
  echo "$plan" | sed -n '2s/^SERVER \([0-9]*\) \(.*\)/rank table: this host is server_list[\1] (\2)/p' >&2
  export RANK_TABLE_FILE=$RANK_TABLE RANK_SIZE=$TOTAL
  [ -n "${DRY_RUN:-}" ] || { mkdir -p "$LOG_DIR"; rank_registry "$PY"; }
  ranks=()
  while read -r dev rank; do
    ranks+=("$rank")
    cmd=("$PY" "$ROOT/train.py" --config "$CONFIG" --resume "$RES" --opts train.distributed true "$@")
    if [ -n "${DRY_RUN:-}" ]; then
      echo "DEVICE_ID=$dev RANK_ID=$rank RANK_SIZE=$TOTAL $(printf '%q ' "${cmd[@]}")"
      continue
    fi
    DEVICE_ID=$dev RANK_ID=$rank launch "rank $rank (device $dev, log $LOG_DIR/rank_$rank.log)" \
      "$LOG_DIR/rank_$rank.log" "${cmd[@]}"
  done < <(echo "$plan" | tail -n +3)
  [ -n "${DRY_RUN:-}" ] && exit 0
  echo "started ranks ${ranks[*]} of $TOTAL; logs in $LOG_DIR/rank_*.log" >&2
  rc=0; wait_all || rc=$?
  [ $rc -eq 0 ] && echo "all ranks finished; logs in $LOG_DIR" >&2
  exit $rc
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
cmd=(msrun --worker_num=$((PER_NODE * NODES)) --local_worker_num="$PER_NODE" --node_rank="$NODE_RANK"
     --master_addr="$MASTER" --master_port="$PORT" --log_dir="$LOG_DIR" --join=True
     "$ROOT/train.py" --config "$CONFIG" --resume "$RES" --opts train.distributed true "$@")
run_msrun "$PY" "$LOG_DIR" "${cmd[@]}"
