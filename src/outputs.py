"""The one owner of every file the project writes: atomic writes, no symlinks followed, ownership by manifest.

Rules (README "Nothing lost"; docs/RELIABILITY.md):

- Every file goes to a temporary name in its own folder, is flushed to disk and renamed over the target. A
  failed write leaves the previous file (or nothing) and is one :class:`OutputPathError`.
- A target that is a symbolic link is refused; nothing is written through it.
- An output folder (:class:`OutputFolder`) records what this program wrote there in ``.pspnet_outputs.jsonl``
  (name, size, SHA-256). A command replaces or removes only files listed there and unchanged since; anything
  else in the folder, a user's file that collides with an output's name included, is left alone and named.
- One command at a time per output folder: ``.run.lock`` names its holder; a lock whose process is gone
  (kill -9) is taken over with a warning.

``tests/test_architecture.py`` fails when code outside this module writes, renames or removes files.
"""
from __future__ import annotations

import contextlib
import errno
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
from typing import IO, Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence

import numpy as np

from src.errors import PSPNetError, shown

logger = logging.getLogger(__name__)

MANIFEST = ".pspnet_outputs.jsonl"
LOCK_NAME = ".run.lock"
MAX_LOCK_BYTES = 4096
MAX_MANIFEST_BYTES = 64 << 20
COMPACT_BYTES, COMPACT_SLACK = 1 << 20, 1000  # a manifest past both is rewritten with its live entries
PART = ".part"  # temporary files: .<name>.<random>.part in the target's folder
PARTIAL_RE = re.compile(r"^\.(.+)\.[a-z0-9_]{8}\.part(?:\.ckpt|\.tmp)?$")


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


def save_checkpoint_file(entries: List[Dict], path: str | os.PathLike) -> str:
    """``ms.save_checkpoint(entries)`` into ``path`` atomically; returns the file's SHA-256."""
    import mindspore as ms

    with atomic_path(path, suffix=".part.ckpt") as tmp:
        try:
            ms.save_checkpoint(entries, tmp)
        except RuntimeError as exc:  # MindSpore wraps a failed write in a RuntimeError
            raise OSError(errno.EIO, str(exc).splitlines()[0][:300] if str(exc) else "write failed", str(path))
        finally:
            with contextlib.suppress(OSError):
                os.remove(os.path.splitext(tmp)[0] + ".tmp")  # MindSpore's own temporary file
        digest = file_sha256(tmp)
    return digest


def export_files(writer: Callable[[str], None], path: str | os.PathLike,
                 check: Optional[Callable[[str], None]] = None) -> str:
    """Run an exporter in a private temporary folder beside ``path``, check its file there, then move it into
    place; returns its SHA-256.

    ``writer(base)`` must write ``base + <path's extension>``; ``check(file)`` may raise to refuse it (nothing
    is then placed). MindSpore's exporter changes the mode of the folder it writes into (0700) and leaves the
    file 0400: both stay confined to the private folder, and the file arrives with ordinary permissions.
    """
    path = Path(path)
    refuse_link(path, "--file_name")
    path.parent.mkdir(parents=True, exist_ok=True)
    private = tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".export", dir=str(path.parent))
    try:
        base = os.path.join(private, "model")
        writer(base)
        made = base + path.suffix
        if not os.path.isfile(made):
            raise OSError(errno.ENOENT, "the exporter reported no error but wrote no file", str(path))
        if check is not None:
            check(made)
        with atomic_path(path) as tmp:
            shutil.copyfile(made, tmp)
        return file_sha256(path)
    except OSError as exc:
        if isinstance(exc, OutputPathError):
            raise
        raise WriteFailedError(f"cannot write {path}: {exc.strerror or exc} ({free_bytes(path.parent) / 2**20:.1f} "
                               f"MiB free); nothing was replaced") from None
    finally:
        os.chmod(private, 0o700)
        shutil.rmtree(private, ignore_errors=True)


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


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append ``line`` + newline with one ``write`` (whole lines, even from several processes); never through a
    symbolic link."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, _umask_mode())
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


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
    what = holder.get("command")
    return f"{what + ', ' if isinstance(what, str) else ''}pid {holder['pid']} on {holder['host'][:100]}, started {when}"


