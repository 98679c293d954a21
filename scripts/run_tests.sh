#!/usr/bin/env bash
# Set up .venv if needed and run the test suite on CPU.  Extra arguments go to pytest.
# Usage: bash scripts/run_tests.sh [pytest args]      e.g. -m "not slow" (the inner loop), -n 0 (one process)
# Tests build tiny networks (tests/helpers.py: one bottleneck per stage, 1/16 of the channels) and write only
# under their own temporary folders, so they run in as many pytest-xdist workers as the machine has cores (at
# most 4: each worker holds MindSpore, ~1 GB); the same as `.venv/bin/python -m pytest -n N` from the repository.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -e/p' "$0" | grep "^#" | sed 's/^# \{0,1\}//'; exit 0;; esac
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export GLOG_v="${GLOG_v:-3}"
workers=$(nproc 2>/dev/null || echo 2)
[ "$workers" -gt 4 ] && workers=4
exec .venv/bin/python -m pytest -q -n "$workers" --dist worksteal "$@"
