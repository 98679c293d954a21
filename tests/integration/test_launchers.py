"""The launchers, driven with stand-in executables on PATH: a ``python`` whose train.py ranks record what they
were given and fail or sleep on request, and an ``msrun`` that records its arguments and exits as told.

Nothing here runs MindSpore; the launchers' own logic (exit status, signals, rank table, resume) is what is tested.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.system.launch import RankTableError, rank_table_lines, read_rank_table, select_server

ROOT = Path(__file__).resolve().parents[2]
STANDIN_PYTHON = """#!/usr/bin/env bash
# stand-in python: train.py / eval.py record their arguments and environment, other calls run the real python
case "${1:-}" in */train.py|*/eval.py|train.py|eval.py) is_rank=1;; *) is_rank=;; esac
if [ -n "$is_rank" ]; then
  rank=${RANK_ID:-0}
  if [ -n "${CHILD_SLEEP:-}" ]; then sleep "$CHILD_SLEEP" & echo "child $! rank=$rank" >> "$STANDIN_LOG"; fi
  echo "rank $$ DEVICE_ID=${DEVICE_ID:-} RANK_ID=${RANK_ID:-} RANK_SIZE=${RANK_SIZE:-} ARGS $*" >> "$STANDIN_LOG"
  echo "cwd $$ $PWD" >> "$STANDIN_LOG"
  [ -n "${PSPNET_PID_DIR:-}" ] && echo "registry $$ $PSPNET_PID_DIR $(stat -c %a "$PSPNET_PID_DIR")" >> "$STANDIN_LOG"
  code_var=FAIL_CODE_$rank; code=${!code_var:-${FAIL_CODE:-3}}
  case " ${FAIL_RANKS:-} " in *" $rank "*) sleep "${FAIL_AFTER:-0}"; echo "rank $rank failing" >&2; exit "$code";; esac
  # BIND=1: the project's start-up (registration, launcher watch), then hang; the pid stays the recorded one
  [ -n "${BIND:-}" ] && exec "$REAL_PYTHON" -c "from src.cli import bind_to_launcher; bind_to_launcher(); import time; time.sleep(120)"
  [ -n "${SLEEP_S:-}" ] && exec sleep "$SLEEP_S"
  exit 0
