"""Logging configuration for the entry points (library code only creates loggers)."""
from __future__ import annotations

import logging
import sys



def setup_logging(rank: int = 0, level: int = logging.INFO) -> None:
    """Timestamped lines on stderr; non-zero ranks tag their lines."""
    fmt = f"%(asctime)s [rank {rank}] %(message)s" if rank else "%(asctime)s %(message)s"
    handlers = [logging.StreamHandler(sys.stderr)]
    logging.basicConfig(level=level, format=fmt, datefmt="%H:%M:%S", handlers=handlers, force=True)
