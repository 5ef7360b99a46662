"""Exceptions with messages meant for the user (one line, no traceback needed)."""

from __future__ import annotations

__all__ = ["M1Error", "M1LoadError"]


class M1Error(Exception):
    """Base class for napari-m1 errors whose message is shown to the user as is."""


class M1LoadError(M1Error, ValueError):
    """A file or case folder cannot be loaded. The message names the file and the reason."""