fi
exec "$REAL_PYTHON" "$@"
"""
STANDIN_MSRUN = """#!/usr/bin/env bash
# stand-in msrun: records its arguments and the python it would start workers with, then exits as told
echo "msrun python=$(command -v python) ARGS $*" >> "$STANDIN_LOG"
if [ -n "${MSRUN_WORKERS:-}" ]; then  # start the workers as MindSpore's msrun does: each in a session of its own
  echo "msrunpid $$ started workers" >> "$STANDIN_LOG"
  while [ $# -gt 0 ] && [[ "$1" == --* ]]; do shift; done
  for ((i = 0; i < MSRUN_WORKERS; i++)); do RANK_ID=$i setsid python "$@" & done
  wait
  exit "${MSRUN_RC:-0}"
fi
[ -n "${SLEEP_S:-}" ] && exec sleep "$SLEEP_S"
exit "${MSRUN_RC:-0}"
"""


@pytest.fixture
def standins(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("python", STANDIN_PYTHON), ("msrun", STANDIN_MSRUN)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    cfg = tmp_path / "my.yaml"
    cfg.write_text((ROOT / "config" / "demo_synthetic.yaml").read_text())
    log = tmp_path / "standin.log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": str(bin_dir / "python"),
           "REAL_PYTHON": sys.executable, "STANDIN_LOG": str(log), "LOG_DIR": str(tmp_path / "logs"),
           "STOP_GRACE": "5", "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    for var in ("DRY_RUN", "RESUME", "RANK_TABLE_FILE", "RANK_SIZE", "DEVICE_ID", "RANK_ID", "PSPNET_PID_DIR",
                "PSPNET_LAUNCHER"):
        env.pop(var, None)
    started = {"tmp": tmp_path, "env": env, "log": log, "cfg": cfg, "launchers": []}
    yield started
    for proc in started["launchers"]:  # a failed test leaves nothing running behind it
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for kind in ("rank", "child", "msrunpid", "worker"):
        for pid, _ in _records(log, kind):
            if _alive(int(pid)):
                os.kill(int(pid), signal.SIGKILL)


def _records(log: Path, kind: str = "rank"):
    return [line.split(" ", 2)[1:] for line in log.read_text().splitlines() if line.startswith(kind + " ")] \
        if log.exists() else []


def _table(tmp_path: Path, servers=(("10.0.0.1", 2), ("10.0.0.2", 2)), name="rt.json") -> Path:
    rank, server_list = 0, []
    for sid, n in servers:
        devices = []
        for d in range(n):
            devices.append({"device_id": str(d), "device_ip": f"192.168.{d}.1", "rank_id": str(rank)})
            rank += 1
        server_list.append({"server_id": sid, "device": devices, "host_nic_ip": "reserve"})
    path = tmp_path / name
    path.write_text(json.dumps({"version": "1.0", "server_count": str(len(servers)), "server_list": server_list,
                                "status": "completed"}))
    return path


def _run(args, s, timeout=60, **env):
    return subprocess.run(["bash", *args], cwd=str(s["tmp"]), env={**s["env"], **env}, capture_output=True,
                          text=True, timeout=timeout)


def _default_signals() -> None:
    """preexec_fn of every launcher a test signals: HUP, INT and QUIT back at their defaults, whatever the test
    run inherited (``nohup`` ignores HUP; a non-interactive shell's background job ignores INT and QUIT). A
    signal ignored on entry stays ignored across exec and no bash trap can catch it."""
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def _start(args, s, preexec=_default_signals, new_session=False, **env):
    proc = subprocess.Popen(["bash", *args], cwd=str(s["tmp"]), env={**s["env"], **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=preexec, start_new_session=new_session)
    s["launchers"].append(proc)
    return proc


# --- the rank table ------------------------------------------------------------------------------------------

def test_rank_table_gives_each_server_its_devices_and_ranks(tmp_path):
    table = _table(tmp_path)
    assert rank_table_lines(str(table), "1") == ["RANK_SIZE 4", "SERVER 1 10.0.0.2", "0 2", "1 3"]
    assert rank_table_lines(str(table), "10.0.0.1") == ["RANK_SIZE 4", "SERVER 0 10.0.0.1", "0 0", "1 1"]
    assert rank_table_lines(str(table), None, addresses={"127.0.0.1", "10.0.0.2"})[2:] == ["0 2", "1 3"]


@pytest.mark.parametrize("mutate,match", [
    (lambda t: t["server_list"][1]["device"][0].update(rank_id="1"), r"rank_id values must be 0\.\.3"),
    (lambda t: t["server_list"][0]["device"][1].update(device_id="0"), "device_id twice"),
    (lambda t: t["server_list"][0]["device"][0].update(rank_id="-1"), "non-negative integer"),
    (lambda t: t["server_list"][1].update(server_id="10.0.0.1"), "server_id appears twice"),
    (lambda t: t.update(server_list=[]), "non-empty 'server_list'"),
    (lambda t: t["server_list"][0]["device"][0].update(device_id="\u00b2"), "non-negative integer"),  # '²'
    (lambda t: t["server_list"][0]["device"][0].update(rank_id="\u2460"), "non-negative integer"),  # '①'
    (lambda t: t["server_list"][0].update(server_id="10.0.0.1\n7 0"), "not an address or host name"),
])
def test_rank_table_that_does_not_fit_is_refused(tmp_path, mutate, match):
    t = json.loads(_table(tmp_path).read_text())
    mutate(t)
    (tmp_path / "bad.json").write_text(json.dumps(t))
    with pytest.raises(RankTableError, match=match) as info:
        read_rank_table(str(tmp_path / "bad.json"))
    assert "bad.json" in str(info.value)


def test_hostile_rank_tables_are_one_line_not_a_traceback(tmp_path):
    """A million '[' (json recurses per level), and a server_id that would inject a line into the launcher's plan."""
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 1_000_000)
    with pytest.raises(RankTableError, match="nested more than 16 levels") as info:
        read_rank_table(str(deep))
    assert "not valid JSON" not in str(info.value) and str(info.value).count(str(deep)) == 1  # not re-wrapped
    table = _table(tmp_path, servers=(("10.0.0.1", 1),))
    data = json.loads(table.read_text())
    data["server_list"][0]["server_id"] = "10.0.0.1\n7 0"
    table.write_text(json.dumps(data))
    proc = subprocess.run([sys.executable, "-m", "src", "rank-table", str(table), "0"], cwd=str(ROOT),
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1


def test_rank_table_server_choice_errors(tmp_path):
    servers = read_rank_table(str(_table(tmp_path)))
    with pytest.raises(RankTableError, match="server index 2, but the table has 2"):
        select_server(servers, "2", "rt.json")
    with pytest.raises(RankTableError, match="no server_id '10.0.0.9'"):
        select_server(servers, "10.0.0.9", "rt.json")
    with pytest.raises(RankTableError, match="none of its servers"):
        select_server(servers, None, "rt.json", addresses={"127.0.0.1"})
    (tmp_path / "junk.json").write_bytes(b"\xff\xfe{" + b"[" * 1000)
    with pytest.raises(RankTableError, match="junk.json: not valid JSON"):
        read_rank_table(str(tmp_path / "junk.json"))


# --- rank-table launch ---------------------------------------------------------------------------------------

def test_rank_table_launch_runs_this_servers_ranks(standins):
    table = _table(standins["tmp"])
    proc = _run([str(ROOT / "scripts" / "run_distribute_train.sh"), "--rank-table", str(table), "my.yaml", "1"],
                standins)
    assert proc.returncode == 0, proc.stderr
    recs = sorted(r[1].split(" ARGS ")[0] for r in _records(standins["log"]))
    assert recs == ["DEVICE_ID=0 RANK_ID=2 RANK_SIZE=4", "DEVICE_ID=1 RANK_ID=3 RANK_SIZE=4"]
    args = _records(standins["log"])[0][1].split(" ARGS ")[1]
    assert f"--config {standins['cfg']}" in args and "--resume auto" in args and "train.distributed true" in args
    assert "resume: auto" in proc.stderr and "server_list[1] (10.0.0.2)" in proc.stderr
    assert (standins["tmp"] / "logs" / "rank_2.log").exists() and (standins["tmp"] / "logs" / "rank_3.log").exists()


def test_rank_table_launch_refuses_a_table_without_this_host(standins):
    table = _table(standins["tmp"], servers=(("203.0.113.7", 2),))
    proc = _run([str(ROOT / "scripts" / "run_distribute_train.sh"), "--rank-table", str(table), "my.yaml"], standins)
    assert proc.returncode == 2 and "none of its servers (203.0.113.7) is this host" in proc.stderr
    assert not _records(standins["log"])


def test_a_failing_rank_fails_the_launch_and_stops_the_others(standins):
    table = _table(standins["tmp"], servers=(("10.0.0.1", 3),))
    start = time.monotonic()
    proc = _run([str(ROOT / "scripts" / "run_distribute_train.sh"), "--rank-table", str(table), "my.yaml", "0"],
                standins, FAIL_RANKS="1", FAIL_CODE="7", FAIL_AFTER="0.5", SLEEP_S="60")
    assert proc.returncode == 7, proc.stderr
    assert time.monotonic() - start < 30  # the other ranks did not run out their 60 s
    assert "rank 1 (device 1" in proc.stderr and "exited with status 7" in proc.stderr
    assert "stopped because another one failed" in proc.stderr
    for pid, _ in _records(standins["log"]):
        assert not _alive(int(pid))


def test_worst_rank_status_wins(standins):
    table = _table(standins["tmp"], servers=(("10.0.0.1", 2),))
    proc = _run([str(ROOT / "scripts" / "run_distribute_train.sh"), "--rank-table", str(table), "my.yaml", "0"],
                standins, FAIL_RANKS="0 1", FAIL_CODE_0="3", FAIL_CODE_1="5", FAIL_AFTER="0.2")
    assert proc.returncode == 5, proc.stderr
    assert "exited with status 3" in proc.stderr and "exited with status 5" in proc.stderr


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_an_interrupt_leaves_no_rank_running(standins, sig, code):
    table = _table(standins["tmp"], servers=(("10.0.0.1", 2),))
    proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "run_distribute_train.sh"), "--rank-table", str(table),
                             "my.yaml", "0"], cwd=str(standins["tmp"]),
                            env={**standins["env"], "SLEEP_S": "120", "CHILD_SLEEP": "120"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals)
    deadline = time.monotonic() + 30
    while len(_records(standins["log"])) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    pids = [int(p) for p, _ in _records(standins["log"]) + _records(standins["log"], "child")]
    assert len(pids) == 4 and all(_alive(p) for p in pids)
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), "a rank (or a rank's child) outlived the launcher"


