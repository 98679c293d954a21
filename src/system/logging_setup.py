"""Logging configuration for the entry points (library code only creates loggers)."""
from __future__ import annotations

import logging
import os
import sys
from typing import IO

FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FILE_DATEFMT = "%Y-%m-%d %H:%M:%S"


def setup_logging(rank: int = 0, level: int = logging.INFO) -> None:
    """Timestamped lines on stderr; non-zero ranks tag their lines."""
    fmt = f"%(asctime)s [rank {rank}] %(message)s" if rank else "%(asctime)s %(message)s"
    handlers = [logging.StreamHandler(sys.stderr)]
    logging.basicConfig(level=level, format=fmt, datefmt="%H:%M:%S", handlers=handlers, force=True)


def log_file_name(name: str, rank: int = 0) -> str:
    """``name`` for rank 0, ``<stem>.rank<N><suffix>`` for the others (no two processes append to one file)."""
    if not rank:
        return name
    stem, ext = os.path.splitext(name)
    return f"{stem}.rank{rank}{ext}"


def add_log_stream(stream: IO[str], rank: int = 0) -> None:
    """Also write every log line, with its date, to ``stream`` (an appending file the output owner opened);
    :func:`close_log_files` closes it."""
    handler = logging.StreamHandler(stream)
    handler.terminator = "\n"
    tag = f" [rank {rank}]" if rank else ""
    handler.setFormatter(logging.Formatter(FILE_FORMAT.replace("%(levelname)s", f"%(levelname)s{tag}"),
                                           FILE_DATEFMT))
    handler._pspnet_log_file = True  # type: ignore[attr-defined]
    logging.getLogger().addHandler(handler)


def close_log_files() -> None:
    """Detach and close the log files :func:`add_log_stream` opened (the end of a command)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_pspnet_log_file", False)]:
        root.removeHandler(handler)
        handler.close()
        handler.stream.close()
