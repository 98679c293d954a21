"""OutputFolder: one command's output folder (its lock, its manifest, every write into it through its handle),
SubFolder, as_folder, put_file, make_folder, and the mark a log carries."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from src.errors import shown
from src.outputs.atomic import (PART, PARTIAL_RE, _append_record, _open_for_append, _umask_mode, _write_all,
                                ensure_output_dir, free_bytes)
from src.outputs.errors import OutputExistsError, OutputPathError, WriteFailedError
from src.outputs.lock import _Lock, _lock_in
from src.outputs.manifest import COMPACT_SLACK, MANIFEST, MAX_MANIFEST_BYTES, _parse_manifest, _read_regular, command_kind

logger = logging.getLogger(__name__)


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
                self._finish(name, kind, fd, named, dir_fd, leaf, src_fd, src)
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

    def _finish(self, name: str, kind: str, fd: int, named: bool, dir_fd: int, leaf: str, src_fd: int,
                src: str) -> None:
        """The written temporary (open as ``fd``, named ``src`` in ``src_fd``): checked to be a regular file,
        hashed, flushed, marked (a log), recorded, then placed as ``leaf`` of ``dir_fd``; a failed placing puts
        the earlier record back."""
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

    def put_written(self, name: str, writer: Callable[[str], None], unique: bool = False) -> Path:
        """Output ``name`` written by a third-party writer to the path it is given (``name``'s file name inside a
        private folder: a video encoder picks its container by the extension; MindSpore's checkpoint writer and
        exporters leave their temporaries there), placed atomically and recorded; claimed first, so a user's file
        is never replaced."""
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
        with self._dir(name) as (dir_fd, leaf):  # a link of the user's to the log would grow with it: refused
            fd = _open_for_append(leaf, dir_fd, shown_as=str(self.root / name), create=False)
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

    NAMED = ("put_bytes", "put_text", "put_json", "put_written", "link", "append", "open_log", "claim", "remove",
             "adopt", "unchanged", "path")

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