# --- msrun launch --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("script,args", [("run_distribute_train.sh", ["my.yaml", "2"]),
                                         ("run_distribute_train_cpu.sh", ["my.yaml", "2"])])
def test_msrun_status_and_resume_are_passed_through(standins, script, args):
    ok = _run([str(ROOT / "scripts" / script), *args], standins)
    assert ok.returncode == 0, ok.stderr
    failed = _run([str(ROOT / "scripts" / script), *args], standins, MSRUN_RC="1", RESUME="none")
    assert failed.returncode == 1 and "msrun exited with status 1" in failed.stderr
    calls = [" ".join(r) for r in _records(standins["log"], "msrun")]
    assert "--resume auto" in calls[0] and "--resume none" in calls[1]
    assert calls[0].startswith(f"python={standins['tmp'] / 'bin' / 'python'} ")  # workers use the chosen python
    bad = _run([str(ROOT / "scripts" / script), *args], standins, RESUME="sometimes")
    assert bad.returncode == 2 and "RESUME=sometimes" in bad.stderr


def test_msrun_launch_stops_on_terminate(standins):
    proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "run_distribute_train.sh"), "my.yaml", "2"],
                            cwd=str(standins["tmp"]), env={**standins["env"], "SLEEP_S": "120"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals)
    deadline = time.monotonic() + 30
    while not _records(standins["log"], "msrun") and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)  # the stand-in msrun execs its sleep after writing its record
    out = subprocess.run(["pgrep", "-f", "sleep 120"], capture_output=True, text=True).stdout.split()
    mine = [int(p) for p in out if _parent(int(p)) == proc.pid]  # this launcher's msrun, not another test's sleep
    assert mine, "the stand-in msrun was not found"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 143
    time.sleep(0.5)
    assert not any(_alive(p) for p in mine)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


