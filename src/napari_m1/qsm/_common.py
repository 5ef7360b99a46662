"""Types shared by the QSM stages: the cancel exception and the progress callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["CancelFn", "Cancelled", "ProgressFn", "check_cancel", "run_abandonable"]

T = TypeVar("T")

#: How often (s) :func:`run_abandonable` looks at the cancel flag.
POLL_S = 0.05

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


def run_abandonable(fn: Callable[[], T], cancel: CancelFn | None, *, poll_s: float = POLL_S) -> T:
    """Run one uninterruptible call (a C routine) so that cancel is still honoured at once.

    ``fn`` runs in a daemon thread while the caller looks at ``cancel`` every ``poll_s``
    seconds. On cancel the call is *abandoned*: :class:`Cancelled` is raised now and the
    thread finishes on its own, its result discarded (it keeps one core busy until then).
    This only helps for calls that release the GIL (scikit-image's 3D unwrapper does).

    Parameters
    ----------
    fn : callable() -> T
    cancel : callable() -> bool or None
        ``None``: ``fn`` is simply called.

    Returns
    -------
    T
        What ``fn`` returned; its exception is re-raised in the caller.
    """
    if cancel is None:
        return fn()
    check_cancel(cancel)
    import threading

    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    th = threading.Thread(target=target, name="napari-m1-qsm-call", daemon=True)
    th.start()
    while True:
        th.join(poll_s)
        if not th.is_alive():
            break
        if cancel():
            raise Cancelled
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
