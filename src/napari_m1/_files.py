"""Reading user-supplied text files with one-line, user-facing errors."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import M1Error

__all__ = ["read_user_text"]


def read_user_text(path: str | os.PathLike[str], *, encoding: str = "utf-8-sig") -> str:
    """The file's text (UTF-8, a byte-order mark allowed).

    Raises
    ------
    M1Error
        ``<name>: not UTF-8 text …`` or ``<name>: cannot read (<reason>)``.
    """
    p = Path(path)
    try:
        return p.read_text(encoding=encoding)
    except UnicodeDecodeError:
        raise M1Error(f"{p.name}: not UTF-8 text (save it as UTF-8)") from None
    except OSError as exc:
        raise M1Error(f"{p.name}: cannot read ({exc.strerror or exc})") from None
