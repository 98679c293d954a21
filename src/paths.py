"""Output locations checked before any work starts: folders that can be created and written."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from src.errors import PSPNetError


class OutputPathError(PSPNetError, OSError):
    """An output folder or file that cannot be written; the message names the option and the path."""


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
    """Check that the file ``path`` can be written: its folder is writable and ``path`` is not a folder."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{what} {path}: is a folder; give a file name")
    ensure_output_dir(path.parent if str(path.parent) else Path("."), what)
    return path


def free_bytes(path: str | os.PathLike) -> int:
    """Free space on the file system holding ``path`` (its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free