# --- launcher life: whatever stops the launcher stops what it started -----------------------------------------

MSRUN_LAUNCH = [str(ROOT / "scripts" / "run_distribute_train.sh"), "my.yaml", "2"]


def _started(s, ranks=2, children=0, registered=0, timeout=30, registry=False):
    """The pids of the stand-in ranks, their children and msrun once all have started; and the registry (with
    ``registry``, waited for: the launcher records it beside starting msrun, so it may come after the ranks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {kind: [int(p) for p, _ in _records(s["log"], kind)] for kind in ("rank", "child", "msrunpid")}
        folders = {r[1].split()[0] for r in _records(s["log"], "registry")}
        done = len(found["rank"]) >= ranks and len(found["child"]) >= children and (len(folders) == 1 or not registry)
        if done and registered and len(folders) == 1:
            done = len([n for n in os.listdir(next(iter(folders))) if n.isdigit()]) >= registered
        if done:
            return [p for pids in found.values() for p in pids], (next(iter(folders)) if folders else None)
        time.sleep(0.1)
    raise AssertionError(f"the stand-ins did not start:\n{s['log'].read_text() if s['log'].exists() else ''}")


def _survivors(pids, within):
    deadline = time.monotonic() + within
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGUSR1])
def test_a_launcher_killed_outright_takes_everything_it_started_with_it(standins, sig):
    """kill -9 runs no trap and SIGUSR1 has none: the launcher's guard still stops msrun, its workers (each in a
    session of its own, never registered) and their children, and removes the launcher's private folder."""
    proc = _start(MSRUN_LAUNCH, standins, MSRUN_WORKERS="2", SLEEP_S="120", CHILD_SLEEP="120")
    pids, registry = _started(standins, ranks=2, children=2, registry=True)
    assert len(pids) == 5 and all(_alive(p) for p in pids) and Path(registry).is_dir()
    start = time.monotonic()
    proc.send_signal(sig)
    proc.communicate(timeout=30)  # the pipes close once the last process holding them is gone
    assert proc.returncode == -sig
    assert not _survivors(pids, 5), "a process outlived the launcher"
    assert time.monotonic() - start < 10
    deadline = time.monotonic() + 5
    while Path(registry).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(registry).exists(), "the registry folder stayed behind"


