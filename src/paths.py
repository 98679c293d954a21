"""Output locations checked before any work starts: folders that can be created and written."""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

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


def write_image(path: str | os.PathLike, image: np.ndarray, params: Sequence[int] = ()) -> None:
    """Encode ``image`` by its extension and write it; a failed write raises OSError naming the file.

    ``cv2.imwrite`` is not used: measured with a file on /dev/full, it returns
    True for a PNG whose every write failed (a full disk leaves empty pictures).
    """
    ok, encoded = cv2.imencode(Path(path).suffix, image, list(params))
    if not ok:
        raise OSError(errno.EINVAL, "OpenCV cannot encode it", str(path))
    with naming(path), open(path, "wb") as f:
        f.write(encoded.tobytes())


@contextmanager
def naming(path: str | os.PathLike) -> Iterator[None]:
    """Give an OSError raised while writing ``path`` the file's name (a failed write() carries none)."""
    try:
        yield
    except OSError as exc:
        if exc.filename:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None


@contextmanager
def output_writes(out_dir: str | os.PathLike, kept: str) -> Iterator[None]:
    """Turn an OSError (a full disk, a folder made read-only) while writing into ``out_dir`` into one
    :class:`OutputPathError` that names the file, the reason and ``kept``: what is not lost."""
    try:
        yield
    except OutputPathError:
        raise
    except OSError as exc:
        where = exc.filename or out_dir
        raise OutputPathError(f"cannot write {where}: {exc.strerror or exc} ({free_bytes(out_dir) / 2**20:.1f} MiB "
                              f"free in {out_dir}); {kept}") from None
