"""Rank tables for the classic Ascend launch: which devices and ranks this host runs.

``scripts/run_distribute_train.sh --rank-table`` calls
``python -m src rank-table TABLE [SERVER]`` and starts one process per
line it prints (``DEVICE_ID RANK_ID``), after a first line ``RANK_SIZE N``.
This host's entry of ``server_list`` is chosen by SERVER (an index into the
list or a ``server_id`` address) or, when SERVER is empty, by matching this
host's addresses.  A table whose ranks are not exactly 0..N-1, that repeats a
device on one server, or that names no server of this host is refused.
"""
from __future__ import annotations

import json
import re
import socket
import sys
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Set, Tuple

from src.errors import PSPNetError

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


if __name__ == "__main__":  # python -m src.launch rank-table TABLE [SERVER]: an alias of python -m src rank-table
    from src.cli import main

    sys.exit(main(sys.argv[2:] if sys.argv[1:2] == ["rank-table"] else ["--help"], command="rank-table"))