def test_ranks_stop_themselves_when_the_launcher_and_its_guard_are_killed(standins):
    """kill -9 of the launcher's whole process group (the guard included): msrun survives in its own session,
    but each registered rank sees its launcher's pid and start time gone and stops itself."""
    proc = _start(MSRUN_LAUNCH, standins, new_session=True, MSRUN_WORKERS="2", BIND="1")
    pids, _ = _started(standins, ranks=2, registered=2)
    ranks = [int(p) for p, _ in _records(standins["log"])]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert not _survivors(ranks, 6), "a registered rank outlived its launcher"
    assert not _survivors(pids, 3), "msrun outlived its workers"


@pytest.mark.parametrize("hup", ["default", "ignored on entry"])
def test_a_rank_that_never_registered_is_stopped_on_terminate(standins, hup):
    """msrun's workers hang before they register (interpreter start, imports) in sessions of their own: TERM
    stops them through the guard, which knows them by parent pid. With HUP ignored on entry (nohup) a HUP
    changes nothing, and TERM still stops everything."""
    def hup_ignored():
        _default_signals()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    proc = _start(MSRUN_LAUNCH, standins, preexec=_default_signals if hup == "default" else hup_ignored,
                  MSRUN_WORKERS="2", SLEEP_S="120", CHILD_SLEEP="120")
    pids, registry = _started(standins, ranks=2, children=2, registry=True)
    assert not [n for n in os.listdir(registry) if n.isdigit()]  # nobody registered
    if hup != "default":
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert proc.poll() is None and all(_alive(p) for p in pids)  # as the user asked with nohup
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert not _survivors(pids, 3), "an unregistered rank outlived TERM"
    assert time.monotonic() - start < 10 and not Path(registry).exists()


def test_the_registry_is_the_launchers_private_folder_and_goes_with_it(standins):
    proc = _run(MSRUN_LAUNCH, standins, MSRUN_WORKERS="2")
    assert proc.returncode == 0, proc.stderr
    seen = {tuple(r[1].split()) for r in _records(standins["log"], "registry")}
    assert len(seen) == 1  # one folder for the launch, private to its user, in TMPDIR, removed at the end
    folder, mode = seen.pop()
    assert Path(folder).parent == standins["tmp"] and mode == "700" and not Path(folder).exists()


