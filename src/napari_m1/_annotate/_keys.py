"""Keyboard shortcuts of the annotation controller: one table (documented in
docs/user-guide.md), bound on the viewer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import M1Error

__all__ = ["KEYMAP", "bind_keys"]

#: napari key name -> controller method. Keys napari's Shapes layer does not use.
KEYMAP: dict[str, str] = {
    "N": "next_missing",
    "B": "previous_slot",
    "O": "toggle_placing",
    "Shift-R": "arm_replace",
    "Shift-M": "arm_midline",
    "Shift-T": "cycle_labels",
    "Shift-D": "delete_active",
    "Control-Z": "undo",
    "Control-Shift-Z": "redo",
}


def bind_keys(viewer: Any, target: Any, warn: Callable[[str], None]) -> list[str]:
    """Bind every KEYMAP key on ``viewer`` to ``target.<method>()``; user errors are shown
    with ``warn``. Returns the keys bound (unbind with ``viewer.bind_key(key, None)``)."""
    bound = []
    for key, method in KEYMAP.items():

        def handler(_viewer: Any, _m: str = method) -> None:
            try:
                getattr(target, _m)()
            except M1Error as exc:
                warn(str(exc))

        viewer.bind_key(key, handler, overwrite=True)
        bound.append(key)
    return bound
