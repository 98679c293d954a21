#!/usr/bin/env bash
# Build the Ascend 310 runner against MindSpore Lite.
# Usage: LITE_HOME=/path/to/mindspore-lite-<version>-linux-<arch> bash inference/ascend310/build.sh
#        bash inference/ascend310/build.sh --check INCLUDE_ROOT   (compile without linking: INCLUDE_ROOT
#        holds include/api/model.h, e.g. $LITE_HOME/runtime; no Lite library needed)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ "${1:-}" = "--check" ]; then
  root="${2:-${LITE_HOME:+$LITE_HOME/runtime}}"
  if [ -z "$root" ] || [ ! -f "$root/include/api/model.h" ]; then
    echo "error: --check needs a folder holding include/api/model.h (got '${root}')" >&2
    exit 2
  fi
  "${CXX:-g++}" -std=c++17 -Wall -Wextra -Werror -isystem "$root" -isystem "$root/include" \
    -c "$here/src/main.cc" -o /dev/null
  echo "compiled $here/src/main.cc against $root/include/api (not linked)"
  exit 0
fi
if [ -z "${LITE_HOME:-}" ] || [ ! -f "$LITE_HOME/runtime/include/api/model.h" ]; then
  echo "error: set LITE_HOME to the unpacked MindSpore Lite package (holding runtime/include/api/model.h)" >&2
  exit 1
fi
cmake -S "$here" -B "$here/build" -DLITE_HOME="$LITE_HOME"
cmake --build "$here/build" -j"$(nproc)"
echo "built $here/build/pspnet_310"
