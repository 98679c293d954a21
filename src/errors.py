"""The project's error base class, and how a message shows text that came from a file.

Every error the project raises on purpose derives from :class:`PSPNetError`,
so each entry point catches that one class and exits with status 2 and one
line naming the file or key at fault.  Names, paths and strings read from a
file (a checkpoint's entries, a .pth's keys and imports, a list file's paths,
an ONNX model's operators, a YAML's keys) reach a message only through
:func:`shown` / :func:`shown_names`: a hostile file cannot write escape
sequences or forged lines to the terminal or the log, nor make a message
megabytes long.  A file the user names (a config, a list file, a checkpoint) is
read through :func:`read_user_file`: whatever the operating system answers
becomes one error naming the file.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import Iterable, List, Type


class PSPNetError(Exception):
    """A problem with the user's input, files or environment, explained in one message."""


class TrainingError(PSPNetError, RuntimeError):
    """Training cannot go on (non-finite loss, unusable resume checkpoint, ranks that disagree...)."""


EXIT_USER_ERROR = 2


def has_control_chars(text: str) -> bool:
    """True when ``text`` holds a control character (C0, DEL or C1): no real path, name or key has one, and a
    terminal acts on them when a message shows the text."""
    return any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text)


def shown(text: object, limit: int = 100) -> str:
    """``text`` as a message may show it: control and other unprintable characters escaped (``\\x1b``,
    ``\\n``), at most ``limit`` characters (``...`` marks a cut)."""
    text = str(text)
    text = text if text.isprintable() else repr(text[: limit + 1])[1:-1]
    return text if len(text) <= limit else text[:limit - 3] + "..."


def shown_names(names: Iterable[object], n: int = 6, limit: int = 100) -> str:
    """The first ``n`` of ``names`` as :func:`shown`, comma-separated, and how many more there are."""
    names = list(names)
    more = f" ... ({len(names) - n} more)" if len(names) > n else ""
    return ", ".join(shown(x, limit) for x in names[:n]) + more


def read_upto(fd: int, size: int, limit: int) -> List[bytes]:
    """The bytes of the open ``fd`` (closed here) in parts, up to ``limit`` + 1 of them: ``size`` (its declared
    size) in one allocation, then what a file that grew meanwhile (or /proc's, which declare 0 bytes) adds."""
    with os.fdopen(fd, "rb") as f:
        parts = [f.read(size)] if size else []
        total = sum(map(len, parts))
        while total <= limit:
            chunk = f.read(min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
    return parts


def read_user_file(path: str | os.PathLike, what: str, error: Type[PSPNetError], limit: int,
                   missing_hint: str = "", too_big: str = "") -> bytes:
    """The bytes of a file the user named, or one ``error`` naming it (``what``: "config file", "list file").

    The file is opened without blocking and checked from its descriptor before a byte is read: a folder, a FIFO
    (which would block the reader forever), a device or a socket is refused, and so is a file over ``limit`` bytes
    (``too_big`` may word that message: ``{path}``, ``{size}`` and ``{limit}`` are filled in). Any OSError
    (permission, an I/O error, a name too long) becomes ``error`` with the system's reason; a missing file is
    ``"<what> not found: <path><missing_hint>"``.
    """
    name = shown(os.fspath(path), 300)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise error(f"{what} not found: {name}{missing_hint}") from None
        raise error(f"cannot read {what} {name}: {exc.strerror or exc}") from None
    except ValueError as exc:  # an embedded NUL, a name that cannot be encoded
        raise error(f"cannot read {what} {shown(repr(os.fspath(path)), 300)}: {exc}") from None

    def too_large(size: int) -> PSPNetError:
        return error((too_big or "{path}: {size} bytes is more than a {what} holds (at most {limit})")
                     .format(path=name, size=size, limit=limit, what=what))

    try:
        st = os.fstat(fd)
        refusal = (f"{what} {name} is a folder, not a file" if stat.S_ISDIR(st.st_mode) else
                   f"{what} {name} is not a regular file (a FIFO, device or socket)" if not stat.S_ISREG(st.st_mode)
                   else "")
    except OSError as exc:
        refusal = f"cannot read {what} {name}: {exc.strerror or exc}"
    if refusal or st.st_size > limit:
        os.close(fd)
        raise error(refusal) if refusal else too_large(st.st_size)
    try:
        parts = read_upto(fd, st.st_size, limit)
    except OSError as exc:
        raise error(f"cannot read {what} {name}: {exc.strerror or exc}") from None
    except MemoryError:
        raise error(f"cannot read {what} {name}: not enough memory for its {st.st_size} bytes") from None
    total = sum(map(len, parts))
    if total > limit:
        raise too_large(total)
    return parts[0] if len(parts) == 1 else b"".join(parts)
