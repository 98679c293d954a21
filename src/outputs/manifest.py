"""Ownership: the manifest (.pspnet_outputs.jsonl) of what this program wrote in a folder, and the command kinds."""
from __future__ import annotations

import errno
import json
import logging
import os
import stat
from pathlib import Path
from typing import Dict, Optional, Tuple

from src.errors import read_upto
from src.outputs.errors import OutputPathError

logger = logging.getLogger(__name__)

MANIFEST = ".pspnet_outputs.jsonl"
MAX_MANIFEST_BYTES = 512 << 20  # about 2 million live outputs; compaction keeps it near that count
COMPACT_SLACK = 1000  # a locked manifest with more than 2 x live entries + this many lines is rewritten

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
        bad += not pieces  # a line with no record in it at all (a user's text under this name)
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
    too_large = (f"{what} is larger than {max_bytes >> 20} MiB; this program compacts its manifests long before: it "
                 f"is not one of its own (move it away, with the folder's outputs)")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OutputPathError(f"{what} is not a regular file (a FIFO, a device or a socket?); this program never "
                                  f"writes one: remove it")
        if st.st_nlink > 1:
            raise OutputPathError(f"{what} has another name linked to it: not a file this program keeps; it is left as "
                                  f"it is: move it away")
        if st.st_size > max_bytes:
            raise OutputPathError(too_large)
    except BaseException:
        os.close(fd)
        raise
    data = b"".join(read_upto(fd, st.st_size, max_bytes))  # closes fd; a file grown meanwhile is read to the bound
    if len(data) > max_bytes:
        raise OutputPathError(too_large)
    return data


def read_manifest(folder: str | os.PathLike) -> Dict[str, Dict]:
    """``name -> record`` of the files this program wrote in ``folder`` and did not remove (read by path: for
    callers that hold no :class:`OutputFolder`)."""
    raw = _read_regular(None, Path(folder) / MANIFEST, MAX_MANIFEST_BYTES, str(Path(folder) / MANIFEST))
    return _parse_manifest(raw, Path(folder) / MANIFEST)[0] if raw else {}
