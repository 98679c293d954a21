"""Rank tables for the classic Ascend launch: which devices and ranks this host runs.

``scripts/run_distribute_train.sh --rank-table`` calls
``python -m src rank-table TABLE [SERVER]`` and starts one process per
line it prints (``DEVICE_ID RANK_ID``), after a first line ``RANK_SIZE N``.
This host's entry of ``server_list`` is chosen by SERVER (an index into the
list or a ``server_id`` address) or, when SERVER is empty, by matching this
host's addresses.  A table whose ranks are not exactly 0..N-1, that repeats a
device on one server, or that names no server of this host is refused.

Launcher life (scripts/lib/launch.sh): the launcher starts a guard (``python ROOT launch-guard``, :func:`guard`)
that makes the launcher's private registry folder, follows every process the launcher started and their
descendants by parent pid in /proc, and stops them all when the launcher is asked to stop or is gone, however it
died (kill -9 included); each rank also checks its launcher's identity (pid and start time) from a thread of its
own (:func:`watch_launcher`). Launcher variables that no running launcher set for this process are refused
(:func:`check_launcher_env`).
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from src.errors import PSPNetError, shown

logger = logging.getLogger(__name__)

MAX_TABLE_BYTES = 4 << 20


class RankTableError(PSPNetError, ValueError):
    """A rank table that cannot be read or does not fit this host; the message names the file."""


MAX_TABLE_DEPTH = 16  # a rank table nests 4 levels; json's parser recurses once per level
SERVER_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,255}")  # an address or host name: nothing a plan line could split on


def _int_field(value, what: str, path: str) -> int:
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not (text.isascii() and text.isdigit()) or len(text) > 6:  # '²' and '①' are digits to isdigit(), not to int()
        raise RankTableError(f"rank table {path}: {what} must be a non-negative integer, got {str(value)[:40]!r}")
    return int(text)


def read_rank_table(path: str) -> List[Tuple[str, List[Tuple[int, int]]]]:
    """``[(server_id, [(device_id, rank_id), ...]), ...]`` from an HCCL rank table (JSON), checked."""
    p = Path(path)
    if not p.is_file():
        raise RankTableError(f"rank table not found: {path}")
    if p.stat().st_size > MAX_TABLE_BYTES:
        raise RankTableError(f"rank table {path}: {p.stat().st_size} bytes is too large for a rank table")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RankTableError(f"rank table {path}: not valid JSON ({str(exc)[:120]})") from None
    _check_depth(text, path)  # its own message; it is a ValueError too, so it is not caught with json's below
    try:
        table = json.loads(text)
    except ValueError as exc:
        raise RankTableError(f"rank table {path}: not valid JSON ({str(exc)[:120]})") from None
    servers = table.get("server_list") if isinstance(table, dict) else None
    if not isinstance(servers, list) or not servers:
        raise RankTableError(f"rank table {path}: needs a non-empty 'server_list'")
    out = []
    for i, server in enumerate(servers):
        devices = server.get("device") if isinstance(server, dict) else None
        sid = server.get("server_id") if isinstance(server, dict) else None
        if not isinstance(sid, str) or not sid or not isinstance(devices, list) or not devices:
            raise RankTableError(f"rank table {path}: server_list[{i}] needs a 'server_id' and a non-empty 'device' "
                                 f"list")
        if not SERVER_ID.fullmatch(sid):
            raise RankTableError(f"rank table {path}: server_list[{i}].server_id {sid[:60]!r} is not an address or "
                                 f"host name (letters, digits, '.', ':', '-', '_' only)")
        entries = []
        for j, dev in enumerate(devices):
            if not isinstance(dev, dict):
                raise RankTableError(f"rank table {path}: server_list[{i}].device[{j}] is not an object")
            entries.append((_int_field(dev.get("device_id"), f"server_list[{i}].device[{j}].device_id", path),
                            _int_field(dev.get("rank_id"), f"server_list[{i}].device[{j}].rank_id", path)))
        ids = [d for d, _ in entries]
        if len(set(ids)) != len(ids):
            raise RankTableError(f"rank table {path}: server {sid} lists a device_id twice ({ids})")
        out.append((sid, entries))
    ranks = sorted(r for _, entries in out for _, r in entries)
    if ranks != list(range(len(ranks))):
        raise RankTableError(f"rank table {path}: rank_id values must be 0..{len(ranks) - 1}, each once; got "
                             f"{ranks[:32]}")
    sids = [s for s, _ in out]
    if len(set(sids)) != len(sids):
        raise RankTableError(f"rank table {path}: a server_id appears twice ({sids})")
    return out


def _check_depth(text: str, path: str) -> None:
    """Refuse nesting deeper than a rank table's before parsing (json recurses per level: a RecursionError)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_TABLE_DEPTH:
                raise RankTableError(f"rank table {path}: nested more than {MAX_TABLE_DEPTH} levels deep; a rank "
                                     f"table has 4")
        elif ch in "]}":
            depth -= 1


