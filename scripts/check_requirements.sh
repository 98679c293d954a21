#!/usr/bin/env bash
# Prove that the pinned requirements resolve, from wheels only, for every supported Python version.
# Usage: bash scripts/check_requirements.sh [VERSION ...]     (default: 3.10 3.11 3.12; needs the package index)
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -e/p' "$0" | grep "^#" | sed 's/^# \{0,1\}//'; exit 0;; esac
cd "$(dirname "$0")/.."
PIP="${PIP:-python3 -m pip}"
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.10 3.11 3.12)
status=0
for v in "${versions[@]}"; do
  target=$(mktemp -d)
  # pip evaluates environment markers for the running interpreter, not for --python-version: resolve
  # them for version $v first (with pip's own copy of packaging), then dry-run that list.
  python3 - "$v" requirements-dev.txt > "$target/req.txt" <<'PY'
import sys
from pip._vendor.packaging.requirements import Requirement

version, path = sys.argv[1], sys.argv[2]
env = {"python_version": version, "python_full_version": version + ".0"}
def lines(p):
    for raw in open(p):
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            yield from lines(line[3:].strip())
        elif line:
            yield line
for line in lines(path):
    req = Requirement(line)
    if req.marker is None or req.marker.evaluate(env):
        print(f"{req.name}{req.specifier}")
PY
  if out=$($PIP install --dry-run --quiet --ignore-installed --only-binary=:all: --python-version "$v" \
        --target "$target/site" -r "$target/req.txt" 2>&1); then
    echo "python $v: the pinned requirements resolve"
  else
    echo "python $v: does NOT resolve:" >&2
    echo "$out" | grep -E "ERROR" | head -5 >&2
    status=1
  fi
  rm -rf "$target"
done
exit $status
