"""Logging configuration for the entry points (library code only creates loggers)."""
from __future__ import annotations

import logging
import sys
from typing import Optional


def setup_logging(rank: int = 0, level: int = logging.INFO, log_file: Optional[str] = None) -> None:
    """Timestamped lines on stderr (and optionally a file); non-zero ranks tag their lines."""
    fmt = f"%(asctime)s [rank {rank}] %(message)s" if rank else "%(asctime)s %(message)s"
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=level, format=fmt, datefmt="%H:%M:%S", handlers=handlers, force=True)
