"""Placement on the canvas: a click places a ROI, a press-drag-release draws a caliper.

:class:`PlacementTool` listens to the annotation layer's mouse and emits
``clicked(world)`` / ``line_drawn(world1, world2)``; it never changes the model.
Panning and zooming keep working while placing: for ROIs a drag pans (only a click
without movement places), for calipers hold Space to pan; the wheel always zooms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from psygnal import Signal

__all__ = ["CLICK_PX", "PlacementTool"]

#: A press that moves less than this many screen pixels before release is a click.
CLICK_PX = 4.0


class PlacementTool:
    """Mouse placement on one viewer's annotation layer.

    Signals
    -------
    clicked(world)
        A click without a drag (placing a ROI or the midline), world coordinates.
    line_drawn(world1, world2)
        A press-drag-release while placing a caliper.
    """

    clicked = Signal(object)
    line_drawn = Signal(object, object)

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.layer: Any = None
        #: "roi" (click places, drag pans), "caliper" (drag draws), or None (off).
        self.kind: str | None = None
        self._space = False

    def attach(self, layer: Any) -> None:
        """Listen to a (new) annotation layer."""
        self.layer = layer
        layer.mouse_drag_callbacks.append(self._on_drag)
        layer.bind_key("Space", self._hold_space, overwrite=True)
        self.set_kind(self.kind)

    def set_kind(self, kind: str | None) -> None:
        """Placement for a slot kind (None: off)."""
        self.kind = kind
        if self.layer is None or self.layer not in self.viewer.layers:
            return
        if kind is not None:
            self.viewer.layers.selection.active = self.layer
            self.layer.mode = "pan_zoom"
        self.layer.mouse_pan = kind != "caliper"

    def _hold_space(self, layer: Any):
        """Space held: the mouse pans and zooms, whatever the placement mode."""
        self._space = True
        layer.mouse_pan = True
        yield
        self._space = False
        layer.mouse_pan = self.kind != "caliper"

    def _on_drag(self, layer: Any, event: Any):
        if self.kind is None or self._space:
            return
        start = np.asarray(event.position, dtype=float)
        x0 = np.asarray(getattr(event, "pos", (0.0, 0.0)), dtype=float)
        moved = 0.0
        yield
        end = start
        while event.type == "mouse_move":
            end = np.asarray(event.position, dtype=float)
            pos = np.asarray(getattr(event, "pos", x0), dtype=float)
            moved = max(moved, float(np.hypot(*(pos - x0))))
            yield
        end = np.asarray(event.position, dtype=float)
        if self.kind in ("roi", "mrsi_voxel"):  # a click places; a line is dragged
            if moved < CLICK_PX:  # a drag is a pan, not a placement
                self.clicked.emit(start)
        else:
            self.line_drawn.emit(start, end)
