"""Reading the image in a napari viewer (napari, no Qt): one :class:`ReadingTools` per viewer.

* Up/Down move one slice, PageUp/PageDown five (Up = towards superior in an axial view).
* Right-button drag sets window/level of the image under the reader's eye (horizontal:
  window width, vertical: level), the radiologist's habit; each GRE echo keeps its own
  contrast limits, so echo 1 is not washed out by echo 2's window.
* A hover readout lists every visible map's value at the cursor, with units, and the
  cursor's scanner RAS position (a canvas text overlay, bottom left).
* :meth:`position_text` says where the reader is: slice number, slice position in mm
  and echo with its TE (1-based), for the status bar and the sliders.
* Optional minimum-intensity projection over a few slices (the hypointense band) and a
  side-by-side grid of the GRE and QSM.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np

from ._viewer import camera_of, m1_layers, reference_layer, world_to_ras_in_viewer
from .geometry import hemisphere
from .io import LayerMeta

__all__ = ["KEYS", "UNITS", "ReadingTools", "get_reading_tools"]

#: key -> slices to move (one table; documented in docs/user-guide.md)
KEYS: dict[str, int] = {"Up": 1, "Down": -1, "PageUp": 5, "PageDown": -5}
#: unit of each map kind's values in the readout
UNITS: dict[str, str] = {"gre": "a.u.", "qsm": "ppb", "mrsi": "i.u.", "phase": "rad"}
WL_PIXELS_PER_RANGE = 600.0  # a drag this long (px) sweeps the layer's whole value range
READOUT_KEY = "m1_readout"

_TOOLS: weakref.WeakKeyDictionary[Any, ReadingTools] = weakref.WeakKeyDictionary()


def get_reading_tools(viewer: Any) -> ReadingTools:
    """The viewer's reading tools (created, and keys bound, on first use)."""
    tools = _TOOLS.get(viewer)
    if tools is None:
        tools = ReadingTools(viewer)
        _TOOLS[viewer] = tools
    return tools


def _kind(layer: Any) -> str:
    meta = LayerMeta.of(layer)
    return meta.kind if meta is not None else ""


def _fmt_value(v: float, kind: str) -> str:
    if kind == "qsm":
        return f"{1000.0 * v:.0f}"  # ppm -> ppb
    a = abs(v)
    if a == 0:
        return "0"
    digits = max(0, 2 - math.floor(math.log10(a)))
    return f"{v:.{digits}f}"


