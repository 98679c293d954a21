# Shared by the launchers (sourced, not run): the Python to use, the resume choice, and running ranks so
# that the launcher's exit status is the worst rank's and INT/TERM/HUP, or the launcher's death however it
# dies, stop every rank (and its children).

# PSPNET_PID_DIR and PSPNET_LAUNCHER belong to a running launcher (rank_registry sets them for its ranks): one
# left in the environment (an export copied from a rank's shell) is refused, never used.
for _var in PSPNET_PID_DIR PSPNET_LAUNCHER; do
  if [ -n "${!_var:-}" ]; then
    echo "error: $_var=$(printf '%q' "${!_var}") is set in the environment; it belongs to a running launcher, which makes a private folder for each launch: unset $_var" >&2
    exit 2
  fi
done
unset _var

# pick_python ROOT: $PYTHON if set, else ROOT/.venv/bin/python, else python3.
pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"
  elif [ -x "$1/.venv/bin/python" ]; then echo "$1/.venv/bin/python"
  else echo python3; fi
}

# resume_choice: $RESUME (auto | none | a checkpoint path; default auto), checked, printed on stderr.
resume_choice() {
  local r=${RESUME:-auto}
  case "$r" in
    auto) echo "resume: auto (continue from the newest checkpoint in train.save_dir, if any; RESUME=none starts fresh)" >&2;;
    none) echo "resume: none (fresh start; RESUME=auto continues from the newest checkpoint)" >&2;;
    *) [ -f "$r" ] || { echo "error: RESUME=$r: not auto, none or an existing checkpoint file" >&2; return 2; }
       r=$(realpath "$r"); echo "resume: from $r" >&2;;
  esac
  echo "$r"
}

LAUNCH_PIDS=()
LAUNCH_NAMES=()
GUARD_PID=
STOP_GRACE=${STOP_GRACE:-20}
# The launcher's guard (python ROOT launch-guard, src/system/launch.py) makes the launcher's private registry folder
# (PSPNET_PID_DIR, in TMPDIR), follows every process the launcher starts and their descendants by parent pid in
# /proc (msrun's workers too, each in a session of its own), and stops them all when the launcher's INT/TERM/HUP
# trap asks (stop_all) or the launcher is gone however it died (kill -9, an untrapped signal); it then removes
# the folder. Each rank also registers in that folder (src.cli.bind_to_launcher: a file named by its pid
# holding its start time), dies with its parent (PR_SET_PDEATHSIG) and stops itself when the launcher named by
# PSPNET_LAUNCHER (pid and start time) is gone.
# rank_registry PY: start the guard and export its folder; supervising launchers call it before any launch.
rank_registry() {
  local rc=0
  exec {GUARD_FD}< <(exec "$1" "$ROOT" launch-guard "$$" --grace "$STOP_GRACE")
  GUARD_PID=$!
  if read -r -t 120 -u "$GUARD_FD" PSPNET_PID_DIR && read -r -t 5 -u "$GUARD_FD" PSPNET_LAUNCHER \
      && [ -d "$PSPNET_PID_DIR" ]; then
    exec {GUARD_FD}<&-
    export PSPNET_PID_DIR PSPNET_LAUNCHER
    trap 'rm -rf "$PSPNET_PID_DIR"' EXIT
    return 0
  fi
  exec {GUARD_FD}<&-
  kill -TERM "$GUARD_PID" 2>/dev/null || true
  wait "$GUARD_PID" || rc=$?
  GUARD_PID=
  [ "$rc" = 2 ] || echo "error: the launcher's guard ($1 $ROOT launch-guard) did not start (status $rc)" >&2
  exit 2  # status 2: its own one-line error is above
}

# running PID: true while PID is a process that has not ended (a zombie waiting for its parent has).
running() {
  local s
  { read -r s < "/proc/$1/stat"; } 2>/dev/null || return 1
  s=${s##*) }
  [ "${s:0:1}" != Z ]
}

# stop_guarded: ask the guard to stop everything it follows (TERM, KILL after STOP_GRACE) and wait for it.
stop_guarded() {
  local t
  [ -n "$GUARD_PID" ] || return 0
  kill -TERM "$GUARD_PID" 2>/dev/null || true
  for ((t = 0; t < (STOP_GRACE + 8) * 10; t++)); do running "$GUARD_PID" || break; sleep 0.1; done
  GUARD_PID=
}

# launch NAME LOG CMD...: start CMD in its own process group (setsid), output to LOG; remembered for wait_all.
# In a script (no job control) the background child is not a group leader, so setsid does not fork: $! is the
# command's own pid and the id of its new process group.
launch() {
  local name=$1 log=$2; shift 2
  if [ "$log" = "-" ]; then setsid "$@" & else setsid "$@" > "$log" 2>&1 & fi
  LAUNCH_PIDS+=($!)
  LAUNCH_NAMES+=("$name")
}

# registered_ranks: the pids in PSPNET_PID_DIR that are still the process that registered (same start time).
registered_ranks() {
  local f pid want have
  [ -n "${PSPNET_PID_DIR:-}" ] || return 0
  for f in "$PSPNET_PID_DIR"/*; do
    [ -f "$f" ] || continue
    pid=${f##*/}
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    want=$(head -c 64 "$f" 2>/dev/null | tr -dc '0-9')
    have=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f20)
    [ -n "$want" ] && [ "$want" = "$have" ] && echo "$pid"
  done
}

