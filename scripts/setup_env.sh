#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv with the pinned requirements.
# Usage: bash scripts/setup_env.sh            (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -e/p' "$0" | grep "^#" | sed 's/^# \{0,1\}//'; exit 0;; esac
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "error: $PY not found; install Python 3.10-3.12 or set PYTHON=/path/to/python" >&2
  exit 1
fi
ver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case "$ver" in
  3.10|3.11|3.12) ;;
  3.9) echo "error: Python 3.9: mindspore 2.10.0 (pinned here) has no 3.9 wheel; the last MindSpore for 3.9 is 2.9.0. Use Python 3.10-3.12 (PYTHON=python3.11 bash scripts/setup_env.sh)" >&2; exit 1;;
  *) echo "error: Python $ver: mindspore 2.10.0 has wheels for Python 3.10-3.12 only; set PYTHON=/path/to/python3.11" >&2; exit 1;;
esac
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setting up .venv (MindSpore 2.10, numpy<2, opencv, onnx, onnxruntime, pytest) ..."
"$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements-dev.txt
echo "$want" > "$stamp"
echo ".venv ready"
