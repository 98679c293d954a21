"""One training run per ``train.save_dir``: a lock file naming its holder (pid, host, start time).

A second run on the same folder is refused with one line naming the holder.
A lock left by a process that no longer exists on this host (``kill -9``,
a power cut) is stale: it is taken over with a warning.  A lock held from
another host cannot be checked from here; it is refused, and the message
says which file to remove once that run is known to be gone.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Dict, Iterator, Optional

from src.errors import PSPNetError
from src.paths import ensure_output_dir

logger = logging.getLogger(__name__)

LOCK_NAME = ".run.lock"
MAX_LOCK_BYTES = 4096


class RunLockedError(PSPNetError, RuntimeError):
    """Another run holds the folder's lock."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:  # a zombie has exited: its lock is stale
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b") ")[-1][:1] != b"Z"
    except OSError:
        return True


def read_lock(path: Path) -> Optional[Dict]:
    """The holder recorded in a lock file, or None when the file is unreadable or not one of ours."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_LOCK_BYTES + 1)
        holder = json.loads(raw.decode("utf-8")) if len(raw) <= MAX_LOCK_BYTES else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int) or \
            not isinstance(holder.get("host"), str):
        return None
    return holder


def _describe(holder: Optional[Dict]) -> str:
    if holder is None:
        return "an unreadable lock"
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"pid {holder['pid']} on {holder['host'][:100]}, started {when}"


def acquire(save_dir: str | os.PathLike) -> Path:
    """Take ``<save_dir>/.run.lock`` for this process; returns its path, or raises :class:`RunLockedError`."""
    folder = ensure_output_dir(save_dir, "train.save_dir")
    path = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = read_lock(path)
            mine = holder is not None and holder["pid"] == me["pid"] and holder["host"] == me["host"]
            stale = holder is not None and holder["host"] == me["host"] and not _alive(holder["pid"])
            if mine or stale:
                if stale:
                    logger.warning("%s: taking over a stale lock (%s; that process no longer exists)", path,
                                   _describe(holder))
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            raise RunLockedError(f"train.save_dir {folder} is in use by another run ({_describe(holder)}); wait for "
                                 f"it, choose another train.save_dir, or remove {path} if that run is gone") from None
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES):
                raise RunLockedError(f"cannot lock train.save_dir {folder}: {exc.strerror}") from None
            raise
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        return path
    raise RunLockedError(f"cannot lock train.save_dir {folder}: {path} keeps changing (another run starting?)")


def release(path: Path) -> None:
    """Remove the lock if this process still holds it."""
    holder = read_lock(path)
    if holder is not None and holder["pid"] == os.getpid() and holder["host"] == socket.gethostname():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def hold_run_lock(save_dir: str | os.PathLike, enabled: bool = True) -> Iterator[Optional[Path]]:
    """``with hold_run_lock(save_dir):`` one run at a time in ``save_dir`` (``enabled`` False: no lock)."""
    if not enabled:
        yield None
        return
    path = acquire(save_dir)
    try:
        yield path
    finally:
        release(path)