def host_addresses() -> Set[str]:
    """This host's names and IP addresses, as far as the resolver knows them."""
    names = {socket.gethostname(), socket.getfqdn()}
    found = set(names)
    for name in names:
        try:
            found.update(info[4][0] for info in socket.getaddrinfo(name, None))
        except OSError:
            pass
    return found


def select_server(servers: Sequence[Tuple[str, List[Tuple[int, int]]]], server: Optional[str], path: str,
                  addresses: Iterable[str] = ()) -> int:
    """Index of this host's entry: ``server`` as an index or a server_id, else the one entry among ``addresses``."""
    ids = [s for s, _ in servers]
    if server:
        if server.isdigit():
            if int(server) >= len(servers):
                raise RankTableError(f"rank table {path}: server index {server}, but the table has {len(servers)} "
                                     f"server(s) ({', '.join(ids)})")
            return int(server)
        if server not in ids:
            raise RankTableError(f"rank table {path}: no server_id {server!r} (the table has {', '.join(ids)})")
        return ids.index(server)
    mine = [i for i, s in enumerate(ids) if s in set(addresses)]
    if len(mine) != 1:
        what = "none of" if not mine else "several of"
        raise RankTableError(f"rank table {path}: {what} its servers ({', '.join(ids)}) is this host; pass the "
                             f"server index or address (SERVER) explicitly")
    return mine[0]


def rank_table_lines(path: str, server: Optional[str] = None, addresses: Optional[Iterable[str]] = None) -> List[str]:
    """``RANK_SIZE N``, then ``DEVICE_ID RANK_ID`` per device of this host's entry."""
    servers = read_rank_table(path)
    idx = select_server(servers, server, path, host_addresses() if addresses is None else addresses)
    total = sum(len(entries) for _, entries in servers)
    return [f"RANK_SIZE {total}", f"SERVER {idx} {servers[idx][0]}",
            *(f"{d} {r}" for d, r in servers[idx][1])]


# --- launcher life ----------------------------------------------------------------------------------------------

PID_DIR_VAR = "PSPNET_PID_DIR"  # the launcher's private folder, where each rank registers (a file per pid)
LAUNCHER_VAR = "PSPNET_LAUNCHER"  # the launcher's identity, "PID:START" (start time in clock ticks)
LAUNCHER_FILE = "launcher"  # in the folder: the identity again, so a folder and a launcher only go together
UNSET_HINT = (f"these variables belong to the launchers (scripts/lib/launch.sh sets them for the ranks it "
              f"starts); unset them: unset {PID_DIR_VAR} {LAUNCHER_VAR}")


class LauncherEnvError(PSPNetError, RuntimeError):
    """Launcher variables that no running launcher set for this process, or a guard that cannot start."""


@dataclass(frozen=True)
class ProcInfo:
    """What /proc/PID/stat says of one process: its parent, process group, start time and state letter."""

    ppid: int
    pgid: int
    start: str
    state: str


Identity = Tuple[int, str]  # (pid, start time): one process, never a later one that got the same pid


