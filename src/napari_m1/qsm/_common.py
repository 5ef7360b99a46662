"""Types shared by the QSM stages: the cancel exception and the progress callback."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["CancelFn", "Cancelled", "ProgressFn", "check_cancel"]

#: ``progress(fraction_of_this_stage, message)``
ProgressFn = Callable[[float, str], None]
#: ``cancel() -> True`` to stop at the next check (every slice / radius / iteration).
CancelFn = Callable[[], bool]


class Cancelled(Exception):
    """Raised by a stage when the caller's cancel check returns True."""


def check_cancel(cancel: CancelFn | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` says so."""
    if cancel is not None and cancel():
        raise Cancelled
