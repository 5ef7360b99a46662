"""The Shapes layer "M1 annotations": displays an annotation set, reports edits as events.

:class:`AnnotationLayer` is the only code that touches the Shapes layer. It draws
each annotation as one shape (an ellipse for a ROI, a line for a caliper) on the
reference grid, updates ONE shape when one annotation changes, keeps outlines a
few screen pixels wide at any zoom, and turns what the reader does on the canvas
into psygnal events (it never calls the controller):

``shape_edited(slot, annotation, final)``
    A shape was moved/resized with napari's tools (``final`` False while dragging).
``shapes_deleted(slots)``
    Shapes were deleted with napari's tools.
``shape_drawn(shape_type, vertices)``
    A new shape was drawn with napari's own tools (data coordinates).
``created(layer)``
    The Shapes layer was (re)created.

Placement clicks and drags are :class:`~._placement.PlacementTool`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from psygnal import Signal

from ..annotation import Annotation, caliper_annotation, roi_annotation
from ..geometry import index_to_ras, ras_to_index
from ..io import METADATA_KEY

__all__ = [
    "COLOURS",
    "EDGE_PX",
    "SHAPES_LAYER_NAME",
    "AnnotationLayer",
    "annotation_to_shape",
    "shape_to_annotation",
    "short_label",
]

SHAPES_LAYER_NAME = "M1 annotations"
COLOURS = {
    "active": "#ffd400",
    "roi": "#00e5ff",
    "caliper": "#ff5cf0",
    "mrsi_voxel": "#7cff6b",
    "warn": "#ff3b30",
}
#: Outline width in screen pixels, at any zoom.
EDGE_PX = 2.0
LABEL_MODES = ("short", "all", "off")


def short_label(slot: Any, ann: Annotation | None) -> str:
    """The canvas label of a slot: ``"L hand"``, ``"ref"``; a caliper shows its length."""
    if ann is not None and ann.kind == "caliper":
        return f"{ann.length_mm:.2f} mm"
    if getattr(slot, "role", "") == "reference":
        return "ref"
    return f"{slot.hemisphere} {slot.region}"


def annotation_to_shape(
    ann: Annotation, ras_affine: Any, *, inverse: Any = None
) -> tuple[np.ndarray, str]:
    """napari shape of an annotation: vertices on the grid of ``ras_affine`` (index, (n, 3))
    and shape type (a ROI is the ellipse inscribed in its 4 corners ``c -+ u -+ v``)."""
    if ann.kind in ("roi", "mrsi_voxel"):  # an MRSI voxel: its square on the slice
        c = ann.centre_ras
        u, v = ann.semi_axes_ras
        corners = np.array([c - u - v, c + u - v, c + u + v, c - u + v])
        shape = "ellipse" if ann.kind == "roi" else "rectangle"
        return ras_to_index(corners, ras_affine, inverse=inverse), shape
    return ras_to_index(ann.points, ras_affine, inverse=inverse), "line"


def shape_to_annotation(
    slot: str, verts: Any, kind: str, ras_affine: Any, *, author: str = ""
) -> Annotation | None:
    """Inverse of :func:`annotation_to_shape` (None for a degenerate shape)."""
    if kind == "mrsi_voxel":
        return None  # a voxel is not dragged: it is re-placed (Shift-R) on the MRSI grid
    pts = index_to_ras(np.asarray(verts, dtype=float)[:, -3:], ras_affine)
    try:
        if kind == "roi":
            if len(pts) != 4:
                return None
            c, u, v = pts.mean(axis=0), (pts[1] - pts[0]) / 2, (pts[3] - pts[0]) / 2
            return roi_annotation(slot, c, u, v, author=author, source="edited")
        return caliper_annotation(slot, pts[0], pts[-1], author=author, source="edited")
    except ValueError:
        return None


def _unproxied(layer: Any) -> Any:
    """The layer itself: a dock's viewer is napari's public-only proxy, whose private
    attribute access warns; the thumbnail switch below is private napari API."""
    return getattr(layer, "__wrapped__", layer)


def _allow_thumbnail(layer: Any, on: bool) -> bool:
    """napari's responsiveness switch ``Shapes._allow_thumbnail_update`` (False when this
    napari has none: then napari redraws the thumbnail after every move, as before)."""
    real = _unproxied(layer)
    if not hasattr(real, "_allow_thumbnail_update"):
        return False
    real._allow_thumbnail_update = on
    return True


class AnnotationLayer:
    """The annotation Shapes layer of one viewer (data coordinates = reference-grid index).

    Parameters
    ----------
    viewer : napari.Viewer
    """

    shape_edited = Signal(str, object, bool)
    shapes_deleted = Signal(tuple)
    shape_drawn = Signal(str, object)
    created = Signal(object)

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.layer: Any = None
        self.ras_affine = np.eye(4)
        self._inv = np.eye(4)
        self.author = ""
        self.label_mode = "short"
        self._slots: list[str] = []
        self._anns: dict[str, Annotation] = {}
        self._labels: dict[str, str] = {}
        self._syncing = False
        self._edge = 0.12
        self.n_shape_updates = 0  # shapes (re)built since creation, for tests/benchmarks

    # ------------------------------------------------------------------ layer
    def ensure(self, ref: Any, ras_affine: Any, protocol_id: str) -> Any:
        """Create the layer on the reference grid (same scale/translate: one slider step
        per slice), or re-place it onto a new reference."""
        self.ras_affine = np.asarray(ras_affine, dtype=float)
        self._inv = np.linalg.inv(self.ras_affine)
        scale, translate = tuple(ref.scale[-3:]), tuple(ref.translate[-3:])
        if self.layer is not None and self.layer in self.viewer.layers:
            # only when the grid changed: each assignment re-slices the layer and updates
            # the dims and the layer list (a case change on the same grid costs nothing)
            if not np.array_equal(self.layer.scale, scale):
                self.layer.scale = scale
            if not np.array_equal(self.layer.translate, translate):
                self.layer.translate = translate
            self.layer.metadata[METADATA_KEY]["protocol"] = protocol_id
            return self.layer
        import pandas as pd

        self.layer = self.viewer.add_shapes(
            ndim=3,
            name=SHAPES_LAYER_NAME,
            scale=scale,
            translate=translate,
            axis_labels=("S-I", "A-P", "R-L"),
            units=("mm", "mm", "mm"),
            features=pd.DataFrame(
                {"slot": pd.Series([], dtype=str), "label": pd.Series([], dtype=str)}
            ),
            text={"string": "{label}", "size": 9, "color": "#ffd400", "anchor": "upper_left"},
            face_color="transparent",
            edge_width=self._edge,
            metadata={METADATA_KEY: {"kind": "annotations", "protocol": protocol_id}},
        )
        self._slots = []
        self._anns = {}
        # napari redraws the layer-list thumbnail of every shape after each move (17 ms
        # with 100 ovals); it is redrawn here when shapes are added or removed instead
        # (napari's own responsiveness switch, see Shapes._allow_thumbnail_update)
        _allow_thumbnail(self.layer, False)
        self.layer.events.data.connect(self._on_layer_data)
        self.created.emit(self.layer)
        from .._viewer import camera_of

        camera_of(self.viewer).events.zoom.connect(self._on_zoom)
        self._on_zoom()
        return self.layer

    def publish_rows(self, rows: list[dict[str, Any]]) -> None:
        """Keep the measurement rows in the layer metadata (read by the npe2 CSV writer)."""
        if self.layer is not None:
            self.layer.metadata[METADATA_KEY]["rows"] = rows

    def remove(self) -> None:
        """Take the layer out of the viewer."""
        from .._viewer import camera_of

        camera_of(self.viewer).events.zoom.disconnect(self._on_zoom)
        if self.layer is not None and self.layer in self.viewer.layers:
            self.viewer.layers.remove(self.layer)
        self.layer = None
        self._slots, self._anns = [], {}

    @property
    def shown_slots(self) -> tuple[str, ...]:
        """Slot of each shape, in layer order."""
        return tuple(self._slots)

    # ------------------------------------------------------------------ model -> shapes
    def to_shape(self, ann: Annotation) -> tuple[np.ndarray, str]:
        """Vertices (reference-grid index, (n, 3)) and shape type of an annotation."""
        return annotation_to_shape(ann, self.ras_affine, inverse=self._inv)

    def show(
        self,
        annotations: Mapping[str, Annotation],
        order: Sequence[str],
        colours: Mapping[str, str],
        labels: Mapping[str, str],
        active: str | None = None,
    ) -> None:
        """Rebuild every shape (a case, protocol or undo-history load): ``order`` lists the
        slots to show, ``colours``/``labels`` give each one's outline colour and label."""
        if self.layer is None:
            return
        import pandas as pd

        slots = [s for s in order if s in annotations]
        data, types = [], []
        for sid in slots:
            d, t = self.to_shape(annotations[sid])
            data.append(d)
            types.append(t)
        self._syncing = True
        try:
            if self.layer.selected_data:
                self.layer.selected_data = set()
            if len(self.layer.data):  # emptying an empty layer still re-slices it
                self.layer.data = []
            if data:
                self.layer.add(
                    data,
                    shape_type=types,
                    edge_color=[colours[s] for s in slots],
                    face_color="transparent",
                    edge_width=self._edge,
                )
            self._slots = slots
            self._anns = {s: annotations[s] for s in slots}
            self._labels = {s: labels.get(s, "") for s in slots}
            self.layer.features = pd.DataFrame(
                {
                    "slot": pd.Series(slots, dtype=str),
                    "label": pd.Series(self._label_column(active), dtype=str),
                }
            )
            self.n_shape_updates += len(slots)
        finally:
            self._syncing = False
        self.update_thumbnail()

    def update_thumbnail(self) -> None:
        """Redraw the layer-list thumbnail (napari's own redraw after a move is off)."""
        if self.layer is None or not _allow_thumbnail(self.layer, True):
            return
        try:
            _unproxied(self.layer)._update_thumbnail()
        finally:
            _allow_thumbnail(self.layer, False)

    def update(
        self,
        slot: str,
        ann: Annotation | None,
        colour: str,
        label: str,
        active: str | None = None,
    ) -> bool:
        """Show one slot's new state by replacing (or adding/removing) its shape only.

        napari's tools have already moved a shape the reader dragged: then nothing is
        redrawn but the label. Returns False when the layer needs a full :meth:`show`.
        """
        if self.layer is None:
            return True
        if ann is None or slot not in self._slots:
            return self._add_or_remove(slot, ann, colour, label, active)
        i = self._slots.index(slot)
        if ann.kind != self._anns[slot].kind:
            return False
        verts, shape_type = self.to_shape(ann)
        self._anns[slot] = ann
        self._labels[slot] = label
        if np.allclose(np.asarray(self.layer.data[i])[:, -3:], verts, atol=1e-6):
            self.restyle({slot: colour}, active)
            return True
        self._syncing = True
        try:  # one shape out, one in (napari's public API; no full rebuild)
            self.layer.remove([i])
            del self._slots[i]
            self._append(slot, verts, shape_type, colour, active)
        finally:
            self._syncing = False
        return True

    def _add_or_remove(
        self, slot: str, ann: Annotation | None, colour: str, label: str, active: str | None
    ) -> bool:
        self._syncing = True
        try:
            if ann is None:
                if slot in self._slots:
                    i = self._slots.index(slot)
                    self.layer.selected_data = set()
                    self.layer.remove([i])
                    del self._slots[i]
                    self._anns.pop(slot, None)
                    self._labels.pop(slot, None)
                    self._refresh_labels(active)
                return True
            verts, shape_type = self.to_shape(ann)
            self._anns[slot] = ann
            self._labels[slot] = label
            self._append(slot, verts, shape_type, colour, active)
        finally:
            self._syncing = False
        self.update_thumbnail()
        return True

    def _append(
        self, slot: str, verts: np.ndarray, shape_type: str, colour: str, active: str | None
    ) -> None:
        self.layer.feature_defaults = {"slot": slot, "label": ""}
        self.layer.add(
            [verts],
            shape_type=[shape_type],
            edge_color=[colour],
            face_color="transparent",
            edge_width=[self._edge],
        )
        self.layer.feature_defaults = {"slot": "", "label": ""}  # napari-drawn shapes: no slot
        self._slots.append(slot)
        self.n_shape_updates += 1
        self._refresh_labels(active)

    def restyle(self, colours: Mapping[str, str], active: str | None) -> None:
        """Recolour the given slots' shapes (the active one is highlighted); refresh labels."""
        if self.layer is None:
            return
        if colours:
            from napari.utils.colormaps.standardize_color import transform_color

            current = np.array(self.layer.edge_color, dtype=float).reshape(-1, 4)
            new = current.copy()
            for sid, colour in colours.items():
                if sid in self._slots:
                    new[self._slots.index(sid)] = transform_color(colour)[0]
            if len(new) and not np.array_equal(new, current):
                self._syncing, was = True, self._syncing
                try:
                    self.layer.edge_color = new
                finally:
                    self._syncing = was
        self._refresh_labels(active)

    def _refresh_labels(self, active: str | None) -> None:
        self._syncing, was = True, self._syncing
        try:
            col = self._label_column(active)
            feats = self.layer.features
            if "label" in feats and list(feats["label"]) != col:
                feats["label"] = col
                self.layer.refresh_text()
        finally:
            self._syncing = was

    def set_label_mode(self, mode: str, active: str | None) -> None:
        """Canvas labels: ``short`` (calipers' lengths only), ``all`` (names too), ``off``."""
        if mode not in LABEL_MODES:
            raise ValueError(f"label mode must be one of {LABEL_MODES}")
        self.label_mode = mode
        self._refresh_labels(active)

    def _label_column(self, active: str | None) -> list[str]:
        out = []
        for s in self._slots:
            text = self._labels.get(s, "")
            ann = self._anns.get(s)
            if self.label_mode == "off":
                text = ""
            elif self.label_mode == "short" and ann is not None and ann.kind != "caliper":
                text = ""  # the active oval is highlighted; names would overlap the lengths
            out.append(text)
        return out

    def _on_zoom(self, event: Any = None) -> None:
        """Outlines stay EDGE_PX screen pixels wide: width (data units) = px / pixels per unit."""
        if self.layer is None:
            return
        from .._viewer import camera_of

        zoom = float(camera_of(self.viewer).zoom)  # screen pixels per world unit (mm)
        inplane = float(np.min(np.abs(np.asarray(self.layer.scale)[-2:])))
        want = EDGE_PX / max(zoom * inplane, 1e-9)
        if abs(want - self._edge) <= 0.15 * self._edge:
            return  # small zoom steps: not worth re-meshing every outline
        self._edge = want
        self._syncing, was = True, self._syncing
        try:
            if self.layer.nshapes:
                self.layer.edge_width = want
            self.layer.current_edge_width = want
        finally:
            self._syncing = was

    @property
    def edge_width(self) -> float:
        """Current outline width in data units (reference pixels)."""
        return self._edge

    # ------------------------------------------------------------------ shapes -> model
    def annotation_from_shape(self, slot: str, verts: Any, kind: str) -> Annotation | None:
        """The annotation a shape now shows (None when degenerate or unchanged)."""
        ann = shape_to_annotation(slot, verts, kind, self.ras_affine, author=self.author)
        old = self._anns.get(slot)
        if ann is None or (old is not None and np.allclose(old.points, ann.points, atol=1e-6)):
            return None
        return ann

    def _on_layer_data(self, event: Any) -> None:
        if self._syncing:
            return
        action = str(getattr(event, "action", "changed"))
        feats = self.layer.features
        slots = [str(s) for s in feats["slot"]] if "slot" in feats else []
        if action.endswith("changing") or action.endswith("changed"):
            final = action.endswith("changed")
            for i in getattr(event, "data_indices", range(len(self.layer.data))):
                if i < 0 or i >= len(slots) or slots[i] not in self._anns:
                    continue
                sid = slots[i]
                ann = self.annotation_from_shape(sid, self.layer.data[i], self._anns[sid].kind)
                if ann is not None:
                    self.shape_edited.emit(sid, ann, final)
        elif action.endswith("removed"):
            gone = tuple(s for s in self._slots if s not in slots)
            self._slots = [s for s in self._slots if s in slots]
            if gone:
                self.shapes_deleted.emit(gone)
        elif action.endswith("added"):
            new = [i for i, s in enumerate(slots) if s in ("", "nan", "None")]
            if new:
                i = new[-1]
                self.shape_drawn.emit(
                    str(self.layer.shape_type[i]), np.asarray(self.layer.data[i])
                )
