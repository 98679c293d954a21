"""The project's error base class, and how a message shows text that came from a file.

Every error the project raises on purpose derives from :class:`PSPNetError`,
so each entry point catches that one class and exits with status 2 and one
line naming the file or key at fault.  Names, paths and strings read from a
file (a checkpoint's entries, a .pth's keys and imports, a list file's paths,
an ONNX model's operators, a YAML's keys) reach a message only through
:func:`shown` / :func:`shown_names`: a hostile file cannot write escape
sequences or forged lines to the terminal or the log, nor make a message
megabytes long.
"""
from __future__ import annotations

from typing import Iterable


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
