"""The output owner's errors: each one line naming the option and the path."""
from __future__ import annotations

from src.errors import PSPNetError


class OutputPathError(PSPNetError, OSError):
    """An output folder or file that cannot be written; the message names the option and the path."""


class OutputExistsError(OutputPathError):
    """An earlier result (or a file this program did not write) would be replaced."""


class WriteFailedError(OutputPathError):
    """A write that failed (a full disk, an I/O error): the earlier file of that name is intact."""


class RunLockedError(OutputPathError):
    """Another command holds the output folder's lock."""
