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

from src.launch import RankTableError, rank_table_lines, read_rank_table, select_server

ROOT = Path(__file__).resolve().parents[2]
STANDIN_PYTHON = """#!/usr/bin/env bash
# stand-in python: train.py / eval.py record their arguments and environment, other calls run the real python
case "${1:-}" in */train.py|*/eval.py|train.py|eval.py) is_rank=1;; *) is_rank=;; esac
if [ -n "$is_rank" ]; then
  rank=${RANK_ID:-0}
  if [ -n "${CHILD_SLEEP:-}" ]; then sleep "$CHILD_SLEEP" & echo "child $! rank=$rank" >> "$STANDIN_LOG"; fi
  echo "rank $$ DEVICE_ID=${DEVICE_ID:-} RANK_ID=${RANK_ID:-} RANK_SIZE=${RANK_SIZE:-} ARGS $*" >> "$STANDIN_LOG"
  echo "cwd $$ $PWD" >> "$STANDIN_LOG"
  code_var=FAIL_CODE_$rank; code=${!code_var:-${FAIL_CODE:-3}}
  case " ${FAIL_RANKS:-} " in *" $rank "*) sleep "${FAIL_AFTER:-0}"; echo "rank $rank failing" >&2; exit "$code";; esac
  [ -n "${SLEEP_S:-}" ] && exec sleep "$SLEEP_S"
  exit 0
fi
exec "$REAL_PYTHON" "$@"
"""
STANDIN_MSRUN = """#!/usr/bin/env bash
# stand-in msrun: records its arguments and the python it would start workers with, then exits as told
echo "msrun python=$(command -v python) ARGS $*" >> "$STANDIN_LOG"
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
           "STOP_GRACE": "5"}
    for var in ("DRY_RUN", "RESUME", "RANK_TABLE_FILE", "RANK_SIZE", "DEVICE_ID", "RANK_ID"):
        env.pop(var, None)
    return {"tmp": tmp_path, "env": env, "log": log, "cfg": cfg}


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
    proc = subprocess.run([sys.executable, "-m", "src.launch", "rank-table", str(table), "0"], cwd=str(ROOT),
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
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_the_real_msrun_leaves_no_worker_behind(standins, sig):
    """MindSpore's msrun starts each worker in a session of its own and has no TERM handler: stopping the
    launcher must still stop every worker (they register with the launcher and die with their parent)."""
    msrun = Path(sys.executable).parent / "msrun"
    if not msrun.exists():
        pytest.skip("msrun is not installed beside this python")
    (standins["tmp"] / "bin" / "msrun").unlink()  # the real one, found beside the real python
    (standins["tmp"] / "bin" / "python").write_text(HANGING_WORKER)
    env = {**standins["env"], "PATH": f"{standins['tmp'] / 'bin'}:{msrun.parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "STOP_GRACE": "3", "MASTER_PORT": str(8200 + os.getpid() % 500)}
    proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "run_distribute_train_cpu.sh"), "my.yaml", "2"],
                            cwd=str(standins["tmp"]), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
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
    assert proc.returncode == 128 + int(sig)


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
