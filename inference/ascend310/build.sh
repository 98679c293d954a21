#!/usr/bin/env bash
# Build the Ascend 310 runner.  Usage: MINDSPORE_PATH=/path/to/mindspore-inference bash build.sh
set -euo pipefail
cd "$(dirname "$0")"
if [ -z "${MINDSPORE_PATH:-}" ]; then
  MINDSPORE_PATH=$(python3 -c "import mindspore, os; print(os.path.dirname(mindspore.__file__))" 2>/dev/null || true)
fi
if [ -z "${MINDSPORE_PATH:-}" ] || [ ! -d "$MINDSPORE_PATH/include" ]; then
  echo "error: MINDSPORE_PATH must point at a MindSpore inference package with include/ and lib/" >&2
  exit 1
fi
mkdir -p build
cmake -S . -B build -DMINDSPORE_PATH="$MINDSPORE_PATH"
cmake --build build -j"$(nproc)"
echo "built $(pwd)/build/pspnet_310"
