"""The one owner of every file the project writes: atomic writes, no symlinks followed, ownership by manifest.

Rules (README "Nothing lost"; docs/RELIABILITY.md):

- Every file goes to a temporary name in its own folder, is flushed to disk, recorded, then placed: with a
  link that cannot replace (a file that appeared meanwhile is refused), or, over an earlier own file re-checked at
  that moment, a rename. A failed write leaves the previous file (or nothing) and is one :class:`OutputPathError`.
- An output folder (:class:`OutputFolder`) is opened once; everything below it is reached through that handle and
  sub-folder handles opened without following links, so a symbolic link anywhere below is refused before
  anything is written or removed, and a FIFO where a file is expected is refused, never waited on.
- It records what this program wrote there in ``.pspnet_outputs.jsonl`` (name, size, SHA-256, the command). A
  command replaces or removes only files its own kind wrote, listed there and unchanged since; anything else in
  the folder, a user's file that collides with an output's name included, is left alone and named.
- One command at a time per output folder: an flock on ``.run.lock`` held for the command's life; the kernel lets
  it go however the holder ends, so a lock nobody holds is simply taken (the file's text names the holder, for
  messages only).

``tests/test_architecture.py`` fails when code outside this module writes, renames or removes files.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import logging
import os
import stat
import re
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from src.errors import PSPNetError, shown

logger = logging.getLogger(__name__)

MANIFEST = ".pspnet_outputs.jsonl"
LOCK_NAME = ".run.lock"
MAX_LOCK_BYTES = 4096
MAX_MANIFEST_BYTES = 512 << 20  # about 2 million live outputs; compaction keeps it near that count
COMPACT_BYTES, COMPACT_SLACK = 1 << 20, 1000  # a manifest past both is rewritten with its live entries
PART = ".part"  # temporary files: .<name>.<random>.part in the target's folder
PARTIAL_RE = re.compile(r"^\.(.+)\.[0-9a-f]{8}\.part$")  # exactly what OutputFolder._temporary makes


class OutputPathError(PSPNetError, OSError):
    """An output folder or file that cannot be written; the message names the option and the path."""


class OutputExistsError(OutputPathError):
    """An earlier result (or a file this program did not write) would be replaced."""


class WriteFailedError(OutputPathError):
    """A write that failed (a full disk, an I/O error): the earlier file of that name is intact."""


class RunLockedError(OutputPathError):
    """Another command holds the output folder's lock."""


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


def encode_image(path: str | os.PathLike, image: np.ndarray, params: Sequence[int] = ()) -> bytes:
    """``image`` encoded by ``path``'s extension (OpenCV); an encoder failure is an OSError naming the file."""
    import cv2

    ok, encoded = cv2.imencode(Path(path).suffix, image, list(params))
    if not ok:
        raise OSError(errno.EINVAL, "OpenCV cannot encode it", str(path))
    return encoded.tobytes()


def palette_png(label: np.ndarray, palette: np.ndarray) -> bytes:
    """Class indices as a palette PNG (VOC style: the pixel values are the indices)."""
    from PIL import Image

    im = Image.fromarray(label.astype(np.uint8), mode="P")
    im.putpalette(palette.reshape(-1).tolist())
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def index_png(index: np.ndarray) -> bytes:
    """Single-channel class indices (uint8) as grayscale PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(index.astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def figure_bytes(fig, path: str | os.PathLike) -> bytes:
    """A matplotlib figure rendered in the format of ``path``'s extension."""
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png")
    return buf.getvalue()


