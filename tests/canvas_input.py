"""Real Qt mouse input on napari's canvas at world points, for GUI tests and benchmarks.

One place for what every GUI test and benchmark needs: the canvas pixel of a world
point on the shown slice (through vispy's own view and scene transforms, so zoom, pan
and the radiological flip are honoured) and a ``QMouseEvent`` sent to the canvas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from qtpy.QtCore import QEvent, QPointF, Qt
from qtpy.QtGui import QMouseEvent
from qtpy.QtWidgets import QApplication

__all__ = ["canvas_xy", "send_mouse"]

LEFT = Qt.MouseButton.LeftButton
NONE = Qt.MouseButton.NoButton


def canvas_xy(viewer: Any, world: Sequence[float]) -> tuple[float, float]:
    """Canvas pixel (x, y; float) of a world point on the shown slice. ``world`` is either
    the viewer's full world vector (``dims.ndim`` long) or its last 3 (spatial) axes."""
    w = np.asarray(world, dtype=float)
    w = np.r_[np.zeros(viewer.dims.ndim - w.size), w]
    view = viewer.window._qt_viewer.canvas.view
    disp = viewer.dims.displayed
    x, y = (view.transform * view.scene.transform).map([w[disp[1]], w[disp[0]]])[:2]
    return float(x), float(y)


def send_mouse(
    viewer: Any,
    typ: QEvent.Type,
    x: float,
    y: float,
    button: Qt.MouseButton = LEFT,
    buttons: Qt.MouseButton | None = None,
) -> None:
    """Send one mouse event to napari's canvas at pixel (x, y). ``buttons`` (held after
    the event) defaults to ``button`` for a press or move and to none for a release."""
    if buttons is None:
        buttons = NONE if typ == QEvent.Type.MouseButtonRelease else button
    ev = QMouseEvent(
        typ, QPointF(x, y), QPointF(x, y), button, buttons, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(viewer.window._qt_viewer.canvas.native, ev)