def test_a_leftover_registry_variable_is_refused_and_never_used(standins):
    """PSPNET_PID_DIR left set and pointing at a user's folder: each launcher and each command refuses it in one
    line before writing anything, also when detached with setsid -f (its parent is then init)."""
    tmp = standins["tmp"]
    mine = tmp / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    for args in (MSRUN_LAUNCH, [str(ROOT / "scripts" / "run_standalone_train.sh"), "my.yaml"]):
        proc = _run(args, standins, PSPNET_PID_DIR=str(mine))
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert f"error: PSPNET_PID_DIR={mine} is set in the environment" in proc.stderr and "unset" in proc.stderr
    assert not _records(standins["log"], "msrun") and not _records(standins["log"])
    table = _table(tmp, servers=(("10.0.0.1", 1),))
    sleeper = subprocess.Popen(["sleep", "30"])  # a running process that started nothing
    try:
        sibling = f"{sleeper.pid}:{Path(f'/proc/{sleeper.pid}/stat').read_text().rsplit(') ', 1)[1].split()[19]}"
        cases = {"only one of them is set": ([], {"PSPNET_PID_DIR": str(mine)}),
                 "did not start this process": ([], {"PSPNET_PID_DIR": str(mine), "PSPNET_LAUNCHER": sibling}),
                 "is not running": (["setsid", "-f"], {"PSPNET_PID_DIR": str(mine), "PSPNET_LAUNCHER": "4194999:1"})}
        for what, (prefix, extra) in cases.items():
            env = {**standins["env"], "PATH": os.environ["PATH"], **extra}
            proc = subprocess.run([*prefix, sys.executable, "-m", "src", "rank-table", str(table), "0"],
                                  cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=60)
            assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
            assert what in proc.stderr and "unset PSPNET_PID_DIR PSPNET_LAUNCHER" in proc.stderr
            if not prefix:
                assert proc.returncode == 2
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sorted(os.listdir(mine)) == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep"


def test_only_the_launchers_own_private_folder_is_accepted(tmp_path):
    """check_launcher_env, the check each rank runs first: the launcher must be a running ancestor, and the
    folder its own (a real folder, private, holding the launcher's record)."""
    from src.system.launch import LauncherEnvError, check_launcher_env, identity

    parent = identity(os.getppid())  # a running ancestor of this process stands in for the launcher
    ident = f"{parent[0]}:{parent[1]}"
    good = tmp_path / "reg"
    good.mkdir(mode=0o700)
    (good / "launcher").write_text(ident + "\n")
    assert check_launcher_env({"PSPNET_PID_DIR": str(good), "PSPNET_LAUNCHER": ident}) == (str(good), parent)
    assert check_launcher_env({}) is None
    (tmp_path / "link").symlink_to(good)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    (shared / "launcher").write_text(ident + "\n")
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    (other / "launcher").write_text(f"{parent[0]}:1\n")
    bare = tmp_path / "bare"
    bare.mkdir(mode=0o700)
    for folder, launcher, match in [(good, "7", "not PID:START"), (good, "4194999:1", "is not running"),
                                    (tmp_path / "link", ident, "a link or not a folder"),
                                    (shared, ident, "a folder others can use"),
                                    (other, ident, "record names another launcher"),
                                    (bare, ident, "without the launcher's record")]:
        with pytest.raises(LauncherEnvError, match=match):
            check_launcher_env({"PSPNET_PID_DIR": str(folder), "PSPNET_LAUNCHER": launcher})
    assert os.listdir(bare) == []


def test_a_rank_notices_its_launcher_is_gone(tmp_path):
    """watch_launcher: no signal needed from the launcher; a new process reusing its pid would not count."""
    import threading

    from src.system.launch import identity, watch_launcher

    launcher = subprocess.Popen(["sleep", "30"])
    gone = threading.Event()
    watch_launcher(identity(launcher.pid), interval=0.05, on_gone=gone.set)
    assert not gone.wait(0.5)
    launcher.kill()
    launcher.wait()
    assert gone.wait(3)


