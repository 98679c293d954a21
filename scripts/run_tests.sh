#!/usr/bin/env bash
# Set up .venv if needed and run the test suite on CPU.  Extra arguments go to pytest.
# Usage: bash scripts/run_tests.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export GLOG_v="${GLOG_v:-3}"
exec .venv/bin/python -m pytest -q "$@" tests
