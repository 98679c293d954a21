"""Files placed by path: checks, free space, atomic writes (a temporary name, flushed, then renamed), whole-line
appends, small reads, removals of what this program made."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator, Optional

from src.errors import read_upto, shown
from src.outputs.errors import OutputPathError, WriteFailedError


PART = ".part"  # temporary files: .<name>.<random>.part in the target's folder
PARTIAL_RE = re.compile(r"^\.(.+)\.[0-9a-f]{8}\.part$")  # exactly what OutputFolder._temporary makes


# --- checks -------------------------------------------------------------------------------------------------------

def ensure_output_dir(path: str | os.PathLike, what: str) -> Path:
    """Create ``path`` (and parents) if needed and prove it is writable; ``what`` names the option for messages."""
    path = Path(path)
    for parent in (path, *path.parents):
        if parent.exists() and not parent.is_dir():
            raise OutputPathError(f"{what} {path}: {parent} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write_test_"):
            pass
    except OSError as exc:
        raise OutputPathError(f"{what} {path}: cannot write there ({exc.strerror or exc})") from None
    return path


def ensure_output_file(path: str | os.PathLike, what: str) -> Path:
    """Check that the file ``path`` can be written: its folder is writable, ``path`` is no folder and no link."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{what} {path}: is a folder; give a file name")
    refuse_link(path, what)
    ensure_output_dir(path.parent if str(path.parent) else Path("."), what)
    return path


def refuse_link(path: str | os.PathLike, what: str = "output") -> None:
    """One :class:`OutputPathError` when ``path`` is a symbolic link: nothing is ever written through one."""
    if os.path.islink(path):
        raise OutputPathError(f"{what} {path} is a symbolic link (to {shown(os.readlink(path), 300)}); refusing to "
                              f"write through it: remove the link or choose another name")


def free_bytes(path: str | os.PathLike) -> int:
    """Free space on the file system holding ``path`` (its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


@contextmanager
def output_writes(out_dir: str | os.PathLike, kept: str) -> Iterator[None]:
    """Turn an OSError (a full disk, a folder made read-only) while writing into ``out_dir`` into one
    :class:`OutputPathError` that names the file, the reason and ``kept``: what is not lost."""
    try:
        yield
    except WriteFailedError as exc:
        raise WriteFailedError(f"{exc}; {kept}") from None
    except OutputPathError:
        raise
    except OSError as exc:
        where = exc.filename or out_dir
        raise OutputPathError(f"cannot write {where}: {exc.strerror or exc} ({free_bytes(out_dir) / 2**20:.1f} MiB "
                              f"free in {out_dir}); {kept}") from None


# --- atomic writes --------------------------------------------------------------------------------------------------

def _umask_mode(mode: int = 0o666) -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = PART) -> Iterator[str]:
    """Yield a temporary file name beside ``path``; when the block succeeds it is flushed and renamed onto
    ``path`` with ordinary permissions. Any failure removes it and leaves ``path`` as it was."""
    path = Path(path)
    refuse_link(path)
    if path.is_dir():
        raise OutputPathError(f"{path} is a folder; cannot write a file there")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=str(path.parent))
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except OutputPathError:
        raise
    except OSError as exc:
        raise WriteFailedError(f"cannot write {path}: {exc.strerror or exc} ({free_bytes(path.parent) / 2**20:.1f} "
                               f"MiB free); nothing was replaced: an earlier file of that name is intact") from None
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)


def write_bytes(path: str | os.PathLike, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically; returns its SHA-256."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def write_text(path: str | os.PathLike, text: str) -> str:
    """Write UTF-8 ``text`` atomically; returns its SHA-256."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any, indent: Optional[int] = 1) -> str:
    """Write ``obj`` as JSON atomically; returns its SHA-256."""
    return write_text(path, json.dumps(obj, indent=indent))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 4 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd``, continuing after a short write (an error stops it)."""
    view = memoryview(data)
    while view:
        done = os.write(fd, view)
        if done <= 0:
            raise OSError(errno.EIO, "a write wrote nothing")
        view = view[done:]


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append ``line`` + newline with one ``write`` (whole lines, even from several processes); never through a
    symbolic link."""
    _append_record(None, str(path), line)