def test_a_guard_that_cannot_make_its_folder_is_one_line(tmp_path):
    (tmp_path / "a_file").write_text("x")
    code = ("import os, sys, tempfile; tempfile.tempdir = sys.argv[1]; from src.cli import main; "
            "sys.exit(main(['launch-guard', str(os.getppid())]))")
    proc = subprocess.run(["bash", "-c", f'"{sys.executable}" -c "$0" "$1"; echo "status $?" >&2', code,
                           str(tmp_path / "a_file")], cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == "status 2" and len(lines) == 2, proc.stderr
    assert "cannot make the launcher's private folder in" in lines[0] and "set TMPDIR" in lines[0]
    assert proc.stdout == ""


# --- standalone and eval -------------------------------------------------------------------------------------

def test_standalone_passes_status_resume_and_device(standins):
    proc = _run([str(ROOT / "scripts" / "run_standalone_train.sh"), "my.yaml", "3"], standins, FAIL_RANKS="0",
                FAIL_CODE="5", RESUME="none")
    assert proc.returncode == 5
    rec = _records(standins["log"])[0][1]
    assert "--resume none" in rec and "--device_id 3" in rec  # the flag: a leftover DEVICE_ID cannot win over it


def test_launcher_usage_states_the_resume_default():
    for script in ("run_distribute_train.sh", "run_standalone_train.sh", "run_distribute_train_cpu.sh"):
        proc = subprocess.run(["bash", str(ROOT / "scripts" / script), "--help"], capture_output=True, text=True)
        assert proc.returncode == 2 and "RESUME=auto (default)" in proc.stdout, script


def test_eval_launcher_passes_status_and_paths(standins):
    (standins["tmp"] / "m.onnx").write_bytes(b"x")
    proc = _run([str(ROOT / "scripts" / "run_eval.sh"), "my.yaml", "m.onnx", "onnx", "--", "eval.flip", "false"],
                standins, FAIL_RANKS="0", FAIL_CODE="4")
    assert proc.returncode == 4
    rec = _records(standins["log"])[0][1]
    assert f"--ckpt {standins['tmp'] / 'm.onnx'}" in rec and "--backend onnx" in rec and "eval.flip false" in rec


def test_quickstart_never_deletes_a_data_folder_it_did_not_write(tmp_path):
    """The quickstart replaces an older synthetic set (its info.json) but refuses a folder of someone else's."""
    import shutil

    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "quickstart.sh", tmp_path / "scripts" / "quickstart.sh")
    (tmp_path / "scripts" / "setup_env.sh").write_text("exit 0\n")  # stand-in: the environment is there
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").write_text(f"#!/usr/bin/env bash\necho \"$*\" >> {tmp_path}/py.log\n")
    (tmp_path / ".venv" / "bin" / "python").chmod(0o755)
    data = tmp_path / "data" / "synthetic_shapes"
    data.mkdir(parents=True)
    (data / "my_photos.txt").write_text("precious")
    proc = subprocess.run(["bash", str(tmp_path / "scripts" / "quickstart.sh")], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not a synthetic set this script wrote" in proc.stderr
    assert (data / "my_photos.txt").read_text() == "precious" and not (tmp_path / "py.log").exists()


# --- every launcher: paths from the caller's folder; the real msrun's workers stopped --------------------------

@pytest.mark.parametrize("script,args", [
    ("run_distribute_train.sh", ["--rank-table", "TABLE", "my.yaml", "0"]),
    ("run_standalone_train.sh", ["my.yaml", "0"]),
    ("run_eval.sh", ["my.yaml", "m.onnx", "onnx"]),
])
def test_launchers_run_in_the_callers_folder(standins, script, args):
    """Relative paths in overrides and in the config resolve from where the user called the launcher."""
    (standins["tmp"] / "m.onnx").write_bytes(b"x")
    args = [str(_table(standins["tmp"], servers=(("10.0.0.1", 1),))) if a == "TABLE" else a for a in args]
    proc = _run([str(ROOT / "scripts" / script), *args, "--", "train.save_dir", "out_rel"], standins)
    assert proc.returncode == 0, proc.stderr
    cwds = {line.split(" ", 2)[2] for line in standins["log"].read_text().splitlines() if line.startswith("cwd ")}
    assert cwds == {str(standins["tmp"])}


HANGING_WORKER = """#!/usr/bin/env bash
# stand-in python for the real msrun: a train.py rank registers as train.py would, records its pid, and hangs
case "${1:-}" in
  */train.py|train.py)
    echo "worker $$ ${MS_ROLE:-}" >> "$STANDIN_LOG"
    exec "$REAL_PYTHON" -c "from src.cli import bind_to_launcher; bind_to_launcher(); import time; time.sleep(600)";;
esac
exec "$REAL_PYTHON" "$@"
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_the_real_msrun_leaves_no_worker_behind(standins, sig):
    """MindSpore's msrun starts each worker in a session of its own and has no TERM handler: stopping the
    launcher, or killing it outright, must still stop every worker (the launcher's guard follows them)."""
    msrun = Path(sys.executable).parent / "msrun"
    if not msrun.exists():
        pytest.skip("msrun is not installed beside this python")
    (standins["tmp"] / "bin" / "msrun").unlink()  # the real one, found beside the real python
    (standins["tmp"] / "bin" / "python").write_text(HANGING_WORKER)
    env = {**standins["env"], "PATH": f"{standins['tmp'] / 'bin'}:{msrun.parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "STOP_GRACE": "3", "MASTER_PORT": str(8200 + os.getpid() % 500)}
    proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "run_distribute_train_cpu.sh"), "my.yaml", "2"],
                            cwd=str(standins["tmp"]), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_default_signals)
    deadline = time.monotonic() + 90
    while len(_records(standins["log"], "worker")) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    pids = [int(p) for p, _ in _records(standins["log"], "worker")]
    assert len(pids) >= 2 and all(_alive(p) for p in pids), standins["log"].read_text()
    time.sleep(1.0)  # the workers have registered
    sessions = {p: os.getsid(p) for p in pids}
    assert any(sid == p for p, sid in sessions.items())  # msrun put a worker in a session of its own
    start = time.monotonic()
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    while any(_alive(p) for p in pids) and time.monotonic() - start < 3 + 5:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), "a worker outlived the launcher"
    assert proc.returncode == (-sig if sig == signal.SIGKILL else 128 + int(sig))


