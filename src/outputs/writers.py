"""Third-party writers that want a file name (MindSpore's checkpoint and exporters, a video encoder), their
file placed atomically by path."""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional

from src.outputs.atomic import PART, atomic_path, file_sha256, refuse_link


def checkpoint_to(entries: List[Dict], tmp: str, path: str | os.PathLike) -> None:
    """``ms.save_checkpoint(entries)`` into the temporary file ``tmp`` (for ``path``; a failure names it)."""
    import mindspore as ms

    try:
        ms.save_checkpoint(entries, tmp)
    except RuntimeError as exc:  # MindSpore wraps a failed write in a RuntimeError
        raise OSError(errno.EIO, str(exc).splitlines()[0][:300] if str(exc) else "write failed", str(path))
    finally:
        with contextlib.suppress(OSError):
            os.remove(os.path.splitext(tmp)[0] + ".tmp")  # MindSpore's own temporary file


def save_checkpoint_file(entries: List[Dict], path: str | os.PathLike) -> str:
    """``ms.save_checkpoint(entries)`` into ``path`` atomically; returns the file's SHA-256."""
    with atomic_path(path, suffix=".part.ckpt") as tmp:
        checkpoint_to(entries, tmp, path)
        digest = file_sha256(tmp)
    return digest


def export_to(writer: Callable[[str], None], tmp: str, path: str | os.PathLike,
              check: Optional[Callable[[str], None]] = None) -> None:
    """Run an exporter in a private temporary folder beside ``tmp``, check its file there, then copy it into the
    temporary file ``tmp`` (for ``path``).

    ``writer(base)`` must write ``base + <path's extension>``; ``check(file)`` may raise to refuse it (nothing
    is then placed). MindSpore's exporter changes the mode of the folder it writes into (0700) and leaves the
    file 0400: both stay confined to the private folder.
    """
    private = tempfile.mkdtemp(prefix=f".{Path(path).name}.", suffix=".export", dir=os.path.dirname(tmp) or ".")
    try:
        base = os.path.join(private, "model")
        writer(base)
        made = base + Path(path).suffix
        if not os.path.isfile(made) or os.path.islink(made):
            raise OSError(errno.ENOENT, "the exporter reported no error but wrote no file", str(path))
        if check is not None:
            check(made)
        shutil.copyfile(made, tmp)
    finally:
        os.chmod(private, 0o700)
        shutil.rmtree(private, ignore_errors=True)


def export_files(writer: Callable[[str], None], path: str | os.PathLike,
                 check: Optional[Callable[[str], None]] = None) -> str:
    """:func:`export_to` placed at ``path`` atomically (a file arriving with ordinary permissions); returns its
    SHA-256."""
    path = Path(path)
    refuse_link(path, "--file_name")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        export_to(writer, tmp, path, check)
    return file_sha256(path)


def written_file(writer: Callable[[str], None], path: str | os.PathLike) -> str:
    """Let a third-party writer that wants a file name (a video encoder, which picks its container by the
    extension) write a temporary file beside ``path``, then place it atomically; returns its SHA-256.

    ``writer(tmp)`` writes ``tmp``, whose name ends in ``path``'s extension. When it raises, or leaves no
    non-empty regular file, nothing is placed and an earlier file of that name is intact.
    """
    path = Path(path)
    with atomic_path(path, suffix=PART + path.suffix) as tmp:
        writer(tmp)
        if os.path.islink(tmp) or not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
            raise OSError(errno.EIO, "the writer reported no error but left no file", str(path))
        digest = file_sha256(tmp)
    return digest