def read_proc(pid: int) -> Optional[ProcInfo]:
    """The process ``pid`` as /proc shows it, or None when there is none (or /proc cannot say)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read(4096).rsplit(b") ", 1)[1].split()  # the name may hold spaces and ')'
        return ProcInfo(int(fields[1]), int(fields[2]), fields[19].decode(), fields[0].decode())
    except (OSError, IndexError, ValueError):
        return None


def process_table() -> Dict[int, ProcInfo]:
    """Every process this user can see, by pid."""
    table = {}
    with os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit():
                info = read_proc(int(entry.name))
                if info is not None:
                    table[int(entry.name)] = info
    return table


def identity(pid: int) -> Optional[Identity]:
    """``(pid, start time)`` of a running process, or None."""
    info = read_proc(pid)
    return (pid, info.start) if info is not None and info.state != "Z" else None


def is_running(ident: Identity, table: Optional[Dict[int, ProcInfo]] = None) -> bool:
    """True while the process ``ident`` names runs (a zombie has ended; a new process with its pid is not it)."""
    info = table.get(ident[0]) if table is not None else read_proc(ident[0])
    return info is not None and info.start == ident[1] and info.state != "Z"


def _is_ancestor(ident: Identity, pid: int) -> bool:
    """True when ``ident`` is the parent of ``pid``, or its parent's parent, and so on."""
    for _ in range(64):
        info = read_proc(pid)
        if info is None or info.ppid <= 0:
            return False
        pid = info.ppid
        if pid == ident[0]:
            return is_running(ident)
    return False


def check_launcher_env(env: Optional[Dict[str, str]] = None) -> Optional[Tuple[str, Identity]]:
    """``(folder, launcher)`` when a running launcher of this project set ``PSPNET_PID_DIR`` and
    ``PSPNET_LAUNCHER`` for this process; None when neither is set. Anything else - one of them alone, a
    launcher that is gone or is not an ancestor of this process (a leftover export, a command detached with
    ``setsid -f``), a folder that is not that launcher's private one - is one :class:`LauncherEnvError`,
    and nothing is written anywhere."""
    env = os.environ if env is None else env
    folder, ident = env.get(PID_DIR_VAR, ""), env.get(LAUNCHER_VAR, "")
    if not folder and not ident:
        return None
    shown_vars = f"{PID_DIR_VAR}={shown(folder, 80)} {LAUNCHER_VAR}={shown(ident, 40)}"
    if not folder or not ident:
        raise LauncherEnvError(f"{shown_vars}: only one of them is set; {UNSET_HINT}")
    pid_text, _, start = ident.partition(":")
    if not (pid_text.isascii() and pid_text.isdigit() and len(pid_text) <= 9 and start.isascii()
            and start.isdigit() and len(start) <= 20):
        raise LauncherEnvError(f"{shown_vars}: {LAUNCHER_VAR} is not PID:START; {UNSET_HINT}")
    launcher = (int(pid_text), start)
    if not is_running(launcher):
        raise LauncherEnvError(f"{shown_vars}: the launcher it names (pid {launcher[0]}) is not running - a "
                               f"leftover from an earlier launch, or the launcher was stopped while this process "
                               f"started; {UNSET_HINT}")
    if not _is_ancestor(launcher, os.getpid()):
        raise LauncherEnvError(f"{shown_vars}: the launcher it names (pid {launcher[0]}) did not start this "
                               f"process; {UNSET_HINT}")
    problem = _private_folder_problem(folder, ident)
    if problem:
        raise LauncherEnvError(f"{shown_vars}: {problem}, not the launcher's private folder; {UNSET_HINT}")
    return folder, launcher


