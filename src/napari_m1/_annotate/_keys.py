"""Keyboard shortcuts of the annotation controller: one table (documented in
docs/user-guide.md), bound on the viewer and, where a layer type claims the same key,
on each layer.

napari looks a key up in the selected layer's keymaps before the viewer's, and its
Image layer binds ``O`` (orient the 3D plane along the view). Each key of the table that
a layer's class binds is therefore also bound on that layer itself (an instance binding
comes before the class's), for every layer in the viewer now and added later: the
reader's keys work whichever layer is selected.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from ..errors import M1Error

__all__ = ["KEYMAP", "bind_keys", "unbind_keys"]

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

# viewer -> (handlers by key, the layer-insertion callback, layers bound on)
_BOUND: weakref.WeakKeyDictionary[Any, tuple[dict[str, Any], Any, weakref.WeakSet]] = (
    weakref.WeakKeyDictionary()
)


def _claimed_by_class(layer: Any, key: str) -> bool:
    """True when ``layer``'s class (or a base class) binds ``key`` itself."""
    from napari.utils.key_bindings import coerce_keybinding

    kb = coerce_keybinding(key)
    return any(kb in getattr(cls, "class_keymap", {}) for cls in type(layer).__mro__)


def _bind_on_layer(layer: Any, handlers: dict[str, Any], bound: weakref.WeakSet) -> None:
    for key, handler in handlers.items():
        if _claimed_by_class(layer, key):
            layer.bind_key(key, handler, overwrite=True)
            bound.add(layer)


def bind_keys(viewer: Any, target: Any, warn: Callable[[str], None]) -> list[str]:
    """Bind every KEYMAP key on ``viewer`` (and on layers whose type claims it) to
    ``target.<method>()``; user errors are shown with ``warn``. Returns the keys bound
    (unbind with :func:`unbind_keys`)."""
    handlers: dict[str, Any] = {}
    for key, method in KEYMAP.items():

        def handler(_owner: Any, _m: str = method) -> None:
            try:
                getattr(target, _m)()
            except M1Error as exc:
                warn(str(exc))

        viewer.bind_key(key, handler, overwrite=True)
        handlers[key] = handler
    bound: weakref.WeakSet = weakref.WeakSet()

    def on_inserted(event: Any) -> None:
        _bind_on_layer(event.value, handlers, bound)

    for layer in viewer.layers:
        _bind_on_layer(layer, handlers, bound)
    viewer.layers.events.inserted.connect(on_inserted)
    _BOUND[viewer] = (handlers, on_inserted, bound)
    return list(handlers)


def unbind_keys(viewer: Any, keys: list[str]) -> None:
    """Undo :func:`bind_keys`: the viewer's and the layers' bindings of ``keys``."""
    for key in keys:
        viewer.bind_key(key, None)
    entry = _BOUND.pop(viewer, None)
    if entry is None:
        return
    handlers, on_inserted, bound = entry
    viewer.layers.events.inserted.disconnect(on_inserted)
    for layer in list(bound):
        for key in keys:
            if layer.keymap.get(_coerce(key)) is handlers.get(key):
                layer.bind_key(key, None)


def _coerce(key: str) -> Any:
    from napari.utils.key_bindings import coerce_keybinding

    return coerce_keybinding(key)
