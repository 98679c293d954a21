"""Logging configuration for the entry points (library code only creates loggers)."""
from __future__ import annotations

import logging
import os
import sys

FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FILE_DATEFMT = "%Y-%m-%d %H:%M:%S"


def setup_logging(rank: int = 0, level: int = logging.INFO) -> None:
    """Timestamped lines on stderr; non-zero ranks tag their lines."""
    fmt = f"%(asctime)s [rank {rank}] %(message)s" if rank else "%(asctime)s %(message)s"
    handlers = [logging.StreamHandler(sys.stderr)]
    logging.basicConfig(level=level, format=fmt, datefmt="%H:%M:%S", handlers=handlers, force=True)


def add_log_file(path: str | os.PathLike, rank: int = 0) -> str:
    """Also append every log line, with its date, to ``path`` (created with its folder); returns the path.

    Ranks other than 0 write ``<stem>.rank<N><suffix>`` beside it, so no two
    processes append to one file.
    """
    path = os.fspath(path)
    if rank:
        stem, ext = os.path.splitext(path)
        path = f"{stem}.rank{rank}{ext}"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    tag = f" [rank {rank}]" if rank else ""
    handler.setFormatter(logging.Formatter(FILE_FORMAT.replace("%(levelname)s", f"%(levelname)s{tag}"),
                                           FILE_DATEFMT))
    logging.getLogger().addHandler(handler)
    return path


def close_log_files() -> None:
    """Detach and close the log files :func:`add_log_file` opened (the end of a command)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
        handler.close()
