#!/usr/bin/env bash
# Set up .venv if needed and run the test suite on CPU.  Extra arguments go to pytest.
# Usage: bash scripts/run_tests.sh [pytest args]
# Each test file runs in its own pytest process: MindSpore keeps compiled graphs and weights of every
# PSPNet-50 built in a process, and one process for the whole suite can exhaust 24 GB.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -e/p' "$0" | grep "^#" | sed 's/^# \{0,1\}//'; exit 0;; esac
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export GLOG_v="${GLOG_v:-3}"
report=$(mktemp -d)
status=0
for file in tests/test_*.py; do
  name=$(basename "$file" .py)
  .venv/bin/python -m pytest -q "$@" --junitxml="$report/$name.xml" "$file" || status=1
done
.venv/bin/python - "$report" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
t = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for path in glob.glob(sys.argv[1] + "/*.xml"):
    root = ET.parse(path).getroot()
    for suite in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
        for k in t:
            t[k] += int(suite.get(k, 0))
failed = t["failures"] + t["errors"]
passed = t["tests"] - failed - t["skipped"]
print(f"total: {passed} passed, {failed} failed, {t['skipped']} skipped")
PY
rm -rf "$report"
exit $status
