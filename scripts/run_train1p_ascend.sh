#!/usr/bin/env bash
# The model zoo's name for one-device training: bash scripts/run_train1p_ascend.sh YAML DEVICE_ID
# Runs scripts/run_standalone_train.sh YAML DEVICE_ID (YAML: this project's config, or the zoo's / semseg's).
set -euo pipefail
exec bash "$(dirname "$0")/run_standalone_train.sh" "$@"
