"""The project's error base class.

Every error the project raises on purpose derives from :class:`PSPNetError`,
so each entry point catches that one class and exits with status 2 and one
line naming the file or key at fault.
"""
from __future__ import annotations


class PSPNetError(Exception):
    """A problem with the user's input, files or environment, explained in one message."""


class TrainingError(PSPNetError, RuntimeError):
    """Training cannot go on (non-finite loss, unusable resume checkpoint, ranks that disagree...)."""


EXIT_USER_ERROR = 2