def _open_for_append(name: str | os.PathLike, dir_fd: Optional[int] = None, shown_as: Optional[str] = None,
                     create: bool = True) -> int:
    """A descriptor appending to the file ``name`` (of the folder ``dir_fd``; a log or a manifest; messages call it
    ``shown_as``), checked on the open file: opened without following a link or waiting on a FIFO (read-write: a
    FIFO opens at once, and is refused, where write-only would wait or fail), and refused unless it is a regular
    file with no other name; nothing is truncated or written before that check."""
    label = shown(shown_as or name, 300)
    try:
        fd = os.open(name, os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0) | os.O_NOFOLLOW | os.O_NONBLOCK
                     | os.O_CLOEXEC, _umask_mode(), dir_fd=dir_fd)
    except OSError as exc:
        raise OutputPathError(f"{label}: cannot append to it ("
                              f"{'a symbolic link' if exc.errno == errno.ELOOP else exc.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        os.close(fd)
        raise OutputPathError(f"{label} is not a regular file (a FIFO?); this program never makes one: remove it"
                              if not stat.S_ISREG(st.st_mode) else f"{label} has another name linked to it (a file "
                              f"of yours?): not a file this program keeps; it is left as it is: move it away")
    os.set_blocking(fd, True)
    return fd



RANK_FILE_ATTR = "user.pspnet_rank_file"  # marks the per-rank files of ranks other than 0 (no manifest records them)


def claim_rank_file(path: str | os.PathLike, fresh: bool) -> str:
    """A file of a rank other than 0 (its log, its records of bad samples): made here with a mark, or an earlier
    one of this program's (it carries the mark) emptied in place when ``fresh``. A file of the user's at that name
    is refused, never replaced, emptied or appended to; where the file system keeps no marks, only an empty file
    is taken over."""
    refuse_link(Path(path).parent, "the folder of a rank's file")
    ensure_output_dir(Path(path).parent, "the folder of a rank's file")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, _umask_mode())
    except FileExistsError:
        fd = _open_for_append(path)
        if not _rank_mark_ok(fd):
            os.close(fd)
            raise OutputPathError(f"{shown(path, 300)} was not written by this program (a file of yours?; where the "
                                  f"file system keeps no extended attributes this program cannot tell, so only an "
                                  f"empty file is taken): it is left as it is; move it away") from None
        if fresh:
            os.ftruncate(fd, 0)
    except OSError as exc:
        raise OutputPathError(f"{shown(path, 300)}: cannot make it ({exc.strerror})") from None
    else:
        with contextlib.suppress(OSError):
            os.setxattr(fd, RANK_FILE_ATTR, b"1")
    os.close(fd)
    return str(path)


def _rank_mark_ok(fd: int) -> bool:
    """The open file carries the rank files' mark, or is empty where the file system keeps no marks."""
    try:
        return os.getxattr(fd, RANK_FILE_ATTR) == b"1"
    except OSError as exc:
        return exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP) and os.fstat(fd).st_size == 0

def clear_log(path: str | os.PathLike) -> None:
    """Empty a log file in place (its inode, which records it as this run's, stays); never through a link."""
    fd = _open_for_append(path)
    try:
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def open_append(path: str | os.PathLike) -> IO[str]:
    """A text stream appending to ``path`` (a log file), never through a symbolic link or into a FIFO."""
    path = Path(path)
    refuse_link(path, "log file")
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = os.fdopen(_open_for_append(path), "a", encoding="utf-8", buffering=1)
    stream.buffer.raw.name = str(path)  # its name, not the descriptor's number, in messages
    return stream


def read_small_file(path: str | os.PathLike, max_bytes: int) -> Optional[bytes]:
    """The bytes of ``path`` when it is a regular file of at most ``max_bytes`` (None otherwise: missing, a
    symbolic link, a FIFO, a device, too large): opened once without following a link or blocking, and the open
    file is what is checked and read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
        os.close(fd)
        return None
    data = b"".join(read_upto(fd, st.st_size, max_bytes))  # closes fd
    return data if len(data) <= max_bytes else None


@contextmanager
def private_folder() -> Iterator[str]:
    """A temporary folder only this process uses (a converted model), removed with everything in it at the end."""
    folder = tempfile.mkdtemp(prefix="pspnet_")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _append_record(dir_fd: Optional[int], name: str, line: str) -> None:
    """Append one whole line to the file ``name`` of the folder ``dir_fd`` (a manifest or a log): never through a
    link, never blocking on a FIFO; a line an earlier failure cut short is ended first, and a short write is
    continued until the line is whole."""
    fd = _open_for_append(name, dir_fd)
    try:
        data = (line.rstrip("\n") + "\n").encode("utf-8")
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        _write_all(fd, data)
    finally:
        os.close(fd)
