# Sourced by build.sh and scripts/run_infer_310.sh: checks LITE_HOME and puts MindSpore Lite's libraries on
# LD_LIBRARY_PATH as the Lite package lays them out (runtime/lib and every runtime/third_party/* folder that
# holds shared libraries, e.g. dnnl's libdnnl.so.2), the way Lite's own quick-start sets them.
lite_env() {
  if [ -z "${LITE_HOME:-}" ] || [ ! -f "$LITE_HOME/runtime/include/api/model.h" ]; then
    echo "error: set LITE_HOME to the unpacked MindSpore Lite package (mindspore-lite-<version>-linux-<arch>, holding runtime/include/api/model.h); got '${LITE_HOME:-}'" >&2
    return 2
  fi
  if ! ls "$LITE_HOME"/runtime/lib/libmindspore-lite.so* >/dev/null 2>&1; then
    echo "error: $LITE_HOME/runtime/lib has no libmindspore-lite.so: not a MindSpore Lite runtime package" >&2
    return 2
  fi
  LITE_HOME=$(cd "$LITE_HOME" && pwd)
  local dirs="$LITE_HOME/runtime/lib" d
  if [ -d "$LITE_HOME/runtime/third_party" ]; then
    while IFS= read -r d; do dirs="$dirs:$d"; done < <(find "$LITE_HOME/runtime/third_party" -name '*.so*' -printf '%h\n' | sort -u)
  fi
  export LITE_LIB_DIRS=$dirs
  export LD_LIBRARY_PATH="$dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}