def acquire(folder: str | os.PathLike, what: str = "train.save_dir", command: str = "train") -> Path:
    """Take ``<folder>/.run.lock`` for this process; returns its path, or raises :class:`RunLockedError`."""
    folder = ensure_output_dir(folder, what)
    path = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "command": command}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            holder = read_lock(path)
            mine = holder is not None and holder["pid"] == me["pid"] and holder["host"] == me["host"]
            stale = holder is not None and holder["host"] == me["host"] and not _alive(holder["pid"])
            if (mine or stale) and not path.is_symlink():
                if stale:
                    logger.warning("%s: taking over a stale lock (%s; that process no longer exists)", path,
                                   _describe(holder))
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            raise RunLockedError(f"{what} {folder} is in use by another run ({_describe(holder)}); wait for "
                                 f"it, choose another folder, or remove {path} if that run is gone") from None
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.ELOOP):
                raise RunLockedError(f"cannot lock {what} {folder}: {exc.strerror}") from None
            raise
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(me))
        return path
    raise RunLockedError(f"cannot lock {what} {folder}: {path} keeps changing (another run starting?)")


def release(path: Path) -> None:
    """Remove the lock if this process still holds it."""
    holder = read_lock(path)
    if holder is not None and holder["pid"] == os.getpid() and holder["host"] == socket.gethostname():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# --- ownership: the manifest ------------------------------------------------------------------------------------------