# signal_all SIGNAL: every launched process group and every registered rank (its group and itself).
signal_all() {
  local pid
  for pid in "${LAUNCH_PIDS[@]}" $(registered_ranks); do
    kill -"$1" -- "-$pid" 2>/dev/null || true
    kill -"$1" "$pid" 2>/dev/null || true
  done
}

# stop_all REASON: TERM every launched process group and every registered rank, KILL what is left after
# STOP_GRACE seconds.
stop_all() {
  local pid t
  echo "$1: stopping ${#LAUNCH_PIDS[@]} process(es) and their ranks ..." >&2
  stop_guarded
  signal_all TERM
  for ((t = 0; t < STOP_GRACE * 10; t++)); do
    local alive=0
    for pid in "${LAUNCH_PIDS[@]}" $(registered_ranks); do running "$pid" && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  signal_all KILL
  wait 2>/dev/null || true
}

# wait_all: wait for every launched process; when one fails the others are stopped (they would wait for it in
# their collectives until the time-out); prints each failure; returns the worst (highest) exit status.
wait_all() {
  trap 'stop_all INT; exit 130' INT
  trap 'stop_all TERM; exit 143' TERM
  trap 'stop_all HUP; exit 129' HUP
  local worst=0 i rc left=("${!LAUNCH_PIDS[@]}") next
  while [ ${#left[@]} -gt 0 ]; do
    next=()
    for i in "${left[@]}"; do
      if kill -0 "${LAUNCH_PIDS[$i]}" 2>/dev/null; then next+=("$i"); continue; fi
      rc=0
      wait "${LAUNCH_PIDS[$i]}" || rc=$?
      if [ "$rc" -ne 0 ]; then
        echo "error: ${LAUNCH_NAMES[$i]} exited with status $rc" >&2
        [ "$rc" -gt "$worst" ] && worst=$rc
      fi
    done
    left=("${next[@]+"${next[@]}"}")
    if [ "$worst" -ne 0 ] && [ ${#left[@]} -gt 0 ]; then
      stop_all "a process failed"
      for i in "${left[@]}"; do  # one that ended on its own before the TERM arrived keeps its own status
        rc=0
        wait "${LAUNCH_PIDS[$i]}" 2>/dev/null || rc=$?
        if [ "$rc" -ne 0 ] && [ "$rc" -ne 143 ] && [ "$rc" -ne 137 ] && [ "$rc" -ne 127 ]; then
          echo "error: ${LAUNCH_NAMES[$i]} exited with status $rc" >&2
          [ "$rc" -gt "$worst" ] && worst=$rc
        else
          echo "error: ${LAUNCH_NAMES[$i]} stopped because another one failed" >&2
        fi
      done
      break
    fi
    [ ${#left[@]} -gt 0 ] && sleep 0.3
  done
  trap - INT TERM HUP
  return "$worst"
}

# run_msrun PY LOG_DIR msrun ARGS...: msrun with PY first on PATH (msrun starts its workers with the python on
# PATH); DRY_RUN=1 prints the command. Exits with msrun's status (non-zero when any worker failed).
run_msrun() {
  local py=$1 log_dir=$2; shift 2
  if [ -n "${DRY_RUN:-}" ]; then printf '%q ' "$@"; echo; exit 0; fi
  export PATH="$(dirname "$(command -v "$py")"):$PATH"
  command -v msrun >/dev/null || { echo "error: msrun not found on PATH (it comes with MindSpore: bash scripts/setup_env.sh)" >&2; exit 2; }
  rank_registry "$py"
  launch msrun - "$@"
  local rc=0
  wait_all || rc=$?
  echo "worker logs: $log_dir/worker_*.log" >&2
  exit $rc
}