def _private_folder_problem(folder: str, ident: str) -> str:
    """Why ``folder`` is not the private folder of the launcher ``ident`` ('' when it is)."""
    try:
        st = os.lstat(folder)
    except OSError as exc:
        return f"the folder cannot be read ({exc.strerror})"
    if not stat.S_ISDIR(st.st_mode):
        return "a link or not a folder" if stat.S_ISLNK(st.st_mode) else "not a folder"
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        return "a folder others can use"
    record = os.path.join(folder, LAUNCHER_FILE)
    try:
        if not stat.S_ISREG(os.lstat(record).st_mode):
            return f"its {LAUNCHER_FILE} entry is not a file"
        with open(record, "rb") as f:
            text = f.read(64)
    except OSError:
        return f"a folder without the launcher's record ({LAUNCHER_FILE})"
    return "" if text.strip() == ident.encode() else "a folder whose record names another launcher"


def stop_own_group(grace: float = 10.0) -> None:
    """Send TERM to this process's group when it leads one (a rank and the processes it started), else to this
    process; if it is still running after ``grace`` seconds, end it (status 143)."""
    pid = os.getpid()
    try:
        if os.getpgrp() == pid:
            os.killpg(pid, signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGTERM)
    except OSError:
        pass
    time.sleep(grace)
    os._exit(143)


def watch_launcher(launcher: Identity, interval: float = 1.0,
                   on_gone: Optional[Callable[[], None]] = None) -> threading.Thread:
    """A daemon thread that checks every ``interval`` seconds that ``launcher`` still runs (pid and start
    time); when it is gone, however it died, it logs one line and calls ``on_gone`` (default
    :func:`stop_own_group`). It needs no signal from the launcher, whose traps a kill -9 never runs."""

    def watch() -> None:
        while is_running(launcher):
            time.sleep(interval)
        logger.error("error: the launcher that started this process (pid %d) is gone: stopping this process and "
                     "its children", launcher[0])
        (on_gone or stop_own_group)()

    thread = threading.Thread(target=watch, name="launcher-watch", daemon=True)
    thread.start()
    return thread


def _registered(folder: str) -> Dict[int, str]:
    """The ranks registered in the launcher's folder: pid -> the start time it wrote."""
    found = {}
    try:
        with os.scandir(folder) as entries:
            names = [e.name for e in entries if e.name.isdigit() and e.is_file(follow_symlinks=False)]
    except OSError:
        return found
    for name in names:
        try:
            with open(os.path.join(folder, name), "rb") as f:
                text = f.read(64).strip()
        except OSError:
            continue
        if text.isdigit():
            found[int(name)] = text.decode()
    return found