def read_manifest(folder: str | os.PathLike) -> Dict[str, Dict]:
    """``name -> {size, sha256, mtime_ns}`` of the files this program wrote in ``folder`` and did not remove.

    A cut-short last line (a kill mid-write) or a foreign line is skipped with a warning.
    """
    path = Path(folder) / MANIFEST
    if path.is_symlink():
        raise OutputPathError(f"{path} is a symbolic link; this program never writes one: remove it")
    if not path.is_file():
        return {}
    with open(path, "rb") as f:
        raw = f.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise OutputPathError(f"{path} is larger than {MAX_MANIFEST_BYTES >> 20} MiB; not a manifest this program "
                              f"wrote")
    entries: Dict[str, Dict] = {}
    bad = 0
    for line in raw.decode("utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
            name = rec["name"]
            if not isinstance(name, str) or name.startswith("/") or ".." in Path(name).parts:
                raise ValueError(name)
        except (ValueError, KeyError, TypeError):
            bad += 1
            continue
        if rec.get("removed"):
            entries.pop(name, None)
        else:
            entries[name] = rec
    if bad:
        logger.warning("%s: skipped %d unreadable line(s) (a write cut short?)", path, bad)
    return entries


class OutputFolder:
    """One command's output folder: its lock, its manifest, and every write into it.

    ``overwrite`` allows replacing files an earlier run of this program wrote (listed in the manifest and
    unchanged since). Files it did not write are never replaced or removed. Outputs written with
    ``unique=True`` (pictures) may not be written twice in one run (the second would replace the first).
    """

    def __init__(self, root: str | os.PathLike, what: str, command: str, overwrite: bool = False,
                 lock: bool = True) -> None:
        self.root, self.what, self.command = Path(root), what, command
        self.overwrite, self.lock = overwrite, lock
        self.entries: Dict[str, Dict] = {}
        self.written: set = set()
        self._lock_path: Optional[Path] = None

    def __enter__(self) -> "OutputFolder":
        ensure_output_dir(self.root, self.what)
        if self.lock:
            self._lock_path = acquire(self.root, self.what, self.command)
        try:
            self.entries = read_manifest(self.root)
            if self.lock:
                self._compact()
        except BaseException:
            self.close()
            raise
        return self

    def _compact(self) -> None:
        """Rewrite the manifest with its live entries when most of its lines are history (a folder reused by
        many runs); only under the lock, so no other process appends meanwhile."""
        path = self.root / MANIFEST
        if not path.is_file() or path.stat().st_size < COMPACT_BYTES:
            return
        with open(path, "rb") as f:
            lines = sum(1 for _ in f)
        if lines > 2 * len(self.entries) + COMPACT_SLACK:
            write_text(path, "".join(json.dumps(rec) + "\n" for rec in self.entries.values()))

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the lock (idempotent)."""
        if self._lock_path is not None:
            release(self._lock_path)
            self._lock_path = None

    # what is here
    def check_folder(self, sub: str) -> Path:
        """``root/sub`` as a folder this command may work in: neither it nor a folder between is a link or a file."""
        self.claim(f"{sub.rstrip('/')}/.probe", check_only=True)
        path = self.root / sub
        if path.is_symlink():
            raise OutputPathError(f"{path} is a symbolic link (to {shown(os.readlink(path), 300)}); refusing to work "
                                  f"through it: remove the link or choose another folder")
        return path

    def remove_partials(self, sub: str = "") -> List[Path]:
        """Remove the temporary files an interrupted write of *this program* left in ``root/sub``: exact
        ``.<name>.<8 random>.part[.ckpt|.tmp]`` names whose ``<name>`` this folder's manifest lists."""
        folder = self.check_folder(sub) if sub else self.root
        prefix = f"{sub.rstrip('/')}/" if sub else ""

        def ours(name: str) -> bool:
            m = PARTIAL_RE.match(name)
            return bool(m) and f"{prefix}{m.group(1)}" in self.entries
        return remove_temporary(folder, ours)

    def sub(self, prefix: str) -> "SubFolder":
        """The outputs under ``prefix/``, written through this folder."""
        return SubFolder(self, prefix)

    def path(self, name: str) -> Path:
        """The full path of output ``name`` (a path relative to the folder)."""
        return self.root / name

    def owned(self, names: Optional[Iterable[str]] = None) -> List[str]:
        """Names in the manifest that still exist (all, or those among ``names``/prefixes ending in ``/``)."""
        found = []
        for name in sorted(self.entries):
            if names is not None and not any(name == n or (n.endswith("/") and name.startswith(n)) for n in names):
                continue
            if os.path.lexists(self.root / name):
                found.append(name)
        return found

    def unchanged(self, name: str) -> bool:
        """True when ``name`` is in the manifest and the file on disk is what this program wrote."""
        rec, path = self.entries.get(name), self.root / name
        if rec is not None and rec.get("kind") == "link":
            return path.is_symlink() and os.readlink(path) == rec.get("target")
        if rec is None or path.is_symlink() or not path.is_file():
            return False
        if rec.get("kind") == "log":  # appended by this run's processes: the same file, not the same bytes
            st = path.stat()
            return rec.get("ino") is not None and (st.st_ino, st.st_dev) == (rec.get("ino"), rec.get("dev"))
        st = path.stat()
        if st.st_size != rec.get("size"):
            return False
        if st.st_mtime_ns == rec.get("mtime_ns"):
            return True
        return file_sha256(path) == rec.get("sha256")

    def refuse_earlier(self, names: Iterable[str], hint: str) -> None:
        """Refuse (one line) when an earlier run's outputs among ``names`` exist and ``overwrite`` is off."""
        earlier = [n for n in self.owned(names) if n not in self.written]  # this run's own outputs are not earlier
        if earlier and not self.overwrite:
            shown = ", ".join(earlier[:5]) + (f" and {len(earlier) - 5} more" if len(earlier) > 5 else "")
            raise OutputExistsError(f"{self.what} {self.root} holds an earlier result ({shown}); {hint}")

    def refuse_foreign(self, names: Iterable[str]) -> None:
        """Refuse (one line) when any of ``names`` exists and this program did not write it."""
        for name in names:
            self.claim(name, check_only=True)

    # claiming and recording
    def claim(self, name: str, kind: str = "file", check_only: bool = False, unique: bool = False) -> Path:
        """The path for output ``name``, after checking it may be (re)written; folders below are created.

        ``unique``: ``name`` must not have been written already in this run (one picture per image: two
        inputs whose outputs share a name would silently keep only the second)."""
        path = self.root / name
        parts = Path(name).parts
        if not parts or Path(name).is_absolute() or ".." in parts:
            raise OutputPathError(f"output name {name!r} is not a plain path inside {self.root}")
        for i in range(1, len(parts)):
            sub = self.root.joinpath(*parts[:i])
            if sub.is_symlink():
                raise OutputPathError(f"{sub} is a symbolic link (to {shown(os.readlink(sub), 300)}); refusing to "
                                      f"write {name} through it: remove the link or choose another folder")
            if sub.exists() and not sub.is_dir():
                raise OutputPathError(f"{sub} is a file, not a folder; cannot write {name}")
        if unique and name in self.written and not check_only:
            raise OutputExistsError(f"two outputs named {path} in one run: the second would replace the first")
        if os.path.lexists(path):
            if self.entries.get(name, {}).get("kind") != "link":
                refuse_link(path)
            if name not in self.entries:
                raise OutputExistsError(f"{path} exists and was not written by this program; it is left as it is: "
                                        f"move it away or choose another folder")
            if not self.unchanged(name):
                raise OutputExistsError(f"{path} was changed after this program wrote it; it is left as it is: move "
                                        f"it away or choose another folder")
        if not check_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _record(self, name: str, digest: Optional[str], kind: str = "file") -> None:
        path = self.root / name
        st = path.stat()
        rec = {"name": name, "kind": kind, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest,
               "ino": st.st_ino, "dev": st.st_dev, "command": self.command, "time": round(time.time(), 3)}
        self.entries[name] = rec
        self.written.add(name)
        append_line(self.root / MANIFEST, json.dumps(rec))

    def adopt(self, name: str) -> None:
        """Record ``name`` as this command's output: a file a child process it ran wrote (the 310 app)."""
        path = self.root / name
        refuse_link(path)
        self._record(name, file_sha256(path))

    # writing
    def put_bytes(self, name: str, data: bytes, kind: str = "file", unique: bool = False) -> Path:
        """Write output ``name`` atomically and record it (``kind`` "log": a file other processes of this run
        append to, recognised later by its inode rather than its content; ``unique``: see :meth:`claim`)."""
        path = self.claim(name, kind, unique=unique)
        self._record(name, write_bytes(path, data), kind)
        return path

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
        path = self.claim(name)
        self._record(name, save_checkpoint_file(entries, path))
        return path

    def put_export(self, name: str, writer: Callable[[str], None], check: Optional[Callable[[str], None]] = None) -> Path:
        """An exported model (see :func:`export_files`) placed as output ``name`` and recorded."""
        path = self.claim(name)
        self._record(name, export_files(writer, path, check))
        return path

    def put_written(self, name: str, writer: Callable[[str], None], unique: bool = False) -> Path:
        """Output ``name`` written by a third-party writer to the temporary file it is given (see
        :func:`written_file`), placed atomically and recorded; claimed first, so a user's file is never replaced."""
        path = self.claim(name, unique=unique)
        self._record(name, written_file(writer, path))
        return path

    def link(self, name: str, target: str | os.PathLike) -> Path:
        """A symbolic link ``name`` -> ``target`` (a data set's image folder), recorded as this folder's output."""
        path = self.claim(name)
        os.symlink(target, path)
        rec = {"name": name, "kind": "link", "target": str(target), "command": self.command}
        self.entries[name] = rec
        append_line(self.root / MANIFEST, json.dumps(rec))
        return path

    def append(self, name: str, line: str) -> Path:
        """Append one whole line to the log-like output ``name`` (claimed at its first use)."""
        path = self.root / name
        if self.entries.get(name, {}).get("kind") != "log" or not path.exists():
            self.claim(name, kind="log")
            append_line(path, line)
            self._record(name, None, kind="log")
            return path
        append_line(path, line)
        return path

    def open_log(self, name: str) -> IO[str]:
        """An appending stream for the log file ``name`` (claimed and recorded)."""
        path = self.claim(name, kind="log")
        stream = open_append(path)
        self._record(name, None, kind="log")
        return stream

    def claim_log(self, name: str) -> Path:
        """Claim ``name`` for appends by other processes (data workers); it is recorded as this run's log."""
        path = self.claim(name, kind="log")
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, _umask_mode()))
        self._record(name, None, kind="log")
        return path

    def remove(self, name: str) -> bool:
        """Remove output ``name`` if this program wrote it and it is unchanged; else leave it with a warning."""
        path = self.root / name
        if not os.path.lexists(path):
            self.entries.pop(name, None)
            return False
        if not self.unchanged(name):
            logger.warning("%s: not removed - it was not written by this program, or was changed since", path)
            return False
        remove_file(path)
        self.entries.pop(name, None)
        self.written.discard(name)
        append_line(self.root / MANIFEST, json.dumps({"name": name, "removed": True}))
        return True

    def remove_owned(self, names: Iterable[str]) -> List[str]:
        """Remove every owned output among ``names`` (prefixes ending in ``/`` match folders); returns them."""
        removed = [n for n in self.owned(names) if self.remove(n)]
        for folder in sorted({str(Path(n).parent) for n in removed}, key=len, reverse=True):
            if folder != ".":
                with contextlib.suppress(OSError):
                    (self.root / folder).rmdir()  # only when empty: a user's file in it keeps it
        return removed


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