class ReadingTools:
    """Slice keys, window/level drag, per-echo contrast, hover readout, MinIP, side by side.

    Parameters
    ----------
    viewer : napari.Viewer
    bind_keys : bool
        Bind :data:`KEYS` on the viewer (overwriting napari's bindings of those keys).
    """

    def __init__(self, viewer: Any, *, bind_keys: bool = True) -> None:
        self.viewer = viewer
        #: per GRE layer id: {echo index (0-based): (lo, hi)}
        self._echo_limits: dict[int, dict[int, tuple[float, float]]] = {}
        self._applying = False
        self._readout: Any = None
        self.readout_text = ""
        self.min_projection_slices = 0
        #: blinded reads: the hover readout shows the position only, no map values
        self.hide_values = False
        self._side_by_side = False
        self._saved_visibility: dict[int, bool] = {}
        if bind_keys:
            for key, step in KEYS.items():
                viewer.bind_key(key, self._key_handler(step), overwrite=True)
        viewer.mouse_drag_callbacks.append(self._on_drag)
        viewer.cursor.events.position.connect(self._on_cursor)
        viewer.dims.events.current_step.connect(self._on_step)
        viewer.layers.events.inserted.connect(self._on_inserted)
        for ly in list(viewer.layers):
            self._watch(ly)

    # ------------------------------------------------------------------ slices
    def slice_axis(self) -> int | None:
        """The world axis the slice slider moves through (None in 3D or without a case)."""
        dims = self.viewer.dims
        if dims.ndisplay != 2 or reference_layer(self.viewer) is None:
            return None
        spatial = [a for a in dims.not_displayed if a >= dims.ndim - 3]
        return spatial[-1] if spatial else None

    def step_slices(self, n: int) -> int:
        """Move ``n`` slices (positive: towards higher world coordinate); returns the step."""
        axis = self.slice_axis()
        if axis is None:
            return -1
        dims = self.viewer.dims
        nsteps = dims.nsteps[axis]
        new = int(np.clip(dims.current_step[axis] + n, 0, nsteps - 1))
        dims.set_current_step(axis, new)
        return new

    def _key_handler(self, step: int):
        def handler(viewer: Any) -> None:
            self.step_slices(step)

        handler.__doc__ = f"Move {abs(step)} slice{'s' * (abs(step) > 1)} " + (
            "up" if step > 0 else "down"
        )
        return handler

    def echo_axis(self) -> int | None:
        """World axis of the GRE echoes (None for a single-echo or no GRE)."""
        ref = reference_layer(self.viewer)
        if ref is None or ref.data.ndim != 4 or self.viewer.dims.ndim != 4:
            return None
        return 0

    def current_echo(self) -> int:
        """The echo shown (1-based)."""
        ax = self.echo_axis()
        return 1 if ax is None else int(self.viewer.dims.current_step[ax]) + 1

    def position_text(self) -> str:
        """``"slice 8/16 · S 12.0 mm · echo 2/2 TE 20 ms"`` for the status bar."""
        ref = reference_layer(self.viewer)
        axis = self.slice_axis()
        if ref is None or axis is None:
            return ""
        dims = self.viewer.dims
        parts = [
            f"slice {dims.current_step[axis] + 1}/{dims.nsteps[axis]}",
            self.slice_position_text(),
        ]
        echo = self.echo_text()
        if echo:
            parts.append(echo)
        return " · ".join(p for p in parts if p)

    def slice_position_text(self) -> str:
        """Slice position along its axis in mm, with the axis letter (``"S 12.0 mm"``)."""
        axis = self.slice_axis()
        if axis is None:
            return ""
        labels = self.viewer.dims.axis_labels
        label = str(labels[axis]) if axis < len(labels) else ""
        letter = {"S-I": "S", "A-P": "A", "R-L": "R"}.get(label, label)
        return f"{letter} {self.viewer.dims.point[axis]:.1f} mm"

    def echo_text(self) -> str:
        """``"echo 2/2 · TE 20 ms"`` (1-based), or ``""`` without echoes."""
        ax = self.echo_axis()
        if ax is None:
            return ""
        ref = reference_layer(self.viewer)
        e = self.current_echo()
        n = ref.data.shape[0]
        tes = LayerMeta.of(ref).echo_times_ms or ()  # type: ignore[union-attr]
        te = f" · TE {tes[e - 1]:g} ms" if len(tes) >= e else ""
        return f"echo {e}/{n}{te}"

    # ------------------------------------------------------------------ window/level
    def wl_target(self) -> Any | None:
        """The image window/level acts on: the selected image, else the top visible one."""
        from napari.layers import Image

        active = self.viewer.layers.selection.active
        if isinstance(active, Image) and active.visible:
            return active
        for ly in reversed(list(self.viewer.layers)):
            if isinstance(ly, Image) and ly.visible:
                return ly
        return None

    def window_level(self, layer: Any, dx: float, dy: float, start: tuple[float, float]) -> None:
        """Set ``layer``'s limits from a drag of (dx, dy) screen px started at limits ``start``.

        Right: wider window; down: higher level (darker), as on a PACS workstation.
        """
        lo0, hi0 = start
        rmin, rmax = layer.contrast_limits_range
        span = max(float(rmax - rmin), 1e-12)
        per_px = span / WL_PIXELS_PER_RANGE
        width = max((hi0 - lo0) + dx * per_px, span * 1e-3)
        level = (hi0 + lo0) / 2 + dy * per_px
        layer.contrast_limits = (level - width / 2, level + width / 2)

    def _on_drag(self, viewer: Any, event: Any):
        if getattr(event, "button", None) != 2:
            return
        layer = self.wl_target()
        if layer is None:
            return
        x0, y0 = (float(v) for v in event.pos[:2])
        start = tuple(float(c) for c in layer.contrast_limits)
        cam = camera_of(viewer)
        pan, zoom = cam.mouse_pan, cam.mouse_zoom
        cam.mouse_pan = cam.mouse_zoom = False  # vispy zooms on a right-drag otherwise
        try:
            yield
            while event.type == "mouse_move":
                x, y = (float(v) for v in event.pos[:2])
                self.window_level(layer, x - x0, y - y0, start)  # type: ignore[arg-type]
                yield
        finally:
            cam.mouse_pan, cam.mouse_zoom = pan, zoom

    # ------------------------------------------------------------------ per-echo contrast
    def echo_limits(self, layer: Any) -> dict[int, tuple[float, float]]:
        """Contrast limits per echo (0-based) of a multi-echo layer, computed on first use."""
        from .io._layers import robust_limits

        lim = self._echo_limits.setdefault(id(layer), {})
        for e in range(layer.data.shape[0]):
            if e not in lim:
                lim[e] = robust_limits(layer.data[e])
        return lim

    def _echo_limit(self, layer: Any, e: int) -> tuple[float, float]:
        """Limits of one echo, computed on first use: a GRE still streaming in (staged
        loading) is only read for the echo shown, never waited for as a whole."""
        from .io._layers import robust_limits

        lim = self._echo_limits.setdefault(id(layer), {})
        if e not in lim:
            lim[e] = robust_limits(layer.data[e])
        return lim[e]

    def _multi_echo_layers(self) -> list[Any]:
        return [ly for ly in m1_layers(self.viewer) if _kind(ly) == "gre" and ly.data.ndim == 4]

    def apply_echo_limits(self) -> None:
        """Show each multi-echo layer with the contrast limits of the echo now shown."""
        if self.echo_axis() is None:
            return
        e = self.current_echo() - 1
        for ly in self._multi_echo_layers():
            if not 0 <= e < ly.data.shape[0]:
                continue
            target = self._echo_limit(ly, e)
            if tuple(ly.contrast_limits) != target:
                self._applying = True
                try:
                    lo, hi = target
                    rmin, rmax = ly.contrast_limits_range
                    if lo < rmin or hi > rmax:
                        ly.contrast_limits_range = (min(lo, rmin), max(hi, rmax))
                    ly.contrast_limits = target
                finally:
                    self._applying = False

    def reset_limits(self) -> None:
        """Robust limits again: per echo for multi-echo GRE, else from the target's data."""
        from .io._layers import robust_limits

        self._echo_limits.clear()
        layer = self.wl_target()
        if layer is not None and layer not in self._multi_echo_layers():
            layer.contrast_limits = robust_limits(layer.data)
        self.apply_echo_limits()

    def _on_limits(self, event: Any) -> None:
        layer = getattr(event, "source", None)
        if self._applying or layer is None or self.echo_axis() is None:
            return
        if layer in self._multi_echo_layers():
            lo, hi = (float(c) for c in layer.contrast_limits)
            self._echo_limits.setdefault(id(layer), {})[self.current_echo() - 1] = (lo, hi)

    def _watch(self, layer: Any) -> None:
        if _kind(layer) and hasattr(layer, "contrast_limits"):
            layer.events.contrast_limits.connect(self._on_limits)
            layer.events.data.connect(self._on_data)

    def _on_data(self, event: Any) -> None:
        """A layer took another case's data (the Reader dock reuses layers): its
        per-echo limits belong to the old data."""
        layer = getattr(event, "source", None)
        if layer is not None:
            self._echo_limits.pop(id(layer), None)
        if self._readout is not None:
            self._on_cursor()  # no value of the old data under the cursor

    def _on_inserted(self, event: Any) -> None:
        layer = event.value
        self._watch(layer)
        ref = reference_layer(self.viewer)
        if _kind(layer) and not layer.visible and ref is not None:
            self.viewer.layers.selection.active = ref  # never leave a hidden map selected
        if _kind(layer) == "gre" and layer.data.ndim == 4:
            self.apply_echo_limits()
        if self.min_projection_slices:
            self.set_min_projection(self.min_projection_slices)

    def _on_step(self, event: Any = None) -> None:
        self.apply_echo_limits()

    # ------------------------------------------------------------------ readout
    def readout(self, world: Any | None = None) -> list[tuple[str, str, str]]:
        """(layer name, value, unit) of every visible napari-m1 map at a world point."""
        pos = self.viewer.cursor.position if world is None else world
        out = []
        for ly in reversed(m1_layers(self.viewer)):
            if not ly.visible or not hasattr(ly, "contrast_limits"):
                continue
            try:
                v = ly.get_value(pos, world=True)
            except (IndexError, ValueError):
                v = None
            if v is None or isinstance(v, tuple):
                continue
            v = float(v)
            if not math.isfinite(v):
                continue
            kind = _kind(ly)
            name = ly.name
            if kind == "gre" and ly.data.ndim == 4:
                name = f"{name} e{self.current_echo()}"
            elif kind == "qsm":
                name = "QSM χ"
            meta = LayerMeta.of(ly)
            ratio = meta is not None and meta.raw.get("mrsi_ratio")  # ratios: dimensionless
            out.append((name, _fmt_value(v, kind), "" if ratio else UNITS.get(kind, "")))
        return out

    def readout_line(self, world: Any | None = None) -> str:
        """The readout as one line, with the RAS position and hemisphere."""
        ref = reference_layer(self.viewer)
        if ref is None:
            return ""
        pos = self.viewer.cursor.position if world is None else world
        ras = world_to_ras_in_viewer(ref, pos)
        vals = (
            ""
            if self.hide_values
            else "  ".join(f"{n}: {v} {u}".rstrip() for n, v, u in self.readout(pos))
        )
        where = f"RAS ({ras[0]:.1f}, {ras[1]:.1f}, {ras[2]:.1f}) mm {hemisphere(ras)}"
        return f"{vals}\n{where}" if vals else where

    def _overlay(self) -> Any:
        if self._readout is None:
            from napari.components.overlays import TextOverlay

            # box=False: napari re-lays a boxed overlay out on every text change, which
            # relinks the box's shader program (~40-150 ms per frame under software GL)
            # — the readout changes on every mouse move, so a box would tax every frame
            self._readout = TextOverlay(
                text="",
                position="bottom_left",
                visible=True,
                font_size=9,
                color="#e8e8a0",
                box=False,
            )
            self.viewer.canvas.overlays[READOUT_KEY] = self._readout
        return self._readout

    def _on_cursor(self, event: Any = None) -> None:
        if not getattr(self.viewer, "mouse_over_canvas", True):
            return
        self.readout_text = self.readout_line()
        ov = self._overlay()
        if ov.text != self.readout_text:
            ov.text = self.readout_text

    # ------------------------------------------------------------------ projections, grid
    def set_min_projection(self, n_slices: int) -> None:
        """Minimum-intensity projection of the GRE over ``n_slices`` slices (0 or 1: off)."""
        self.min_projection_slices = int(n_slices) if n_slices and n_slices > 1 else 0
        axis = self.slice_axis()
        ref = reference_layer(self.viewer)
        if axis is None or ref is None:
            return
        spacing = float(abs(ref.scale[axis - (self.viewer.dims.ndim - ref.ndim)]))
        for ly in m1_layers(self.viewer):
            if _kind(ly) == "gre":
                ly.projection_mode = "min" if self.min_projection_slices else "none"
        thick = list(self.viewer.dims.thickness)
        thick[axis] = spacing * self.min_projection_slices if self.min_projection_slices else 0.0
        self.viewer.dims.thickness = tuple(thick)

    def set_side_by_side(self, on: bool) -> None:
        """GRE (with the annotations) and QSM side by side in napari's grid, or back.

        Other maps are hidden meanwhile and the QSM is moved to the top of the layer
        list, so the grid's two views are [GRE + annotations] and [QSM]; switching
        off restores the order and every layer's visibility.
        """
        layers = self.viewer.layers
        maps = [ly for ly in m1_layers(self.viewer) if _kind(ly) != "annotations"]
        qsm = next((ly for ly in maps if _kind(ly) == "qsm"), None)
        gre = reference_layer(self.viewer)
        if on and not self._side_by_side and qsm is not None and gre is not None:
            self._saved_visibility = {id(ly): ly.visible for ly in layers}
            for ly in maps:
                ly.visible = ly is gre or ly is qsm
            layers.move(layers.index(qsm), len(layers))
            # napari groups layers i // stride: every layer but the top one (the QSM)
            self.viewer.grid.stride = len(layers) - 1
            self.viewer.grid.enabled = True
            self._side_by_side = True
        elif not on and self._side_by_side:
            self.viewer.grid.enabled = False
            self.viewer.grid.stride = 1
            if qsm is not None and gre is not None:
                layers.move(layers.index(qsm), layers.index(gre) + 1)
            for ly in layers:
                if id(ly) in self._saved_visibility:
                    ly.visible = self._saved_visibility[id(ly)]
            self._side_by_side = False

    @property
    def side_by_side(self) -> bool:
        """True while the GRE and QSM are shown side by side."""
        return self._side_by_side