def _carries(pid: int, marker: bytes) -> bool:
    """True when the environment process ``pid`` started with holds the line ``marker``."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read(8 << 20)
    except OSError:
        return False
    return env.startswith(marker + b"\0") or b"\0" + marker + b"\0" in env


class Guard:
    """Follows what a launcher started: every process whose environment carries the launcher's identity
    (``PSPNET_LAUNCHER``, exported before the launcher starts anything; found even once its parent is gone and
    it was handed to init), the launcher's children that lead a process group of their own (the launchers start
    each rank, or msrun, with setsid), the ranks registered in its folder, and every descendant of those by
    parent pid. While the launcher runs, its own process group (its helpers: sleep, subshells) is left alone. A
    process is remembered by pid and start time, so one that outlives its parent is still known."""

    def __init__(self, launcher: Identity, folder: Optional[str] = None):
        self.launcher, self.folder, self.me = launcher, folder, os.getpid()
        self.tracked: Dict[int, str] = {}
        self.marker = f"{LAUNCHER_VAR}={launcher[0]}:{launcher[1]}".encode()
        self.checked: Dict[Identity, bool] = {}  # whose environment was read, and whether it carries the marker
        self.launcher_group = -1

    def _marked(self, table: Dict[int, ProcInfo]) -> Iterator[Tuple[int, ProcInfo]]:
        born = int(self.launcher[1])
        self.checked = {k: v for k, v in self.checked.items() if is_running(k, table)}
        for pid, info in table.items():
            if info.state == "Z" or pid == self.me or int(info.start) < born:
                continue
            key = (pid, info.start)
            if key not in self.checked:
                self.checked[key] = _carries(pid, self.marker)
            if self.checked[key]:
                yield pid, info

    def scan(self) -> Dict[int, ProcInfo]:
        """Read /proc once: forget what ended, add what the launcher and the known processes started."""
        table = process_table()
        self.tracked = {p: s for p, s in self.tracked.items() if is_running((p, s), table)}
        lpid = self.launcher[0]
        launcher_runs = is_running(self.launcher, table)
        if launcher_runs:
            self.launcher_group = table[lpid].pgid
            for pid, info in table.items():
                if info.ppid == lpid and info.pgid == pid and pid != self.me and info.state != "Z":
                    self.tracked.setdefault(pid, info.start)
        for pid, info in self._marked(table):
            if not (launcher_runs and info.pgid == self.launcher_group):
                self.tracked.setdefault(pid, info.start)
        if self.folder:
            for pid, start in _registered(self.folder).items():
                if pid != self.me and is_running((pid, start), table):
                    self.tracked.setdefault(pid, start)
        children: Dict[int, List[int]] = {}
        for pid, info in table.items():
            if info.state != "Z" and pid != self.me:
                children.setdefault(info.ppid, []).append(pid)
        todo = list(self.tracked)
        while todo:
            for child in children.get(todo.pop(), ()):
                if child not in self.tracked:
                    self.tracked[child] = table[child].start
                    todo.append(child)
        return table

    def _signal(self, pid: int, start: str, sig: int) -> None:
        info = read_proc(pid)
        if info is None or info.start != start:
            return
        for send in ((os.killpg, os.kill) if info.pgid == pid else (os.kill,)):  # a group leader: its group too
            try:
                send(pid, sig)
                if sig == signal.SIGTERM:
                    send(pid, signal.SIGCONT)  # a stopped process acts on TERM only once it runs
            except OSError:
                pass

    def stop(self, grace: float, poll: float = 0.1) -> int:
        """TERM every process followed (and the group it leads), again for any that appears meanwhile; KILL what
        is left after ``grace`` seconds. Returns how many processes were signalled."""
        self.scan()
        signalled: Set[Identity] = set()
        deadline = time.monotonic() + grace
        while True:
            for pid, start in list(self.tracked.items()):
                if (pid, start) not in signalled:
                    self._signal(pid, start, signal.SIGTERM)
                    signalled.add((pid, start))
            if not self.tracked or time.monotonic() >= deadline:
                break
            time.sleep(poll)
            self.scan()
        end = time.monotonic() + 5
        while self.tracked and time.monotonic() < end:
            for pid, start in list(self.tracked.items()):
                self._signal(pid, start, signal.SIGKILL)
            time.sleep(poll)
            self.scan()
        return len(signalled)


def guard_launcher(launcher_pid: int) -> Identity:
    """The identity of the launcher a guard watches: its parent, which must be ``launcher_pid``."""
    ident = identity(os.getppid())
    if ident is None or ident[0] != launcher_pid:
        raise LauncherEnvError(f"launch-guard {launcher_pid}: that process is not this guard's parent; the "
                               f"launchers start their guard themselves (scripts/lib/launch.sh)")
    return ident


def guard(launcher: Identity, folder: Optional[str], grace: float, should_stop: Callable[[], bool],
          poll: float = 0.5) -> int:
    """Follow what ``launcher`` starts (:class:`Guard`) until ``should_stop()`` (the launcher's INT/TERM/HUP
    trap asked) or the launcher is gone; then stop all of it. Returns how many processes were signalled."""
    g = Guard(launcher, folder)
    checks = max(1, int(round(poll / 0.1)))
    while True:
        table = g.scan()
        if should_stop():
            reason = "asked to stop"
            break
        if not is_running(launcher, table):
            reason = f"the launcher (pid {launcher[0]}) is gone"
            break
        for _ in range(checks):
            if should_stop():
                break
            time.sleep(poll / checks)
    if g.tracked:
        logger.warning("%s: stopping %d process(es) it started", reason, len(g.tracked))
    return g.stop(grace)
