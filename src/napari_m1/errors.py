"""Exceptions with messages meant for the user (one line, no traceback needed).

Only these become ``napari-m1: error: <message>`` (exit status 2) on the command
line and a message in the docks; any other exception is a bug and shows its
traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["M1Error", "M1InputError", "M1LoadError", "M1WriteError"]


class M1Error(Exception):
    """Base class for napari-m1 errors whose message is shown to the user as is."""


class M1InputError(M1Error, ValueError):
    """A value the user gave (an option, a parameter) is out of range or malformed."""


class M1LoadError(M1Error, ValueError):
    """A file or case folder cannot be loaded. The message names the file and the reason."""


class M1WriteError(M1Error, OSError):
    """An output file cannot be written (read-only folder, disk full, ...).

    Also an :class:`OSError` (``errno``/``strerror`` of the cause), so callers that
    handle I/O failures keep working; ``str()`` is the one-line user message.
    """

    def __init__(self, path: str | os.PathLike[str], cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause), str(path))
        self.message = f"{Path(path).name}: cannot write ({cause.strerror or cause})"

    def __str__(self) -> str:
        return self.message
