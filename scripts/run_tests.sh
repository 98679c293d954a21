#!/usr/bin/env bash
# Set up .venv if needed and run the test suite on CPU, in one pytest process.  Extra arguments go to pytest.
# Usage: bash scripts/run_tests.sh [pytest args]
# Tests build tiny networks (tests/helpers.py: one bottleneck per stage, 1/16 of the channels), so one
# process holds the whole suite; the same as `.venv/bin/python -m pytest` from the repository folder.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -e/p' "$0" | grep "^#" | sed 's/^# \{0,1\}//'; exit 0;; esac
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export GLOG_v="${GLOG_v:-3}"
exec .venv/bin/python -m pytest -q "$@"
