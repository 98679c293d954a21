#!/usr/bin/env bash
# Try the GPU fallback against the CPU: the same short training from one seed on one synthetic set on both, the
# CPU run's checkpoint evaluated on both, losses and logits compared. Writes OUT_DIR/result.json and prints it.
# Usage: bash scripts/check_gpu.sh [OUT_DIR=outputs/gpu_check] [-- overrides]
#   First: bash scripts/setup_gpu.sh. TARGET=GPU (default; TARGET=CPU checks the script itself), STEPS=20.
#   OUT_DIR must not exist yet (nothing is overwritten). Each run's log is in OUT_DIR/<name>.log.
#   Exit status: 0 the target agrees with the CPU, 1 it does not, 2 a run failed (the log says why, e.g. a GPU
#   newer than the CUDA 11 kernels of the plugin).
set -euo pipefail
usage() { sed -n '2,/^set -e/p' "$0" | grep "^#" | sed 's/^# \{0,1\}//'; exit 2; }
case "${1:-}" in -h|--help) usage;; esac
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib/launch.sh"
OUT=outputs/gpu_check
if [ $# -ge 1 ] && [ "$1" != "--" ]; then OUT=$1; shift; fi
[ "${1:-}" = "--" ] && shift
OUT=$(realpath -m "$OUT")
[ -e "$OUT" ] && { echo "error: $OUT exists; choose a new OUT_DIR (nothing is overwritten)" >&2; exit 2; }
TARGET=${TARGET:-GPU}; STEPS=${STEPS:-20}
[[ "$STEPS" =~ ^[0-9]+$ ]] && [ "$STEPS" -ge 1 ] || { echo "error: STEPS must be a positive number" >&2; exit 2; }
PY=$(pick_python "$ROOT")   # no change of folder: relative paths in overrides are the caller's
[ -f "$ROOT/.venv/gpu_env.sh" ] && . "$ROOT/.venv/gpu_env.sh"
CFG=$ROOT/config/demo_synthetic.yaml
if [ "$TARGET" != CPU ]; then  # before any training: is the target usable at all?
  (cd "$ROOT" && "$PY" -c "import sys; from src.system.device import available_targets; sys.exit(0 if sys.argv[1] in available_targets() else 1)" \
    "$TARGET") 2>/dev/null || { echo "error: MindSpore finds no usable $TARGET here (driver, CUDA libraries:" \
    "bash scripts/setup_gpu.sh, then . .venv/gpu_env.sh); nothing was run" >&2; exit 2; }
fi
mkdir -p "$OUT"
run() { local name=$1; shift; echo "==> $name" >&2
  "$@" > "$OUT/$name.log" 2>&1 || { echo "error: $name failed (exit $?); see $OUT/$name.log:" >&2; tail -n 5 "$OUT/$name.log" >&2; exit 2; }; }
run data "$PY" "$ROOT" synthetic --out "$OUT/data" --task shapes --num 40 --size 128 --seed 0
common=(data.data_root "$OUT/data" train.max_steps "$STEPS" train.epochs 1 train.eval_interval 0 train.log_every 1
        train.warmup_steps 0 model.dropout 0.0 "$@")
for role in ref target; do
  T=CPU; [ $role = target ] && T=$TARGET
  run "train_$role" "$PY" "$ROOT/train.py" --config "$CFG" --resume none --opts device.target "$T" \
    train.save_dir "$OUT/train_$role" "${common[@]}"
done
ref=$OUT/train_ref; tgt=$OUT/train_target
run logits_ref "$PY" "$ROOT" target-check logits --config "$CFG" --run "$ref" --target CPU --out "$OUT/logits_cpu.npy" --opts "${common[@]}"
run logits_target "$PY" "$ROOT" target-check logits --config "$CFG" --run "$ref" --target "$TARGET" --out "$OUT/logits_target.npy" --opts "${common[@]}"
rc=0
"$PY" "$ROOT" target-check compare --ref-run "$ref" --run "$tgt" --ref-logits "$OUT/logits_cpu.npy" \
  --logits "$OUT/logits_target.npy" --target "$TARGET" --out "$OUT/result.json" || rc=$?
echo "result: $OUT/result.json ($([ $rc = 0 ] && echo "$TARGET agrees with CPU" || echo "$TARGET DIFFERS from CPU"))" >&2
exit $rc
