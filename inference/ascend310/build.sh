#!/usr/bin/env bash
# Build the Ascend 310 runner against MindSpore Lite.
# Usage: LITE_HOME=/path/to/mindspore-lite-<version>-linux-<arch> bash inference/ascend310/build.sh [BUILD_DIR]
#        bash inference/ascend310/build.sh --check INCLUDE_ROOT   (compile without linking: INCLUDE_ROOT
#        holds include/api/model.h, e.g. $LITE_HOME/runtime; no Lite library needed)
# The Lite package's runtime/lib and runtime/third_party/* libraries are found for the link and put on the
# app's run path (and on LD_LIBRARY_PATH by scripts/run_infer_310.sh). Needs CMake >= 3.18 and a C++17 compiler.
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
. "$here/lite_env.sh"
lite_env || exit 1
build="${1:-$here/build}"
command -v cmake >/dev/null || { echo "error: cmake (>= 3.18) not found" >&2; exit 1; }
cmake -S "$here" -B "$build" -DLITE_HOME="$LITE_HOME" >/dev/null
cmake --build "$build" -j"$(nproc)"
echo "built $build/pspnet_310"
