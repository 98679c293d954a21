#!/usr/bin/env bash
# Prepare the GPU fallback: the CUDA 11 libraries MindSpore 2.10's GPU plugin needs (requirements-gpu.txt) go
# into .venv as nvidia-*-cu11 wheels, and .venv/gpu_env.sh puts them on LD_LIBRARY_PATH.
# Usage: bash scripts/setup_gpu.sh      then: . .venv/gpu_env.sh  (scripts/check_gpu.sh sources it itself)
# The NVIDIA driver (libcuda.so.1) comes from the host; without it MindSpore finds no GPU. GPU support is
# untested by this project unless README says otherwise: run bash scripts/check_gpu.sh and read its result.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -e/p' "$0" | grep "^#" | sed 's/^# \{0,1\}//'; exit 0;; esac
cd "$(dirname "$0")/.."
# The driver first: without it the ~2 GB of CUDA wheels would be downloaded for nothing. (grep reads all of
# ldconfig's output: grep -q under pipefail could fail the pipeline on a SIGPIPE.)
if ! ldconfig -p 2>/dev/null | grep 'libcuda.so.1' > /dev/null; then
  echo "error: libcuda.so.1 (the NVIDIA driver) is not on this host's library path, so MindSpore would find no GPU;" \
       "install the driver first (nothing was downloaded). ALLOW_NO_DRIVER=1 installs the libraries anyway" >&2
  [ -n "${ALLOW_NO_DRIVER:-}" ] || exit 1
fi
bash scripts/setup_env.sh
echo "installing the CUDA 11 libraries (nvidia-*-cu11 wheels, about 2 GB) into .venv ..."
.venv/bin/python -m pip install --quiet -r requirements-gpu.txt
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
dirs=$( (ls -d "$site"/nvidia/*/lib 2>/dev/null || true) | tr '\n' ':' | sed 's/:$//')
[ -n "$dirs" ] || { echo "error: no nvidia/*/lib folders under $site after the install" >&2; exit 1; }
printf '# written by scripts/setup_gpu.sh: the CUDA 11 wheels of .venv on the library path\nexport LD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"\n' "$dirs" > .venv/gpu_env.sh
missing=""
for lib in libcudart.so.11.0 libcublas.so.11 libcudnn.so.8 libcufft.so.10 libcurand.so.10 libcusolver.so.11 \
           libcusparse.so.11 libnvrtc.so.11.2; do
  ls "$site"/nvidia/*/lib/$lib >/dev/null 2>&1 || missing="$missing $lib"
done
[ -z "$missing" ] || { echo "error: still missing after the install:$missing" >&2; exit 1; }
echo "CUDA 11 libraries in .venv; . .venv/gpu_env.sh sets LD_LIBRARY_PATH (check: bash scripts/check_gpu.sh)"
