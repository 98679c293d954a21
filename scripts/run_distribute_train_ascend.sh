#!/usr/bin/env bash
# The model zoo's name for 8-device training: bash scripts/run_distribute_train_ascend.sh RANK_TABLE YAML
# Runs scripts/run_distribute_train.sh --rank-table RANK_TABLE YAML (each rank stopped with the launcher).
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
exec bash "$(dirname "$0")/run_distribute_train.sh" --rank-table "$@"
