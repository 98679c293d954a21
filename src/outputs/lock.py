"""One command at a time per output folder: an flock on its .run.lock."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import stat
import time
from pathlib import Path
from typing import Dict, Optional

from src.errors import shown
from src.outputs.atomic import _write_all, ensure_output_dir, read_small_file
from src.outputs.errors import RunLockedError

logger = logging.getLogger(__name__)

LOCK_NAME = ".run.lock"
MAX_LOCK_BYTES = 4096

# --- the lock -------------------------------------------------------------------------------------------------------
# A lock is an flock(2) on the folder's .run.lock, held by an open descriptor for the command's life: the kernel
# releases it when the holder dies, however it dies, so a lock is stale exactly when nobody holds it - no pid is
# judged. The file's text (host, pid, command, start) is for messages only. On a network file system Linux maps
# flock onto the server's byte-range locks (NFS), which hold across hosts only where the server supports them.


def read_lock(path: Path) -> Optional[Dict]:
    """The holder recorded in a lock file (for messages), or None when it is unreadable or not one of ours."""
    data = read_small_file(path, MAX_LOCK_BYTES)
    try:
        holder = json.loads(data.decode("utf-8")) if data else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int) or \
            not isinstance(holder.get("host"), str):
        return None
    return holder


def _describe(holder: Optional[Dict]) -> str:
    if holder is None:
        return "a holder that did not say who it is"
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) \
        if isinstance(started, (int, float)) and 0 <= started < 1e11 else "?"
    what = holder.get("command")
    return (f"{shown(what, 40) + ', ' if isinstance(what, str) else ''}pid {shown(holder['pid'], 30)} on "
            f"{shown(holder['host'], 100)}, started {when}")


class _Lock:
    """A held lock: the descriptor whose flock it is, and the lock file's path (for messages and release)."""

    def __init__(self, fd: int, path: Path, dir_fd: int) -> None:
        self.fd, self.path, self.dir_fd = fd, path, dir_fd

    def release(self) -> None:
        """Remove the lock file while still holding it, then let it go (idempotent)."""
        if self.fd < 0:
            return
        with contextlib.suppress(OSError):
            st, now = os.fstat(self.fd), os.stat(LOCK_NAME, dir_fd=self.dir_fd, follow_symlinks=False)
            if (st.st_ino, st.st_dev) == (now.st_ino, now.st_dev) and st.st_nlink == 1:
                os.unlink(LOCK_NAME, dir_fd=self.dir_fd)
        os.close(self.fd)
        self.fd = -1


def _lock_in(dir_fd: int, folder: Path, what: str, command: str) -> _Lock:
    """Take the lock of the folder open as ``dir_fd``: one :class:`RunLockedError` line when another command holds
    it, or when ``.run.lock`` is not a regular file (a FIFO there would have blocked the opener forever)."""
    path = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "command": command}
    for _ in range(5):
        try:
            fd = os.open(LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644,
                         dir_fd=dir_fd)
        except OSError as exc:
            kind = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
            raise RunLockedError(f"cannot lock {what} {folder}: {path}: {kind}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise RunLockedError(f"cannot lock {what} {folder}: {path} is not a regular file (a FIFO, a device or "
                                     f"a socket?); this program never makes one: remove it")
            if st.st_nlink > 1 or (st.st_size and read_lock(path) is None):
                raise RunLockedError(f"cannot lock {what} {folder}: {path} is not a lock this program wrote ("
                                     f"{'another name links to it' if st.st_nlink > 1 else 'it holds something else'}"
                                     f"); it is left as it is: move it away")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunLockedError(f"{what} {folder} is in use by another run ({_describe(read_lock(path))}); "
                                     f"wait for it or choose another folder") from None
            try:  # the name may have been released (unlinked) between our open and our lock: lock the file it names
                now = os.stat(LOCK_NAME, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                now = None
            if now is None or (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
                os.close(fd)
                continue
            if st.st_size:
                earlier = read_lock(path)
                if earlier is not None:
                    logger.warning("%s: taking over a lock its holder did not release (%s; no process holds it)",
                                   path, _describe(earlier))
            os.ftruncate(fd, 0)
            _write_all(fd, json.dumps(me).encode("utf-8"))
            return _Lock(fd, path, dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
    raise RunLockedError(f"cannot lock {what} {folder}: {path} keeps changing (another run starting?)")


def acquire(folder: str | os.PathLike, what: str = "train.save_dir", command: str = "train") -> _Lock:
    """Take ``<folder>/.run.lock`` for this process (a folder opened by path: for callers without an
    :class:`OutputFolder`); release it with ``.release()``."""
    folder = ensure_output_dir(folder, what)
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        lock = _lock_in(dir_fd, Path(folder), what, command)
    except BaseException:
        os.close(dir_fd)
        raise
    lock.own_dir = True  # type: ignore[attr-defined]
    return lock


def release(lock: "_Lock") -> None:
    """Let a lock from :func:`acquire` go."""
    lock.release()
    if getattr(lock, "own_dir", False):
        with contextlib.suppress(OSError):
            os.close(lock.dir_fd)
        lock.own_dir = False  # type: ignore[attr-defined]
