"""napari adapter for the annotation protocol (no Qt): one controller per viewer.

* :mod:`._controller` — :class:`AnnotationController`: attaches the case's annotation
  set (the model, saved through its store), the measurement engine and the display;
  psygnal signals for the widgets.
* :mod:`._edits` — the reader's verbs: walk the protocol, place, edit, undo, midline.
* :mod:`._layer` — :class:`AnnotationLayer`: the "M1 annotations" Shapes layer; shows
  the model shape by shape and reports canvas edits as events.
* :mod:`._placement` — :class:`PlacementTool`: clicks and drags while placing (events).
* :mod:`._case` — :class:`ViewerCase`: follows the viewer's layers (case opened or
  closed, maps added); builds the engine; names the autosave file.
* :mod:`._keys` — the keyboard shortcuts, one table.
"""

from __future__ import annotations

import weakref
from typing import Any

from ._controller import AnnotationController
from ._keys import KEYMAP
from ._layer import SHAPES_LAYER_NAME, AnnotationLayer

__all__ = [
    "KEYMAP",
    "SHAPES_LAYER_NAME",
    "AnnotationController",
    "AnnotationLayer",
    "find_controller",
    "get_controller",
]

_CONTROLLERS: weakref.WeakKeyDictionary[Any, AnnotationController] = weakref.WeakKeyDictionary()


def get_controller(viewer: Any, **kwargs: Any) -> AnnotationController:
    """The viewer's controller, created on first use (kwargs apply only then)."""
    ctl = _CONTROLLERS.get(viewer)
    if ctl is None or ctl.closed:
        ctl = AnnotationController(viewer, **kwargs)
        _CONTROLLERS[viewer] = ctl
    return ctl


def find_controller(viewer: Any) -> AnnotationController | None:
    """The viewer's controller if one is open (never creates one)."""
    ctl = _CONTROLLERS.get(viewer)
    return None if ctl is None or ctl.closed else ctl