def write_figure(path: str | os.PathLike, fig) -> str:
    """Render ``fig`` and write it atomically."""
    return write_bytes(path, figure_bytes(fig, path))


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` in numpy's ``.npy`` format (what ``np.save`` writes)."""
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 4 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_to(entries: List[Dict], tmp: str, path: str | os.PathLike) -> None:
    """``ms.save_checkpoint(entries)`` into the temporary file ``tmp`` (for ``path``; a failure names it)."""
    import mindspore as ms

    try:
        ms.save_checkpoint(entries, tmp)
    except RuntimeError as exc:  # MindSpore wraps a failed write in a RuntimeError
        raise OSError(errno.EIO, str(exc).splitlines()[0][:300] if str(exc) else "write failed", str(path))
    finally:
        with contextlib.suppress(OSError):
            os.remove(os.path.splitext(tmp)[0] + ".tmp")  # MindSpore's own temporary file


def save_checkpoint_file(entries: List[Dict], path: str | os.PathLike) -> str:
    """``ms.save_checkpoint(entries)`` into ``path`` atomically; returns the file's SHA-256."""
    with atomic_path(path, suffix=".part.ckpt") as tmp:
        checkpoint_to(entries, tmp, path)
        digest = file_sha256(tmp)
    return digest


def export_to(writer: Callable[[str], None], tmp: str, path: str | os.PathLike,
              check: Optional[Callable[[str], None]] = None) -> None:
    """Run an exporter in a private temporary folder beside ``tmp``, check its file there, then copy it into the
    temporary file ``tmp`` (for ``path``).

    ``writer(base)`` must write ``base + <path's extension>``; ``check(file)`` may raise to refuse it (nothing
    is then placed). MindSpore's exporter changes the mode of the folder it writes into (0700) and leaves the
    file 0400: both stay confined to the private folder.
    """
    private = tempfile.mkdtemp(prefix=f".{Path(path).name}.", suffix=".export", dir=os.path.dirname(tmp) or ".")
    try:
        base = os.path.join(private, "model")
        writer(base)
        made = base + Path(path).suffix
        if not os.path.isfile(made) or os.path.islink(made):
            raise OSError(errno.ENOENT, "the exporter reported no error but wrote no file", str(path))
        if check is not None:
            check(made)
        shutil.copyfile(made, tmp)
    finally:
        os.chmod(private, 0o700)
        shutil.rmtree(private, ignore_errors=True)


def export_files(writer: Callable[[str], None], path: str | os.PathLike,
                 check: Optional[Callable[[str], None]] = None) -> str:
    """:func:`export_to` placed at ``path`` atomically (a file arriving with ordinary permissions); returns its
    SHA-256."""
    path = Path(path)
    refuse_link(path, "--file_name")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        export_to(writer, tmp, path, check)
    return file_sha256(path)


def written_file(writer: Callable[[str], None], path: str | os.PathLike) -> str:
    """Let a third-party writer that wants a file name (a video encoder, which picks its container by the
    extension) write a temporary file beside ``path``, then place it atomically; returns its SHA-256.

    ``writer(tmp)`` writes ``tmp``, whose name ends in ``path``'s extension. When it raises, or leaves no
    non-empty regular file, nothing is placed and an earlier file of that name is intact.
    """
    path = Path(path)
    with atomic_path(path, suffix=PART + path.suffix) as tmp:
        writer(tmp)
        if os.path.islink(tmp) or not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
            raise OSError(errno.EIO, "the writer reported no error but left no file", str(path))
        digest = file_sha256(tmp)
    return digest


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


def clear_log(path: str | os.PathLike) -> None:
    """Empty a log file in place (its inode, which records it as this run's, stays); never through a link."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, _umask_mode())
    os.close(fd)


def open_append(path: str | os.PathLike) -> IO[str]:
    """A text stream appending to ``path`` (a log file), never through a symbolic link."""
    path = Path(path)
    refuse_link(path, "log file")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, _umask_mode())
    stream = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
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
        if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
            return None
        chunks, left = [], max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        return data if len(data) <= max_bytes else None
    finally:
        os.close(fd)


def remove_file(path: str | os.PathLike) -> bool:
    """Remove one file this program wrote (callers decide that); True if it was there."""
    try:
        os.remove(path)
        return True
    except FileNotFoundError:
        return False


def remove_temporary(folder: str | os.PathLike, is_partial: Callable[[str], bool]) -> List[Path]:
    """Delete the temporary files an interrupted write left in ``folder`` (names ``is_partial`` accepts)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = [p for p in folder.iterdir() if p.is_file() and not p.is_symlink() and is_partial(p.name)]
    for p in removed:
        p.unlink()
        logger.warning("removed a partial file left by an interrupted save: %s", p)
    return removed


@contextmanager
def private_folder() -> Iterator[str]:
    """A temporary folder only this process uses (a converted model), removed with everything in it at the end."""
    folder = tempfile.mkdtemp(prefix="pspnet_")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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


# --- ownership: the manifest ------------------------------------------------------------------------------------------

# Commands that share one folder as one kind (the 310 flow's steps write into one work folder); every other command
# is its own kind: --overwrite replaces or removes only files its own kind wrote.
COMMAND_KINDS = {"preprocess": "310 flow", "infer": "310 flow", "postprocess": "310 flow", "flow310": "310 flow",
                 "report": "eval"}


def command_kind(command: Optional[str]) -> Optional[str]:
    """The kind a command's outputs belong to (None for records older than the command field)."""
    return COMMAND_KINDS.get(command, command) if isinstance(command, str) else None


def _parse_manifest(raw: bytes, where: Path) -> Tuple[Dict[str, Dict], int]:
    """Entries and line count of a manifest's bytes. A line cut short (a full disk, a kill mid-write) or glued to the
    next record is recovered record by record; what cannot be read is skipped with a warning."""
    entries: Dict[str, Dict] = {}
    bad = lines = 0
    for line in raw.decode("utf-8", errors="replace").split("\n"):
        if not line.strip():
            continue
        lines += 1
        pieces = [line] if line.startswith('{"name"') and line.count('{"name"') == 1 else \
            ['{"name"' + p for p in line.split('{"name"')[1:]]
        for piece in pieces:
            try:
                rec = json.loads(piece)
                name = rec["name"]
                if not isinstance(name, str) or not name or len(name) > 4096 or "\0" in name or \
                        name.startswith("/") or any(p in ("..", ".", "") or len(p.encode()) > 255
                                                    for p in name.split("/")):
                    raise ValueError(name)
            except (ValueError, KeyError, TypeError, RecursionError):
                bad += 1
                continue
            if rec.get("removed"):
                entries.pop(name, None)
            else:
                entries[name] = rec
    if bad >= 2 and bad * 2 > lines:
        raise OutputPathError(f"{where}: {bad} of its {lines} lines are no record of this program: it is not a manifest "
                              f"this program wrote; it is left as it is: move it away (with the folder's outputs)")
    if bad:
        logger.warning("%s: skipped %d unreadable record(s) (a write cut short?)", where, bad)
    return entries, lines


def _read_regular(dir_fd: Optional[int], name: str | os.PathLike, max_bytes: int, what: str) -> Optional[bytes]:
    """The bytes of a file the program keeps (a manifest): None when absent; one line when it is a link, not a
    regular file, or larger than ``max_bytes``. Opened once, without following a link or blocking on a FIFO."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputPathError(f"{what}: cannot read it ({'a symbolic link' if exc.errno == errno.ELOOP else exc.strerror})"
                              f"; this program never writes one: remove it") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OutputPathError(f"{what} is not a regular file (a FIFO, a device or a socket?); this program never "
                                  f"writes one: remove it")
        if st.st_nlink > 1:
            raise OutputPathError(f"{what} has another name linked to it: not a file this program keeps; it is left as "
                                  f"it is: move it away")
        if st.st_size > max_bytes:
            raise OutputPathError(f"{what} is larger than {max_bytes >> 20} MiB; this program compacts its manifests "
                                  f"long before: it is not one of its own (move it away, with the folder's outputs)")
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 22)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def read_manifest(folder: str | os.PathLike) -> Dict[str, Dict]:
    """``name -> record`` of the files this program wrote in ``folder`` and did not remove (read by path: for
    callers that hold no :class:`OutputFolder`)."""
    raw = _read_regular(None, Path(folder) / MANIFEST, MAX_MANIFEST_BYTES, str(Path(folder) / MANIFEST))
    return _parse_manifest(raw, Path(folder) / MANIFEST)[0] if raw else {}


def _append_record(dir_fd: Optional[int], name: str, line: str) -> None:
    """Append one whole line to the file ``name`` of the folder ``dir_fd`` (a manifest or a log): never through a
    link, never blocking on a FIFO; a line an earlier failure cut short is ended first, and a short write is
    continued until the line is whole."""
    fd = os.open(name, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                 _umask_mode(), dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OutputPathError(f"{name} is not a regular file (a FIFO?); this program never makes one: remove it")
        if st.st_nlink > 1:
            raise OutputPathError(f"{name} has another name linked to it: not a file this program keeps; it is left "
                                  f"as it is: move it away")
        data = (line.rstrip("\n") + "\n").encode("utf-8")
        if st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
            data = b"\n" + data
        _write_all(fd, data)
    finally:
        os.close(fd)


class OutputFolder:
    """One command's output folder: its lock, its manifest, and every write into it.

    The folder is opened once; every open, stat, link, rename and removal below it is relative to that handle
    and to sub-folder handles opened one level at a time without following a link, so a symbolic link anywhere
    below is refused before anything is written or removed. A file is placed under its final name with a link
    that cannot replace (a file that appeared meanwhile is refused), or, for an earlier own file re-checked at that
    moment, a rename. ``overwrite`` allows replacing files an earlier run of this command's kind wrote (listed in
    the manifest and unchanged since); files it did not write are never replaced or removed. Outputs written with
    ``unique=True`` (pictures) may not be written twice in one run.
    """

    def __init__(self, root: str | os.PathLike, what: str, command: str, overwrite: bool = False,
                 lock: bool = True) -> None:
        self.root, self.what, self.command = Path(root), what, command
        self.overwrite, self.lock = overwrite, lock
        self.entries: Dict[str, Dict] = {}
        self.written: set = set()
        self._lock: Optional[_Lock] = None
        self._fd = -1
        self._lines = 0

    def __enter__(self) -> "OutputFolder":
        ensure_output_dir(self.root, self.what)
        self._fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if self.lock:
                self._lock = _lock_in(self._fd, self.root, self.what, self.command)
            raw = _read_regular(self._fd, MANIFEST, MAX_MANIFEST_BYTES, str(self.root / MANIFEST))
            self.entries, self._lines = _parse_manifest(raw, self.root / MANIFEST) if raw else ({}, 0)
            self._compact()
            if self._lock is not None:  # what an interrupted write of this program left, in every folder it wrote
                for sub in sorted({str(Path(n).parent) for n in self.entries}):
                    with contextlib.suppress(OutputPathError):
                        self.remove_partials("" if sub == "." else sub)
        except BaseException:
            self.close()
            raise
        return self

    def _compact(self) -> None:
        """Rewrite the manifest with its live entries once most of its lines are history (a folder reused by many
        runs, a run of many files replaced); only under the lock, so no other process appends meanwhile."""
        if self._lock is None or self._lines <= 2 * len(self.entries) + COMPACT_SLACK:
            return
        text = "".join(json.dumps(rec) + "\n" for rec in self.entries.values())
        with self._dir(MANIFEST, create=False) as (dir_fd, leaf):
            self._place_bytes(dir_fd, leaf, text.encode("utf-8"), replace=True)
        self._lines = len(self.entries)

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # an unlocked folder opened by as_folder() for one call: its handle goes with it
        with contextlib.suppress(Exception):
            self.close()

    def close(self) -> None:
        """Release the lock and the folder's handle (idempotent)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # handles
    @staticmethod
    def _parts(name: str) -> Tuple[str, ...]:
        parts = Path(name).parts
        if not parts or Path(name).is_absolute() or ".." in parts or "." in parts:
            raise OutputPathError(f"output name {shown(name)} is not a plain path inside its folder")
        return parts

    @contextmanager
    def _dir(self, name: str, create: bool = True) -> Iterator[Tuple[Optional[int], str]]:
        """``(handle of the folder holding name, name's last part)``; folders on the way are opened one at a time
        without following a link (one line naming it when one is a link or a file) and created when ``create``.
        The handle is None when a folder on the way does not exist (and ``create`` is off)."""
        if self._fd < 0:
            raise OutputPathError(f"{self.what} {self.root}: the folder is not open")
        parts = self._parts(name)
        fd, opened = self._fd, []
        try:
            for i, part in enumerate(parts[:-1]):
                try:
                    fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        yield None, parts[-1]
                        return
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o777, dir_fd=fd)
                    fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                except OSError as exc:
                    sub = self.root.joinpath(*parts[:i + 1])
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise OutputPathError(f"cannot open {sub}: {exc.strerror}") from None
                    if os.path.islink(sub):
                        raise OutputPathError(f"{sub} is a symbolic link (to {shown(os.readlink(sub), 300)}); refusing "
                                              f"to work through it on {name}: remove the link or choose another "
                                              f"folder") from None
                    raise OutputPathError(f"{sub} is not a folder; cannot work on {name} there") from None
                opened.append(fd)
            yield fd, parts[-1]
        finally:
            for d in opened:
                os.close(d)

    @staticmethod
    def _lstat(dir_fd: Optional[int], leaf: str) -> Optional[os.stat_result]:
        if dir_fd is None:
            return None
        try:
            return os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise OutputPathError(f"cannot look at {shown(leaf, 100)}: {exc.strerror}") from None

    # what is here
    def check_folder(self, sub: str) -> Path:
        """``root/sub`` as a folder this command may work in: neither it nor a folder between is a link or a file."""
        with self._dir(f"{sub.rstrip('/')}/.probe", create=False):
            pass
        return self.root / sub

    def remove_partials(self, sub: str = "") -> List[Path]:
        """Remove the temporary files an interrupted write of *this program* left in ``root/sub``: exact
        ``.<name>.<8 random>.part[.<ext>]`` names whose ``<name>`` this folder's manifest lists."""
        prefix = f"{sub.rstrip('/')}/" if sub else ""
        removed = []
        with self._dir(f"{prefix}.probe", create=False) as (dir_fd, _):
            if dir_fd is None:
                return []
            for entry in os.scandir(dir_fd):
                m = PARTIAL_RE.match(entry.name)
                if not (m and f"{prefix}{m.group(1)}" in self.entries):
                    continue
                if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_nlink == 1:
                    os.unlink(entry.name, dir_fd=dir_fd)
                elif entry.is_dir(follow_symlinks=False):  # a writer's private staging folder (0700, ours)
                    sub = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
                    try:
                        for inner in os.listdir(sub):
                            with contextlib.suppress(OSError):
                                os.unlink(inner, dir_fd=sub)
                    finally:
                        os.close(sub)
                    with contextlib.suppress(OSError):
                        os.rmdir(entry.name, dir_fd=dir_fd)
                else:
                    continue
                removed.append(self.root / f"{prefix}{entry.name}")
                logger.warning("removed a partial file left by an interrupted save: %s", removed[-1])
        return removed

    def sub(self, prefix: str) -> "SubFolder":
        """The outputs under ``prefix/``, written through this folder."""
        return SubFolder(self, prefix)

    def path(self, name: str) -> Path:
        """The full path of output ``name`` (a path relative to the folder)."""
        return self.root / name

    def _mine(self, rec: Dict) -> bool:
        """Whether a record is of this command's kind (a record without one, edited by hand, is nobody's)."""
        kind = command_kind(rec.get("command"))
        return kind is not None and kind == command_kind(self.command)

    def owned(self, names: Optional[Iterable[str]] = None, any_kind: bool = False) -> List[str]:
        """Names in the manifest that still exist (all, or those among ``names``/prefixes ending in ``/``), written
        by this command's kind (or any kind with ``any_kind``)."""
        wanted = list(names) if names is not None else None
        found = []
        for name in sorted(self.entries):
            if wanted is not None and not any(name == n or (n.endswith("/") and name.startswith(n)) for n in wanted):
                continue
            if not any_kind and not self._mine(self.entries[name]):
                continue
            with self._dir(name, create=False) as (dir_fd, leaf):  # a link on the way: one line, nothing done
                if self._lstat(dir_fd, leaf) is not None:
                    found.append(name)
        return found

    def unchanged(self, name: str) -> bool:
        """True when ``name`` is in the manifest and the file on disk is what this program wrote."""
        rec = self.entries.get(name)
        if rec is None:
            return False
        try:
            with self._dir(name, create=False) as (dir_fd, leaf):
                return self._matches(dir_fd, leaf, rec)
        except OutputPathError:
            return False

    def _matches(self, dir_fd: Optional[int], leaf: str, rec: Dict) -> bool:
        """The file ``leaf`` of ``dir_fd`` is the one ``rec`` describes (checked on the open file, not the name)."""
        st = self._lstat(dir_fd, leaf)
        if st is None:
            return False
        if rec.get("kind") == "link":
            return stat.S_ISLNK(st.st_mode) and os.readlink(leaf, dir_fd=dir_fd) == rec.get("target")
        if not stat.S_ISREG(st.st_mode):
            return False
        if rec.get("kind") == "log":  # appended by this run's processes: our mark on it (a copy with cp -a keeps it),
            if rec.get("mark") is not None:  # or, for records older than marks, the same file
                return _has_mark(dir_fd, leaf, rec["mark"])
            return rec.get("ino") is not None and (st.st_ino, st.st_dev) == (rec.get("ino"), rec.get("dev"))
        before = rec.get("replaces")
        if isinstance(before, dict) and self._matches(dir_fd, leaf, {**before, "kind": "file"}):
            return True
        if st.st_size != rec.get("size"):
            return False
        if st.st_mtime_ns == rec.get("mtime_ns") and st.st_ino == rec.get("ino", st.st_ino):
            return True
        try:
            fd = os.open(leaf, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return False
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return False
            h = hashlib.sha256()
            for block in iter(lambda: f.read(4 << 20), b""):
                h.update(block)
        return h.hexdigest() == rec.get("sha256")

    def refuse_earlier(self, names: Iterable[str], hint: str) -> None:
        """Refuse (one line) when an earlier run's outputs among ``names`` exist and ``overwrite`` is off; outputs
        of another command's kind are refused even with ``overwrite`` (they are not this command's to replace)."""
        names = list(names)
        others = [n for n in self.owned(names, any_kind=True) if not self._mine(self.entries[n])]
        if others:
            by = sorted({str(self.entries[n].get("command")) for n in others})
            raise OutputExistsError(f"{self.what} {self.root} holds the outputs of `{'`, `'.join(by)}` "
                                    f"({self._listed(others)}), not of `{self.command}`: they are left as they are; "
                                    f"choose another folder")
        earlier = [n for n in self.owned(names) if n not in self.written]  # this run's own outputs are not earlier
        if earlier and not self.overwrite:
            raise OutputExistsError(f"{self.what} {self.root} holds an earlier result ({self._listed(earlier)}); {hint}")

    @staticmethod
    def _listed(names: List[str]) -> str:
        return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")

    def refuse_foreign(self, names: Iterable[str]) -> None:
        """Refuse (one line) when any of ``names`` exists and this program did not write it."""
        for name in names:
            self.claim(name, check_only=True)

    # claiming and recording
    def claim(self, name: str, kind: str = "file", check_only: bool = False, unique: bool = False) -> Path:
        """The path for output ``name``, after checking it may be (re)written; folders below are created.

        ``unique``: ``name`` must not have been written already in this run (one picture per image: two
        inputs whose outputs share a name would silently keep only the second). The check is repeated on the
        file itself at the moment it is placed."""
        path = self.root / name
        if unique and name in self.written and not check_only:
            raise OutputExistsError(f"two outputs named {path} in one run: the second would replace the first")
        with self._dir(name, create=not check_only) as (dir_fd, leaf):
            self._check_replaceable(dir_fd, leaf, name)
        return path

    def _check_replaceable(self, dir_fd: Optional[int], leaf: str, name: str) -> Optional[os.stat_result]:
        """Refuse (one line) unless ``name`` is absent or an unchanged output of this command's kind; returns what
        is there now."""
        st = self._lstat(dir_fd, leaf)
        if st is None:
            return None
        path, rec = self.root / name, self.entries.get(name)
        if stat.S_ISLNK(st.st_mode) and (rec or {}).get("kind") != "link":
            raise OutputPathError(f"{path} is a symbolic link (to {shown(os.readlink(leaf, dir_fd=dir_fd), 300)}); "
                                  f"refusing to write through it: remove the link or choose another name")
        if rec is None:
            raise OutputExistsError(f"{path} exists and was not written by this program; it is left as it is: move it "
                                    f"away or choose another folder")
        if not self._mine(rec):
            raise OutputExistsError(f"{path} was written by `{shown(rec.get('command'), 40)}`, not by "
                                    f"`{self.command}`; it is left as it is: choose another folder")
        if not self._matches(dir_fd, leaf, rec):
            copied = " (or copied or moved without its extended attributes: `cp -a` keeps them)" \
                if rec.get("kind") == "log" else ""
            raise OutputExistsError(f"{path} was changed after this program wrote it{copied}; it is left as it is: "
                                    f"move it away or choose another folder")
        return st

    def _record(self, name: str, st: os.stat_result, digest: Optional[str], kind: str = "file",
                mark: Optional[str] = None, previous: Optional[Dict] = None) -> None:
        rec = {"name": name, "kind": kind, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest,
               "ino": st.st_ino, "dev": st.st_dev, "command": self.command, "time": round(time.time(), 3)}
        if mark:
            rec["mark"] = mark
        if previous is not None and previous.get("kind", "file") == "file" and kind == "file":
            # the file it replaces, still ours should the process die between this record and the rename
            rec["replaces"] = {k: previous.get(k) for k in ("size", "mtime_ns", "sha256", "ino", "dev")}
        self._append_manifest(rec)
        self.entries[name] = rec
        self.written.add(name)

    def _append_manifest(self, rec: Dict) -> None:
        _append_record(self._fd, MANIFEST, json.dumps(rec))
        self._lines += 1
        self._compact()

    def _restore(self, name: str, previous: Optional[Dict]) -> None:
        """Undo a record whose file could not be placed: the earlier record stands again (or none)."""
        if previous is None:
            self._forget(name)
            return
        self._append_manifest(previous)
        self.entries[name] = previous

    def _forget(self, name: str) -> None:
        self.entries.pop(name, None)
        self.written.discard(name)
        self._append_manifest({"name": name, "removed": True})

    def adopt(self, name: str) -> None:
        """Record ``name`` as this command's output: a file a child process it ran wrote (the 310 app)."""
        with self._dir(name, create=False) as (dir_fd, leaf):
            try:
                fd = os.open(leaf, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
            except OSError as exc:
                raise OutputPathError(f"{self.root / name}: cannot adopt it ({exc.strerror})") from None
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise OutputPathError(f"{self.root / name} is not a regular file; not adopted")
                h = hashlib.sha256()
                for block in iter(lambda: f.read(4 << 20), b""):
                    h.update(block)
            self._record(name, st, h.hexdigest())

    # placing
    def _place_bytes(self, dir_fd: int, leaf: str, data: bytes, replace: bool) -> os.stat_result:
        """Write ``data`` to a new temporary file of ``dir_fd``, flush it and place it as ``leaf`` (see
        :meth:`_place`); the manifest's own rewrite (``replace``) renames without a record."""
        tmp, fd = self._temporary(dir_fd, leaf)
        try:
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            if replace:
                os.rename(tmp, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                return os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
            return self._place(dir_fd, tmp, leaf, leaf)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)

    @staticmethod
    def _temporary(dir_fd: int, leaf: str, suffix: str = PART) -> Tuple[str, int]:
        """A new empty temporary file ``.<leaf>.<8 hex>.part[suffix]`` in ``dir_fd`` (created, never reused; a long
        ``leaf`` is shortened so the name fits), and the descriptor it was created with (read-write)."""
        stem = leaf if len(leaf.encode()) <= 200 else leaf[:100]
        for _ in range(100):
            tmp = f".{stem}.{os.urandom(4).hex()}{suffix}"
            try:
                return tmp, os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                    _umask_mode(), dir_fd=dir_fd)
            except FileExistsError:
                continue
        raise OSError(errno.EEXIST, "no free temporary name", leaf)

    def _place(self, dir_fd: int, tmp: str, leaf: str, pending: str, previous: Optional[Dict] = None,
               src_fd: Optional[int] = None, file_fd: Optional[int] = None) -> os.stat_result:
        """Make the finished temporary file ``tmp`` the output ``pending`` (``leaf`` in ``dir_fd``; the caller records
        it first): a hard link that fails if ``leaf`` exists, so a file that appeared since the claim is never
        replaced; an earlier own file is re-checked now and replaced by a rename."""
        src = dir_fd if src_fd is None else src_fd
        if self._lstat(dir_fd, leaf) is None:
            try:
                if file_fd is not None and os.path.isdir("/proc/self/fd"):  # the open file itself, whatever its name
                    os.link(f"/proc/self/fd/{file_fd}", leaf, dst_dir_fd=dir_fd, follow_symlinks=True)
                else:
                    os.link(tmp, leaf, src_dir_fd=src, dst_dir_fd=dir_fd, follow_symlinks=False)
                return self._placed(dir_fd, leaf, pending, file_fd)
            except FileExistsError:
                raise OutputExistsError(f"{self.root / pending} appeared while it was being written and was not "
                                        f"written by this program; it is left as it is") from None
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                    raise
                try:  # no hard links here: claim the name with an exclusive create, then rename over our own claim
                    os.close(os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                     _umask_mode(), dir_fd=dir_fd))
                except FileExistsError:
                    raise OutputExistsError(f"{self.root / pending} appeared while it was being written and was not "
                                            f"written by this program; it is left as it is") from None
        elif previous is None:
            raise OutputExistsError(f"{self.root / pending} appeared while it was being written and was not written "
                                    f"by this program; it is left as it is")
        elif not self._mine(previous) or not self._matches(dir_fd, leaf, previous):
            raise OutputExistsError(f"{self.root / pending} was changed or replaced while it was being written; it is "
                                    f"left as it is: move it away or choose another folder")
        os.rename(tmp, leaf, src_dir_fd=src, dst_dir_fd=dir_fd)
        return self._placed(dir_fd, leaf, pending, file_fd)

    def _placed(self, dir_fd: int, leaf: str, pending: str, file_fd: Optional[int]) -> os.stat_result:
        """What was placed as ``leaf`` is the file this program wrote (``file_fd``): a temporary name swapped for
        something else meanwhile is taken back out and refused."""
        st = os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
        if file_fd is not None:
            mine = os.fstat(file_fd)
            if (st.st_ino, st.st_dev) != (mine.st_ino, mine.st_dev):
                os.unlink(leaf, dir_fd=dir_fd)  # what the swap put under the output's name, placed by us just now
                raise OutputPathError(f"{self.root / pending}: its temporary file was replaced while it was placed; "
                                      f"nothing was written there")
        return st

    @contextmanager
    def _staged(self, name: str, kind: str = "file", unique: bool = False, suffix: str = PART,
                named: bool = False) -> Iterator[Any]:
        """Claim ``name`` and yield where to write it: the descriptor of a new temporary file beside it (created
        with O_EXCL, so nothing can be swapped in under it), or, with ``named``, a path for a writer that wants a
        name (a video encoder picks its container by the extension; MindSpore's writers keep temporaries of their
        own): ``name``'s file name inside a private (0700) folder made in the temporary's place. Then the file is
        checked (regular), flushed, recorded and placed (:meth:`_place`). Any failure removes the temporaries and
        leaves an earlier file of that name as it was."""
        self.claim(name, kind, unique=unique)
        with self._dir(name, create=True) as (dir_fd, leaf):
            tmp, tmp_fd = self._temporary(dir_fd, leaf, suffix)
            priv_fd = -1
            try:
                if named:
                    os.close(tmp_fd)
                    tmp_fd = -1
                    os.unlink(tmp, dir_fd=dir_fd)
                    os.mkdir(tmp, 0o700, dir_fd=dir_fd)
                    priv_fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
                    yield self._by_handle(priv_fd, leaf, f"{Path(name).parent}/{tmp}/{leaf}")
                    src_fd, src = priv_fd, leaf
                    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=src_fd)
                else:
                    yield tmp_fd
                    src_fd, src, fd, tmp_fd = dir_fd, tmp, tmp_fd, -1
                with os.fdopen(fd, "rb") as f:
                    st = os.fstat(f.fileno())
                    if not stat.S_ISREG(st.st_mode) or (named and st.st_size == 0):
                        raise OSError(errno.EIO, "the writer reported no error but left no file", str(self.root / name))
                    f.seek(0)
                    h = hashlib.sha256()
                    for block in iter(lambda: f.read(4 << 20), b""):
                        h.update(block)
                    os.fchmod(f.fileno(), _umask_mode())
                    os.fsync(f.fileno())
                    mark = _mark_of(kind)
                    _set_mark_fd(f.fileno(), mark)  # on the file itself: the link below shares it
                    st = os.fstat(f.fileno())
                    previous = self.entries.get(name)
                    self._record(name, st, h.hexdigest(), kind, mark, previous)
                    try:
                        self._place(dir_fd, src, leaf, name, previous, src_fd, f.fileno())
                    except BaseException:
                        self._restore(name, previous)
                        raise
            except OutputPathError:
                raise
            except OSError as exc:
                raise WriteFailedError(f"cannot write {self.root / name}: {exc.strerror or exc} "
                                       f"({free_bytes(self.root) / 2**20:.1f} MiB free); nothing was replaced: an "
                                       f"earlier file of that name is intact") from None
            finally:
                if tmp_fd >= 0:
                    os.close(tmp_fd)
                if priv_fd >= 0:
                    for entry in os.listdir(priv_fd):  # the writer's own leftovers, in a folder only we made
                        with contextlib.suppress(OSError):
                            os.unlink(entry, dir_fd=priv_fd)
                    os.close(priv_fd)
                    with contextlib.suppress(OSError):
                        os.rmdir(tmp, dir_fd=dir_fd)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp, dir_fd=dir_fd)

    def _by_handle(self, dir_fd: int, leaf: str, name: str) -> str:
        """A path to ``leaf`` in the folder held as ``dir_fd`` for writers that want a name: through the handle
        (``/proc/self/fd``), so a folder renamed or replaced by a link meanwhile is not where they write."""
        proc = f"/proc/self/fd/{dir_fd}"
        return f"{proc}/{leaf}" if os.path.isdir(proc) else str(self.root / Path(name).parent / leaf)

    # writing
    def put_bytes(self, name: str, data: bytes, kind: str = "file", unique: bool = False) -> Path:
        """Write output ``name`` atomically and record it (``kind`` "log": a file other processes of this run
        append to, recognised later by its inode and a mark this program sets on it; ``unique``: see
        :meth:`claim`)."""
        with self._staged(name, kind, unique) as fd:
            _write_all(fd, data)
        return self.root / name

    def put_text(self, name: str, text: str, kind: str = "file") -> Path:
        return self.put_bytes(name, text.encode("utf-8"), kind)

    def put_json(self, name: str, obj: Any, indent: Optional[int] = 1) -> Path:
        return self.put_text(name, json.dumps(obj, indent=indent))

    def put_image(self, name: str, image: np.ndarray, params: Sequence[int] = (), unique: bool = False) -> Path:
        return self.put_bytes(name, encode_image(self.root / name, image, params), unique=unique)

    def put_palette_png(self, name: str, label: np.ndarray, palette: np.ndarray, unique: bool = False) -> Path:
        return self.put_bytes(name, palette_png(label, palette), unique=unique)

    def put_figure(self, name: str, fig) -> Path:
        return self.put_bytes(name, figure_bytes(fig, self.root / name))

    def put_array(self, name: str, array: np.ndarray) -> Path:
        return self.put_bytes(name, np.ascontiguousarray(array).tobytes())

    def put_checkpoint(self, name: str, entries: List[Dict]) -> Path:
        """A MindSpore checkpoint written atomically and recorded; returns its path."""
        with self._staged(name, named=True) as tmp:
            checkpoint_to(entries, tmp, self.root / name)
        return self.root / name

    def put_export(self, name: str, writer: Callable[[str], None], check: Optional[Callable[[str], None]] = None) -> Path:
        """An exported model (see :func:`export_to`) placed as output ``name`` and recorded."""
        with self._staged(name, named=True) as tmp:
            export_to(writer, tmp, self.root / name, check)
        return self.root / name

    def put_written(self, name: str, writer: Callable[[str], None], unique: bool = False) -> Path:
        """Output ``name`` written by a third-party writer to the temporary file it is given (its name ends in
        ``name``'s extension: a video encoder picks its container by it), placed atomically and recorded; claimed
        first, so a user's file is never replaced."""
        with self._staged(name, unique=unique, named=True) as tmp:
            writer(tmp)
        return self.root / name

    def link(self, name: str, target: str | os.PathLike) -> Path:
        """A symbolic link ``name`` -> ``target`` (a data set's image folder), recorded as this folder's output."""
        self.claim(name)
        with self._dir(name) as (dir_fd, leaf):
            rec = {"name": name, "kind": "link", "target": str(target), "command": self.command}
            self._append_manifest(rec)
            self.entries[name] = rec
            try:
                os.symlink(target, leaf, dir_fd=dir_fd)
            except FileExistsError:
                self._forget(name)
                raise OutputExistsError(f"{self.root / name} appeared meanwhile and was not written by this program; "
                                        f"it is left as it is") from None
        return self.root / name

    def append(self, name: str, line: str) -> Path:
        """Append one whole line to the log-like output ``name`` (claimed at its first use; an earlier own log of
        this name is continued)."""
        if not (self.entries.get(name, {}).get("kind") == "log" and self.unchanged(name)):
            self.put_bytes(name, b"", kind="log")
        self.written.add(name)
        with self._dir(name) as (dir_fd, leaf):
            _append_record(dir_fd, leaf, line)
        return self.root / name

    def open_log(self, name: str) -> IO[str]:
        """An appending stream for the log file ``name`` (claimed and recorded; an earlier own log of this name is
        continued)."""
        if not (self.entries.get(name, {}).get("kind") == "log" and self.unchanged(name)):
            self.put_bytes(name, b"", kind="log")
        self.claim(name, kind="log")
        with self._dir(name) as (dir_fd, leaf):
            fd = os.open(leaf, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OutputPathError(f"{self.root / name} is not a regular file; not written")
        stream = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        stream.buffer.raw.name = str(self.root / name)  # its name, not the descriptor's number, in messages
        self.written.add(name)
        return stream

    def claim_log(self, name: str) -> Path:
        """Claim ``name`` for appends by other processes (data workers); it is recorded as this run's log (an
        earlier own log of this name is continued as it is)."""
        if not (self.entries.get(name, {}).get("kind") == "log" and self.unchanged(name)):
            self.put_bytes(name, b"", kind="log")
        self.written.add(name)
        return self.root / name

    def remove(self, name: str) -> bool:
        """Remove output ``name`` if this program (this command's kind) wrote it and it is unchanged, re-checked on
        the file through the folder's handle; else leave it with a warning."""
        with self._dir(name, create=False) as (dir_fd, leaf):
            if self._lstat(dir_fd, leaf) is None:
                self.entries.pop(name, None)
                return False
            rec = self.entries.get(name)
            if rec is None or not self._mine(rec) or not self._matches(dir_fd, leaf, rec):
                logger.warning("%s: not removed - it was not written by this command, or was changed since",
                               self.root / name)
                return False
            os.unlink(leaf, dir_fd=dir_fd)
        self._forget(name)
        return True

    def remove_owned(self, names: Iterable[str]) -> List[str]:
        """Remove every owned output among ``names`` (prefixes ending in ``/`` match folders); returns them. Every
        folder on the way is checked (no link) before the first file is removed."""
        targets = self.owned(names)
        for name in targets:  # one symbolic link among the folders refuses the whole removal, before any of it
            with self._dir(name, create=False):
                pass
        removed = [n for n in targets if self.remove(n)]
        for folder in sorted({str(Path(n).parent) for n in removed}, key=len, reverse=True):
            if folder != ".":
                with contextlib.suppress(OSError), self._dir(folder, create=False) as (dir_fd, leaf):
                    if dir_fd is not None:
                        os.rmdir(leaf, dir_fd=dir_fd)  # only when empty (a user's file in it keeps it); never a link
        return removed


# A log's mark: a random token this program records in the manifest and sets on the file as an extended attribute,
# so a user's file that later takes the same (device, inode) pair is not taken for the log.
MARK_ATTR = "user.pspnet_output"


def _mark_of(kind: str) -> Optional[str]:
    return os.urandom(8).hex() if kind == "log" else None


def _set_mark_fd(fd: int, mark: Optional[str]) -> None:
    if mark:
        with contextlib.suppress(OSError):
            os.setxattr(fd, MARK_ATTR, mark.encode())


def _has_mark(dir_fd: Optional[int], leaf: str, mark: Optional[str]) -> bool:
    """True when the file carries ``mark`` (or when marks cannot be read here, or the record predates them)."""
    if not mark:
        return True
    if not isinstance(mark, str):
        return False
    try:
        fd = os.open(leaf, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        return os.getxattr(fd, MARK_ATTR) == mark.encode()
    except OSError as exc:
        return exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP)  # no extended attributes on this file system
    finally:
        os.close(fd)


def put_file(path: str | os.PathLike, data: bytes, what: str, command: str) -> Path:
    """One output file named by the user (``--out F``), through an unlocked :class:`OutputFolder` on its folder:
    an earlier file of this command's is replaced, a user's file of that name never (one line naming it)."""
    path = Path(path)
    if not path.name or path.name in (".", ".."):
        raise OutputPathError(f"{what} {path}: give a file name")
    with OutputFolder(path.parent if str(path.parent) else Path("."), what, command, overwrite=True,
                      lock=False) as folder:
        return folder.put_bytes(path.name, data)


def as_folder(target: "str | os.PathLike | OutputFolder", what: str, command: str) -> OutputFolder:
    """``target`` itself when it is an :class:`OutputFolder`, else an unlocked one over that path.

    Library functions take either; commands pass the folder they locked (with the user's ``--overwrite``), a
    caller with a plain path gets the same ownership checks without a lock.
    """
    if isinstance(target, (OutputFolder, SubFolder)):
        return target  # type: ignore[return-value]
    return OutputFolder(target, what, command, overwrite=True, lock=False).__enter__()


class SubFolder:
    """A view of an :class:`OutputFolder` whose output names start with ``prefix`` (one manifest, one lock)."""

    NAMED = ("put_bytes", "put_text", "put_json", "put_image", "put_palette_png", "put_figure", "put_array",
             "put_checkpoint", "put_export", "put_written", "link", "append", "open_log", "claim", "remove", "adopt",
             "unchanged", "path")

    def __init__(self, parent: OutputFolder, prefix: str) -> None:
        self.parent, self.prefix = parent, prefix.strip("/") + "/"
        self.root = parent.root / prefix.strip("/")

    def __getattr__(self, attr: str):
        fn = getattr(self.parent, attr)
        if attr in self.NAMED:
            return lambda name, *args, **kwargs: fn(self.prefix + name, *args, **kwargs)
        return fn


def make_folder(folder: "OutputFolder | SubFolder", sub: str) -> Path:
    """Create the folder ``sub`` (and the folders on the way) inside ``folder`` for a program the command runs
    to write into (the 310 app's ``output/``): no link on the way is followed, an existing folder is kept."""
    base, prefix = (folder.parent, folder.prefix) if isinstance(folder, SubFolder) else (folder, "")
    with base._dir(f"{prefix}{sub.strip('/')}/.probe"):
        pass
    return folder.root / sub.strip("/")