# --- the model zoo's script forms ------------------------------------------------------------------------------

def test_the_zoo_script_forms_run_beside_ours(standins):
    tmp = standins["tmp"]
    table = _table(tmp, servers=(("10.0.0.1", 2),))
    for args in (["run_eval.sh", "my.yaml", "3"], ["run_train1p_ascend.sh", "my.yaml", "2"],
                 ["run_distribute_train.sh", str(table), "my.yaml", "0"],
                 ["run_distribute_train_ascend.sh", str(table), "my.yaml", "0"]):
        proc = _run([str(ROOT / "scripts" / args[0]), *args[1:]], standins)
        assert proc.returncode == 0, (args, proc.stderr)
    recs = [r[1] for r in _records(standins["log"])]
    assert "--device_id 3" in recs[0] and "--ckpt" not in recs[0]  # the model comes from the config
    assert "--device_id 2" in recs[1]
    assert sorted(r.split(" ARGS ")[0] for r in recs[2:4]) == ["DEVICE_ID=0 RANK_ID=0 RANK_SIZE=2",
                                                               "DEVICE_ID=1 RANK_ID=1 RANK_SIZE=2"]
    assert len(recs) == 6


def test_the_zoo_form_of_run_infer_310_takes_the_data_path(standins):
    tmp = standins["tmp"]
    (tmp / "m.mindir").write_bytes(b"x")
    (tmp / "voc").mkdir()
    recorder = tmp / "bin" / "python"
    recorder.write_text(f"#!/usr/bin/env bash\necho \"ARGS $*\" >> {standins['log']}\n")
    proc = _run([str(ROOT / "scripts" / "run_infer_310.sh"), "m.mindir", "my.yaml", "voc", "4"], standins,
                RUNNER="python")
    assert proc.returncode == 0, proc.stderr
    line = standins["log"].read_text()
    assert "flow310" in line and "--device_id 4" in line and f"data.data_root {tmp / 'voc'}" in line
    assert f"--work {tmp / 'infer_310'}" in line
