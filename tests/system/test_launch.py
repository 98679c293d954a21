"""src.system.launch, function by function: reading and checking an HCCL rank table (nesting, integer fields, size,
which server is this host), the /proc view of processes (read_proc, identity, is_running, ancestry), the check a
rank runs on the launcher variables it inherited, the launcher's registry folder, and the guard that follows and
stops what a launcher started (Guard, guard, stop_own_group). Stand-in processes are `sleep` and small bash or
Python children; the launchers end to end (scripts/lib/launch.sh, msrun) are tests/integration/test_launchers.py."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import src.system.launch as launch
from src.system.launch import (Guard, LauncherEnvError, RankTableError, _carries, _check_depth, _int_field,
                               _is_ancestor, _private_folder_problem, _registered, check_launcher_env, guard,
                               guard_launcher, host_addresses, identity, is_running, process_table, read_proc,
                               read_rank_table, select_server)

REPO = Path(__file__).resolve().parents[2]
NO_SUCH_PID = 4194999  # above Linux's largest pid


def _table(tmp_path, servers=(("10.0.0.1", 2), ("10.0.0.2", 2))) -> str:
    rank, server_list = 0, []
    for sid, n in servers:
        server_list.append({"server_id": sid, "device": [{"device_id": str(d), "rank_id": str(rank + d)}
                                                         for d in range(n)]})
        rank += n
    path = tmp_path / "rt.json"
    path.write_text(json.dumps({"version": "1.0", "server_count": str(len(servers)), "server_list": server_list}))
    return str(path)


def _wait_until(condition, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _end(*idents):
    """Kill what a test started and is still running (by pid and start time, never a later process)."""
    for ident in idents:
        if ident is not None and is_running(ident):
            os.kill(ident[0], signal.SIGKILL)


# --- the rank table ------------------------------------------------------------------------------------------

def test_nesting_is_counted_outside_strings_only():
    _check_depth('{"a": "' + "[" * 40 + '"}', "rt.json")
    _check_depth('{"a": "\\"' + "{" * 40 + '"}', "rt.json")  # an escaped quote does not end the string
    _check_depth("[]" * 100 + "[" * 16, "rt.json")  # depth, not the number of brackets
    with pytest.raises(RankTableError, match="rt.json: nested more than 16 levels deep"):
        _check_depth("[" * 17, "rt.json")


@pytest.mark.parametrize("value,expected", [("0", 0), ("15", 15), (7, 7), ("999999", 999999)])
def test_integer_fields_take_plain_digits(value, expected):
    assert _int_field(value, "device_id", "rt.json") == expected


@pytest.mark.parametrize("value", [True, 1.0, "1.0", "-1", " 1", "1234567", "\u00b2", None, [1]])
def test_integer_fields_refuse_anything_else_naming_the_field(value):
    with pytest.raises(RankTableError, match=r"rank table rt.json: server_list\[0\].device\[1\].rank_id must be"):
        _int_field(value, "server_list[0].device[1].rank_id", "rt.json")


def test_a_table_is_read_as_servers_with_their_device_and_rank_ids(tmp_path):
    assert read_rank_table(_table(tmp_path)) == [("10.0.0.1", [(0, 0), (1, 1)]), ("10.0.0.2", [(0, 2), (1, 3)])]


def test_a_missing_or_oversized_table_is_refused_before_parsing(tmp_path, monkeypatch):
    with pytest.raises(RankTableError, match="rank table not found: .*none.json"):
        read_rank_table(str(tmp_path / "none.json"))
    path = _table(tmp_path)
    monkeypatch.setattr(launch, "MAX_TABLE_BYTES", 50)
    with pytest.raises(RankTableError, match=f"rank table {path}: .* bytes is too large"):
        read_rank_table(path)


def test_this_hosts_server_is_the_one_whose_address_it_has(tmp_path):
    servers = read_rank_table(_table(tmp_path, (("10.0.0.1", 1), ("node-b", 1), ("10.0.0.3", 1))))
    assert select_server(servers, None, "rt.json", addresses={"127.0.0.1", "node-b"}) == 1
    assert select_server(servers, "", "rt.json", addresses=["10.0.0.3"]) == 2
    assert select_server(servers, "0", "rt.json", addresses={"10.0.0.3"}) == 0  # an explicit choice wins
    with pytest.raises(RankTableError, match="several of its servers"):
        select_server(servers, None, "rt.json", addresses={"10.0.0.1", "10.0.0.3"})


def test_host_addresses_hold_this_hosts_name():
    found = host_addresses()
    assert socket.gethostname() in found and all(isinstance(a, str) and a for a in found)


# --- processes as /proc shows them -------------------------------------------------------------------------------

def test_read_proc_of_this_process_and_of_none():
    me = read_proc(os.getpid())
    assert (me.ppid, me.pgid) == (os.getppid(), os.getpgrp()) and me.start.isdigit() and me.state in "RS"
    assert read_proc(NO_SUCH_PID) is None
    table = process_table()
    assert table[os.getpid()] == read_proc(os.getpid()) and os.getppid() in table


def test_a_process_is_known_by_pid_and_start_time_and_a_zombie_has_ended():
    child = subprocess.Popen(["sleep", "30"])
    try:
        ident = identity(child.pid)
        assert ident == (child.pid, read_proc(child.pid).start) and is_running(ident)
        assert not is_running((child.pid, str(int(ident[1]) + 1)))  # a later process with the same pid
        assert not is_running(ident, table={})  # a table read when it was gone
        child.kill()
        assert _wait_until(lambda: read_proc(child.pid).state == "Z")  # ended, not yet reaped
        assert identity(child.pid) is None and not is_running(ident)
    finally:
        child.kill()
        child.wait()
    assert identity(NO_SUCH_PID) is None


def test_ancestry_follows_parents_and_their_start_times():
    parent = identity(os.getppid())
    assert _is_ancestor(parent, os.getpid())
    assert not _is_ancestor((parent[0], str(int(parent[1]) + 1)), os.getpid())
    assert not _is_ancestor(identity(os.getpid()), os.getppid())
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert _is_ancestor(identity(os.getpid()), child.pid) and _is_ancestor(parent, child.pid)
    finally:
        child.kill()
        child.wait()


# --- the launcher variables a rank inherits --------------------------------------------------------------------

@pytest.mark.parametrize("env", [{"PSPNET_PID_DIR": "/tmp/reg"}, {"PSPNET_LAUNCHER": "1:2"},
                                 {"PSPNET_PID_DIR": "\x1b[2J", "PSPNET_LAUNCHER": ""}])
def test_one_launcher_variable_alone_is_refused_in_one_clean_line(env):
    with pytest.raises(LauncherEnvError, match="only one of them is set") as info:
        check_launcher_env(env)
    message = str(info.value)
    assert "unset PSPNET_PID_DIR PSPNET_LAUNCHER" in message and "\x1b" not in message and "\n" not in message


def test_a_running_launcher_that_did_not_start_this_process_is_refused(tmp_path):
    stranger = subprocess.Popen(["sleep", "30"])  # running, but this process's child, not its ancestor
    try:
        pid, start = identity(stranger.pid)
        folder = tmp_path / "reg"
        folder.mkdir(mode=0o700)
        (folder / "launcher").write_text(f"{pid}:{start}\n")
        with pytest.raises(LauncherEnvError, match=f"pid {pid}\\) did not start this process"):
            check_launcher_env({"PSPNET_PID_DIR": str(folder), "PSPNET_LAUNCHER": f"{pid}:{start}"})
        assert os.listdir(folder) == ["launcher"]
    finally:
        stranger.kill()
        stranger.wait()


def test_the_private_folder_check_names_what_is_wrong(tmp_path):
    ident = "123:456"
    assert "cannot be read" in _private_folder_problem(str(tmp_path / "none"), ident)
    (tmp_path / "file").write_text("x")
    assert _private_folder_problem(str(tmp_path / "file"), ident) == "not a folder"
    folder = tmp_path / "reg"
    folder.mkdir(mode=0o700)
    (folder / "launcher").mkdir()
    assert _private_folder_problem(str(folder), ident) == "its launcher entry is not a file"
    (folder / "launcher").rmdir()
    (folder / "launcher").write_text(ident + "\n")
    assert _private_folder_problem(str(folder), ident) == ""
    assert _private_folder_problem(str(folder), "123:45") == "a folder whose record names another launcher"


def test_the_registry_lists_only_well_formed_rank_entries(tmp_path):
    (tmp_path / "123").write_text("456\n")
    (tmp_path / "124").write_text("not a start time")
    (tmp_path / "launcher").write_text("1:2\n")
    (tmp_path / "125").mkdir()
    (tmp_path / "126").symlink_to(tmp_path / "123")
    assert _registered(str(tmp_path)) == {123: "456"}
    assert _registered(str(tmp_path / "none")) == {}


def test_a_process_carries_the_launcher_mark_only_as_a_whole_variable():
    child = subprocess.Popen(["sleep", "30"], env={**os.environ, "PSPNET_LAUNCHER": "12:34"})
    try:
        assert _wait_until(lambda: _carries(child.pid, b"PSPNET_LAUNCHER=12:34"))  # once it has exec'd sleep
        assert not _carries(child.pid, b"PSPNET_LAUNCHER=12:3")
    finally:
        child.kill()
        child.wait()
    assert not _carries(NO_SUCH_PID, b"PSPNET_LAUNCHER=12:34")


# --- the guard ---------------------------------------------------------------------------------------------------

def _launcher(script: str, lines: int):
    """A bash stand-in launcher; returns it and the pids it prints (``lines`` of them, the first a rank it starts
    with setsid)."""
    proc = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, text=True)
    pids = [int(proc.stdout.readline()) for _ in range(lines)]
    assert _wait_until(lambda: read_proc(pids[0]).pgid == pids[0])  # the first one has run setsid
    return proc, pids


def test_the_guard_follows_group_leaders_and_registered_ranks_but_not_the_launchers_helpers(tmp_path):
    """A launcher starts a rank in a session of its own (followed), a helper in its own group (left alone),
    and a rank that registers in the folder (followed); stop() ends exactly the followed ones."""
    proc, (rank, helper, registered) = _launcher(
        "setsid sleep 60 & echo $!; sleep 60 & echo $!; sleep 60 & echo $!; wait", 3)
    idents = [identity(p) for p in (rank, helper, registered)]
    try:
        (tmp_path / str(registered)).write_text(idents[2][1] + "\n")
        g = Guard(identity(proc.pid), str(tmp_path))
        g.scan()
        assert set(g.tracked) == {rank, registered}
        assert g.stop(grace=5) == 2
        assert not g.tracked
        assert _wait_until(lambda: not is_running(idents[0]) and not is_running(idents[2]))
        assert is_running(idents[1])
    finally:
        _end(*idents)
        proc.kill()
        proc.wait()


def test_the_guard_stops_what_it_follows_when_asked():
    proc, (rank,) = _launcher("setsid sleep 60 & echo $!; wait", 1)
    ident = identity(rank)
    try:
        assert guard(identity(proc.pid), None, grace=5, should_stop=lambda: True, poll=0.05) == 1
        assert _wait_until(lambda: not is_running(ident))
    finally:
        _end(ident)
        proc.kill()
        proc.wait()


def test_the_guard_stops_the_orphans_when_the_launcher_is_gone():
    proc, (rank,) = _launcher("setsid sleep 60 & echo $!; sleep 2", 1)  # the launcher ends, its rank runs on
    ident = identity(rank)
    try:
        started = time.monotonic()
        assert guard(identity(proc.pid), None, grace=5, should_stop=lambda: False, poll=0.05) == 1
        assert time.monotonic() - started < 20
        assert _wait_until(lambda: not is_running(ident))
    finally:
        _end(ident)
        proc.wait()


def test_a_guard_watches_only_its_own_parent():
    assert guard_launcher(os.getppid()) == identity(os.getppid())
    with pytest.raises(LauncherEnvError, match=f"launch-guard {os.getpid()}: that process is not this guard's parent"):
        guard_launcher(os.getpid())


STOP = """
import signal, subprocess, sys
from src.system.launch import stop_own_group
child = subprocess.Popen(["sleep", "60"])  # before TERM is ignored: an ignored signal stays ignored across exec
if sys.argv[1] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(child.pid, flush=True)
sys.stdin.readline()  # the test has noted the child's identity
stop_own_group(0.3)
"""


@pytest.mark.parametrize("how,status", [("default", -signal.SIGTERM), ("ignore", 143)])
def test_stop_own_group_ends_the_group_it_leads_and_exits_143_at_worst(how, status):
    proc = subprocess.Popen([sys.executable, "-c", STOP, how], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)  # a group leader, as a rank under the launchers
    child = identity(int(proc.stdout.readline()))
    try:
        assert child is not None
        proc.stdin.write("go\n")
        proc.stdin.close()
        assert proc.wait(timeout=30) == status
        assert _wait_until(lambda: not is_running(child))  # its child in the group got TERM too
    finally:
        _end(child)
        proc.kill()
        proc.wait()
