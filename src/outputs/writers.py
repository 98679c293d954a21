"""A third-party writer that wants a file name (a video encoder, MindSpore's checkpoint writer and exporters):
given one inside a private folder, its file placed atomically by path."""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from src.outputs.atomic import atomic_path, file_sha256


def written_file(writer: Callable[[str], None], path: str | os.PathLike) -> str:
    """Let a third-party writer that wants a file name write ``path``'s name inside a private (0700) folder beside
    ``path``, then place its file atomically; returns its SHA-256.

    What the writer does to its folder (MindSpore's exporter makes it 0700, leaves its file 0400 and its own
    temporaries) stays in the private folder, removed at the end. When ``writer`` raises, or leaves no non-empty
    regular file, nothing is placed and an earlier file of that name is intact.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        private = tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".written", dir=str(path.parent))
        try:
            made = os.path.join(private, path.name)
            writer(made)
            if os.path.islink(made) or not os.path.isfile(made) or os.path.getsize(made) == 0:
                raise OSError(errno.EIO, "the writer reported no error but left no file", str(path))
            shutil.copyfile(made, tmp)
        finally:
            os.chmod(private, 0o700)
            shutil.rmtree(private, ignore_errors=True)
    return file_sha256(path)
