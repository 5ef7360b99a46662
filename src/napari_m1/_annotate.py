"""napari adapter for the annotation protocol (no Qt): one controller per viewer.

:class:`AnnotationController` owns the case's :class:`~napari_m1.annotation.AnnotationSet`
(the model), the :class:`~napari_m1.measure.MeasurementEngine` that follows it, the
autosave, and the Shapes layer "M1 annotations" that *displays* the model. User
edits made with napari's own shape tools come back through the layer's data
events and are turned into model changes; nothing is ever read back from screen
state otherwise. Widgets subscribe to the controller's psygnal signals.
"""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal

from ._paths import user_data_dir
from ._viewer import m1_layers, reference_layer
from .annotation import (
    Annotation,
    AnnotationSet,
    Change,
    caliper_annotation,
    case_fingerprint,
    load_annotations,
    roi_annotation,
    save_annotations,
)
from .errors import M1Error
from .geometry import hemisphere, ras_to_world, world_to_ras
from .io import METADATA_KEY, LayerMeta
from .measure import MapSource, MeasurementEngine, sample_profile, suggest_band
from .protocol import DEFAULT_ROI_AREA_MM2, Protocol, get_protocol

__all__ = ["KEYMAP", "SHAPES_LAYER_NAME", "AnnotationController", "get_controller"]

log = logging.getLogger(__name__)

SHAPES_LAYER_NAME = "M1 annotations"
#: Keyboard shortcuts (napari key names) -> controller method. One table, documented in
#: docs/user-guide.md; keys that napari's Shapes layer does not use.
KEYMAP: dict[str, str] = {
    "N": "next_missing",
    "B": "previous_slot",
    "O": "toggle_placing",
    "Shift-D": "delete_active",
    "Control-Z": "undo",
    "Control-Shift-Z": "redo",
}
EDGE_WIDTH = 0.5  # in reference pixels (the layer's data units)
COLOURS = {"active": "#ffd400", "roi": "#00e5ff", "caliper": "#ff5cf0", "warn": "#ff3b30"}

_CONTROLLERS: weakref.WeakKeyDictionary[Any, AnnotationController] = weakref.WeakKeyDictionary()


def get_controller(viewer: Any, **kwargs: Any) -> AnnotationController:
    """The viewer's controller, created on first use (kwargs apply only then)."""
    ctl = _CONTROLLERS.get(viewer)
    if ctl is None or ctl.closed:
        ctl = AnnotationController(viewer, **kwargs)
        _CONTROLLERS[viewer] = ctl
    return ctl


class FilePersistence:
    """Annotations autosaved to a JSON Lines file (atomic writes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self, case: dict[str, Any], protocol: Protocol) -> dict[str, Annotation]:
        """Stored annotations (empty when the file does not exist yet)."""
        if not self.path.is_file():
            return {}
        return dict(load_annotations(self.path, case=case, protocol=protocol).items)

    def save(self, annset: AnnotationSet, items: dict[str, Annotation], change: Change) -> None:
        """Rewrite the file with the state after the change."""
        save_annotations(self.path, annset, items)


class SessionPersistence:
    """Annotations stored in a study's database for one read (each change committed)."""

    def __init__(self, session: Any, pseudonym: str) -> None:
        self.session = session
        self.pseudonym = pseudonym

    def load(self, case: dict[str, Any], protocol: Protocol) -> dict[str, Annotation]:
        """The read's stored annotations."""
        out = {}
        for d in self.session.annotations(self.pseudonym):
            a = Annotation(**{**d, "points_ras": tuple(tuple(p) for p in d["points_ras"])})
            out[a.slot] = a
        return out

    def save(self, annset: AnnotationSet, items: dict[str, Annotation], change: Change) -> None:
        """Upsert or delete the changed slot (refused, and logged, when the read is locked)."""
        self.session.save_annotation(
            self.pseudonym,
            change.slot,
            change.after.to_json() if change.after is not None else None,
            change.action,
        )


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "case"


class AnnotationController:
    """Protocol annotation of the case open in a viewer.

    Signals
    -------
    active_changed(str)
        The active slot id changed.
    annotations_changed(str)
        A slot's annotation was added, edited, deleted, undone or redone.
    measurements_changed()
        The measurement rows changed (also during a drag, before it is committed).
    case_changed()
        A (new) case was attached.
    """

    active_changed = Signal(str)
    annotations_changed = Signal(str)
    measurements_changed = Signal()
    case_changed = Signal()

    def __init__(
        self,
        viewer: Any,
        *,
        protocol: Protocol | str = "m1-7t",
        reader: str = "",
        autosave_path: str | Path | None = None,
        persistence: Any = None,
        bind_keys: bool = True,
    ) -> None:
        self.viewer = viewer
        self.protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
        self.reader = reader
        #: ROI area chosen by the reader (mm²); None = the protocol slot's own default.
        self.area_override_mm2: float | None = None
        self.auto_advance = True
        self.placing = False
        self.closed = False
        self.hemisphere_warnings: dict[str, str] = {}
        self._autosave_override = Path(autosave_path) if autosave_path else None
        self._persistence_override = persistence
        self.persistence: Any = None
        self.annset: AnnotationSet | None = None
        self.engine: MeasurementEngine | None = None
        self.layer: Any = None
        self._ref: Any = None
        self._syncing = False
        self._active = self.protocol.slot_ids[0]
        self._drag_preview: dict[str, Annotation] = {}
        self._bound_keys: list[str] = []
        if bind_keys:
            self._bind_keys()
        viewer.layers.events.inserted.connect(self._on_layers_changed)
        viewer.layers.events.removed.connect(self._on_layers_removed)
        self.attach_case()

    # ------------------------------------------------------------------ case
    @property
    def has_case(self) -> bool:
        """True when a GRE reference layer is loaded and the model is attached."""
        return self.annset is not None

    def attach_case(self) -> bool:
        """Attach to the case in the viewer (reference GRE + maps); load its autosave.

        Returns False when no napari-m1 GRE layer is present yet.
        """
        ref = reference_layer(self.viewer)
        if ref is None or LayerMeta.of(ref).kind != "gre":
            return False
        if ref is self._ref and self.annset is not None:
            return True
        self._ref = ref
        md = LayerMeta.of(ref)
        label = md.case_label or "case"
        shape = ref.data.shape[-3:]
        fp = case_fingerprint(label, shape, md.ras_affine)
        self.engine = self._build_engine(label)
        self.persistence = self._persistence_override or FilePersistence(
            self._autosave_override
            or (
                user_data_dir()
                / "annotations"
                / f"{_safe(label)}-{fp['hash']}"
                / f"{_safe(self.reader or 'default')}-{self.protocol.id}.m1ann.jsonl"
            )
        )
        annset = AnnotationSet(self.protocol, fp, self.reader)
        try:
            annset.items = self.persistence.load(fp, self.protocol)
        except (M1Error, ValueError, TypeError, KeyError) as exc:
            self._warn(f"stored annotations not restored: {exc}")
        self.annset = annset
        self.engine.set_all(annset.items.values())
        annset.subscribe(self._on_model_change)
        annset.write_ahead.append(self._write_ahead)
        self._ensure_layer()
        self._refresh_layer()
        missing = annset.missing()
        self._active = missing[0] if missing else self.protocol.slot_ids[0]
        self.case_changed.emit()
        self.active_changed.emit(self._active)
        self.measurements_changed.emit()
        return True

    @property
    def autosave_path(self) -> Path | None:
        """The autosave file (None when annotations go to a study database)."""
        return getattr(self.persistence, "path", None)

    def reconfigure(
        self,
        *,
        protocol: Protocol | str | None = None,
        reader: str | None = None,
        persistence: Any = "keep",
        locked: bool = False,
    ) -> None:
        """Switch protocol, reader and/or storage; reloads that combination's annotations.

        ``persistence``: a FilePersistence/SessionPersistence, ``None`` for the default
        per-user autosave file, or ``"keep"``. ``locked`` makes the set read-only.
        """
        if persistence != "keep":
            self._persistence_override = persistence
        if protocol is not None:
            self.protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
        if reader is not None:
            self.reader = reader
        if self.annset is not None:
            self.annset.unsubscribe(self._on_model_change)
        self.annset = None
        self._ref = None
        self._drag_preview.clear()
        self.hemisphere_warnings.clear()
        self._active = self.protocol.slot_ids[0]
        if self.layer is not None:
            self.layer.metadata[METADATA_KEY]["protocol"] = self.protocol.id
        self.attach_case()
        if self.annset is not None:
            self.annset.locked = bool(locked)

    def detach(self) -> None:
        """Forget the case (its layers are being removed): no model, no shapes."""
        if self.annset is not None:
            self.annset.unsubscribe(self._on_model_change)
        self.annset = None
        self.engine = None
        self._ref = None
        self._drag_preview.clear()
        self.hemisphere_warnings.clear()
        if self.layer is not None and self.layer in self.viewer.layers:
            self.viewer.layers.remove(self.layer)
        self.layer = None
        self.case_changed.emit()

    def save_as(self, path: str | Path) -> Path:
        """Save to a chosen file and keep autosaving there."""
        aset = self._require()
        self._autosave_override = Path(path)
        self.persistence = FilePersistence(path)
        return save_annotations(path, aset)

    def open_file(self, path: str | Path) -> None:
        """Load an annotations file onto this case (checked against it); not undoable."""
        aset = self._require()
        loaded = load_annotations(path, case=aset.case, protocol=self.protocol)
        aset.replace_all(loaded.items.values())

    def _build_engine(self, label: str) -> MeasurementEngine:
        """A measurement engine over every napari-m1 map now in the viewer."""
        sources = []
        for ly in m1_layers(self.viewer):
            m = LayerMeta.of(ly)
            if m.is_map:
                tes = list(m.echo_times_ms) if m.echo_times_ms is not None else None
                sources.append(
                    MapSource(
                        m.kind, ly.name, ly.data, m.ras_affine, tes, m.metabolite, m.source_affine
                    )
                )
        ref_name = self._ref.name
        sources.sort(key=lambda src: src.name != ref_name)  # the reference GRE first
        return MeasurementEngine(sources, self.protocol, case_label=label, reader=self.reader)

    def _on_layers_changed(self, event: Any = None) -> None:
        self._keep_on_top()
        layer = getattr(event, "value", None)
        if layer is not None and layer is self.layer:
            return
        if self.annset is None or reference_layer(self.viewer) is not self._ref:
            self.attach_case()
        elif layer is None or LayerMeta.of(layer) is not None:
            # a map added (or removed) after the case: measure on it too (or no longer)
            self.engine = self._build_engine(self.engine.case_label if self.engine else "case")
            self.engine.set_all(self.annset.items.values())
            self._refresh_layer()
            self.measurements_changed.emit()

    def _on_layers_removed(self, event: Any = None) -> None:
        layer = getattr(event, "value", None)
        if self.annset is None or layer is self.layer or layer is None:
            return
        if layer is self._ref:
            self.detach()  # the case was closed: its annotations stay stored, not shown
            return
        if LayerMeta.of(layer) is not None:
            self._on_layers_changed(None)

    def _keep_on_top(self) -> None:
        """The annotation layer stays above the images (maps added later included)."""
        layers = self.viewer.layers
        if self.layer is not None and self.layer in layers:
            i = layers.index(self.layer)
            if i != len(layers) - 1:
                layers.move(i, len(layers))

    def close(self) -> None:
        """Unbind keys and stop following the viewer."""
        for key in self._bound_keys:
            self.viewer.bind_key(key, None)
        self._bound_keys.clear()
        self.viewer.layers.events.inserted.disconnect(self._on_layers_changed)
        self.viewer.layers.events.removed.disconnect(self._on_layers_removed)
        self.closed = True

    # ------------------------------------------------------------------ geometry
    def _ras_affine(self) -> np.ndarray:
        return LayerMeta.of(self._ref).ras_affine

    def world_to_ras(self, world: Any) -> np.ndarray:
        """RAS mm of a world point (any leading axes ignored)."""
        return world_to_ras(world, self._ras_affine(), self._ref.scale, self._ref.translate)

    def ras_to_world(self, ras: Any) -> np.ndarray:
        """3D world point (spatial axes) of a RAS point."""
        return ras_to_world(ras, self._ras_affine(), self._ref.scale, self._ref.translate)

    def ras_to_data(self, ras: Any) -> np.ndarray:
        """Reference-grid index (the annotation layer's data coordinates) of RAS points."""
        inv = np.linalg.inv(self._ras_affine())
        p = np.asarray(ras, dtype=float)
        return p @ inv[:3, :3].T + inv[:3, 3]

    def data_to_ras(self, idx: Any) -> np.ndarray:
        """RAS mm of reference-grid indices (..., 3)."""
        r = self._ras_affine()
        return np.asarray(idx, dtype=float) @ r[:3, :3].T + r[:3, 3]

    def _in_plane_axes(self) -> tuple[np.ndarray, np.ndarray]:
        r = self._ras_affine()[:3, :3]
        col, row = r[:, 2], r[:, 1]
        return col / np.linalg.norm(col), row / np.linalg.norm(row)

    # ------------------------------------------------------------------ slots
    @property
    def active(self) -> str:
        """The active slot id."""
        return self._active

    @active.setter
    def active(self, slot_id: str) -> None:
        self.protocol.slot(slot_id)
        if slot_id != self._active:
            self._active = slot_id
            self._refresh_layer()
            self.active_changed.emit(slot_id)

    def next_missing(self) -> str | None:
        """Make the next empty slot (after the active one, wrapping) active."""
        if self.annset is None:
            return None
        ids = self.protocol.slot_ids
        i = ids.index(self._active)
        for s in ids[i + 1 :] + ids[: i + 1]:
            if s not in self.annset:
                self.active = s
                return s
        return None

    def previous_slot(self) -> str:
        """Make the previous slot (in protocol order, wrapping) active."""
        ids = self.protocol.slot_ids
        self.active = ids[(ids.index(self._active) - 1) % len(ids)]
        return self._active

    def toggle_placing(self, on: bool | None = None) -> bool:
        """Placement mode: a click places the active ROI, a drag draws its caliper."""
        self.placing = (not self.placing) if on is None else bool(on)
        if self.layer is not None:
            self.viewer.layers.selection.active = self.layer
            self.layer.mode = "pan_zoom"
            self.layer.mouse_pan = not self.placing
        return self.placing

    # ------------------------------------------------------------------ edits
    def _require(self) -> AnnotationSet:
        if self.annset is None:
            raise M1Error("open a case first (no GRE layer in the viewer)")
        return self.annset

    def place_roi_at(
        self, world: Any, *, slot: str | None = None, area_mm2: float | None = None
    ) -> Annotation:
        """Place an oval (a circle of the requested area) centred at a world point."""
        aset = self._require()
        sid = slot or self._active
        s = self.protocol.slot(sid)
        if s.kind != "roi":
            raise M1Error(f"{sid} is a caliper slot: drag a line instead")
        area = float(area_mm2 or self.area_override_mm2 or s.area_mm2 or DEFAULT_ROI_AREA_MM2)
        r = float(np.sqrt(area / np.pi))
        col, row = self._in_plane_axes()
        centre = self.world_to_ras(world)
        ann = roi_annotation(sid, centre, r * col, r * row, author=self.reader)
        aset.put(ann)
        return ann

    def place_caliper(self, world1: Any, world2: Any, *, slot: str | None = None) -> Annotation:
        """Place a caliper between two world points (same slice)."""
        aset = self._require()
        sid = slot or self._active
        if self.protocol.slot(sid).kind != "caliper":
            raise M1Error(f"{sid} is a ROI slot: click to place an oval")
        p1, p2 = self.world_to_ras(world1), self.world_to_ras(world2)
        try:
            ann = caliper_annotation(sid, p1, p2, author=self.reader)
        except ValueError as exc:
            raise M1Error(f"{exc}: drag across the deep layer") from None
        aset.put(ann)
        return ann

    def delete_active(self) -> None:
        """Empty the active slot (undoable)."""
        self._require().delete(self._active)

    def undo(self) -> None:
        """Undo the last annotation change."""
        self._require().undo()

    def redo(self) -> None:
        """Redo the last undone annotation change."""
        self._require().redo()

    def accept_suggestion(self, slot: str | None = None, *, echo: int | None = None) -> bool:
        """Replace a caliper's end points with the suggested band edges (undoable)."""
        sid = slot or self._active
        prof, sug = self.profile(sid, echo=echo)
        if prof is None or not sug.ok:
            return False
        ann = caliper_annotation(
            sid,
            prof.ras_at(sug.x1_mm),
            prof.ras_at(sug.x2_mm),
            author=self.reader,
            source="suggested",
        )
        self._require().put(ann, action="accept suggestion")
        return True

    def profile(self, slot: str | None = None, *, echo: int | None = None):
        """(Profile, BandSuggestion) along a caliper slot on a GRE echo (default: last)."""
        aset = self._require()
        ann = self._drag_preview.get(slot or self._active) or aset.get(slot or self._active)
        if ann is None or ann.kind != "caliper":
            return None, None
        src = self.engine.reference  # type: ignore[union-attr]
        vols = src.volumes()
        e = (echo or len(vols)) - 1
        prof = sample_profile(vols[e][1], src.ras_affine, *ann.points)
        return prof, suggest_band(prof)

    def export_rows(self) -> list[dict[str, Any]]:
        """Current measurement rows (the measurements.csv schema)."""
        return self.engine.rows() if self.engine is not None else []

    # ------------------------------------------------------------------ model -> view
    def _on_model_change(self, change: Change) -> None:
        self._drag_preview.pop(change.slot, None)
        if self.engine is not None:
            self.engine.update(change.slot, change.after)
        self._check_hemisphere(change.after)
        self._refresh_layer()
        self.annotations_changed.emit(change.slot)
        self.measurements_changed.emit()
        if (
            change.after is not None
            and self.auto_advance
            and change.before is None
            and change.action == "add"
            and change.slot == self._active
        ):
            self.next_missing()

    def _write_ahead(
        self, annset: AnnotationSet, items: dict[str, Annotation], change: Change
    ) -> None:
        """Store first; a refused or failed write leaves the model unchanged."""
        if self.persistence is None:
            return
        try:
            self.persistence.save(annset, items, change)
        except OSError as exc:
            raise M1Error(f"could not save the annotation ({exc.strerror}); not changed") from None

    def _check_hemisphere(self, ann: Annotation | None) -> None:
        if ann is None:
            return
        slot = self.protocol.slot(ann.slot)
        got = hemisphere(ann.centre_ras)
        if got != slot.hemisphere:
            msg = (
                f"{slot.label or ann.slot}: placed in the "
                f"{ {'L': 'left', 'R': 'right', 'M': 'midline'}[got] } hemisphere "
                f"(RAS x = {ann.centre_ras[0]:.1f} mm), expected {slot.hemisphere}"
            )
            self.hemisphere_warnings[ann.slot] = msg
            self._warn(msg)
        else:
            self.hemisphere_warnings.pop(ann.slot, None)

    def _warn(self, msg: str) -> None:
        log.warning(msg)
        from napari.utils.notifications import show_warning

        show_warning(msg)

    def _ensure_layer(self) -> None:
        """The Shapes layer on the reference grid (same scale/translate: one slider step
        per slice), so its data coordinates are reference-grid indices."""
        ref = self._ref
        scale, translate = tuple(ref.scale[-3:]), tuple(ref.translate[-3:])
        if self.layer is not None and self.layer in self.viewer.layers:
            self.layer.scale, self.layer.translate = scale, translate
            return
        import pandas as pd

        self.layer = self.viewer.add_shapes(
            ndim=3,
            name=SHAPES_LAYER_NAME,
            scale=scale,
            translate=translate,
            axis_labels=("S-I", "A-P", "R-L"),
            units=("mm", "mm", "mm"),
            features=pd.DataFrame({"slot": pd.Series([], dtype=str)}),
            text={"string": "{slot}", "size": 8, "color": "#ffd400", "anchor": "upper_left"},
            face_color="transparent",
            edge_width=EDGE_WIDTH,
            metadata={METADATA_KEY: {"kind": "annotations", "protocol": self.protocol.id}},
        )
        self.layer.events.data.connect(self._on_layer_data)
        self.layer.mouse_drag_callbacks.append(self._on_drag)

    def _shape_of(self, ann: Annotation) -> tuple[np.ndarray, str]:
        if ann.kind == "roi":
            c = ann.centre_ras
            u, v = ann.semi_axes_ras
            corners = np.array([c - u - v, c + u - v, c + u + v, c - u + v])
            return self.ras_to_data(corners), "ellipse"
        return self.ras_to_data(ann.points), "line"

    def _refresh_layer(self) -> None:
        if self.layer is None or self.annset is None:
            return
        import pandas as pd

        slots = self.annset.done()
        data, types, colours = [], [], []
        for sid in slots:
            ann = self._drag_preview.get(sid) or self.annset.items[sid]
            d, t = self._shape_of(ann)
            data.append(d)
            types.append(t)
            colours.append(
                COLOURS["warn"]
                if sid in self.hemisphere_warnings
                else COLOURS["active"]
                if sid == self._active
                else COLOURS[ann.kind]
            )
        self._syncing = True
        try:
            self.layer.selected_data = set()
            self.layer.data = []
            if data:
                self.layer.add(
                    data,
                    shape_type=types,
                    edge_color=colours,
                    face_color="transparent",
                    edge_width=0.12,
                )
            self.layer.features = pd.DataFrame({"slot": pd.Series(slots, dtype=str)})
            self.layer.metadata[METADATA_KEY]["rows"] = self.export_rows()
        finally:
            self._syncing = False

    # ------------------------------------------------------------------ view -> model
    def _annotation_from_shape(self, sid: str, verts: np.ndarray, kind: str) -> Annotation | None:
        pts = self.data_to_ras(np.asarray(verts, dtype=float)[:, -3:])
        old = self.annset.get(sid) if self.annset else None
        try:
            if kind == "roi":
                if len(pts) != 4:
                    return None
                c = pts.mean(axis=0)
                ann = roi_annotation(
                    sid,
                    c,
                    (pts[1] - pts[0]) / 2,
                    (pts[3] - pts[0]) / 2,
                    author=self.reader,
                    source="edited",
                )
            else:
                ann = caliper_annotation(sid, pts[0], pts[-1], author=self.reader, source="edited")
        except ValueError:
            return None
        if old is not None and np.allclose(old.points, ann.points, atol=1e-6):
            return None
        return ann

    def _on_layer_data(self, event: Any) -> None:
        if self._syncing or self.annset is None:
            return
        action = str(getattr(event, "action", "changed"))
        feats = self.layer.features
        slots = [str(s) for s in feats["slot"]] if "slot" in feats else []
        if action.endswith("changing") or action.endswith("changed"):
            for i in getattr(event, "data_indices", range(len(self.layer.data))):
                if i < 0 or i >= len(slots) or slots[i] not in self.annset:
                    continue
                sid = slots[i]
                kind = self.annset.items[sid].kind
                ann = self._annotation_from_shape(sid, self.layer.data[i], kind)
                if ann is None:
                    continue
                if action.endswith("changing"):  # live preview during a drag
                    self._drag_preview[sid] = ann
                    self.engine.update(sid, ann)  # type: ignore[union-attr]
                    self.measurements_changed.emit()
                else:
                    try:
                        self.annset.put(ann, action="move/resize")
                    except M1Error as exc:
                        self._drag_preview.pop(sid, None)
                        self.engine.update(sid, self.annset.items.get(sid))  # type: ignore[union-attr]
                        self._warn(str(exc))
                        self._refresh_layer()
                        self.measurements_changed.emit()
        elif action.endswith("removed"):
            gone = [s for s in self.annset.done() if s not in slots]
            try:
                for s in gone:
                    self.annset.delete(s)
            except M1Error as exc:
                self._warn(str(exc))
                gone = []
            if not gone:
                self._refresh_layer()
        elif action.endswith("added"):
            self._adopt_new_shapes(slots)

    def _adopt_new_shapes(self, slots: list[str]) -> None:
        """Shapes drawn with napari's own tools: give them the active slot, or refuse."""
        new = [i for i, s in enumerate(slots) if s in ("", "nan", "None")]
        if not new:
            return
        i = new[-1]
        shape_type = self.layer.shape_type[i]
        slot = self.protocol.slot(self._active)
        want = "ellipse" if slot.kind == "roi" else "line"
        verts = np.asarray(self.layer.data[i])
        if self._active in self.annset or shape_type != want:
            why = (
                "is already filled: move or delete its shape"
                if self._active in self.annset
                else f"needs a {want}"
            )
            self._warn(f"{slot.label or slot.id} {why}")
            self._refresh_layer()
            return
        ann = self._annotation_from_shape(self._active, verts, slot.kind)
        if ann is None:
            self._refresh_layer()
            return
        try:
            self.annset.put(ann)
        except M1Error as exc:
            self._warn(str(exc))
            self._refresh_layer()

    def _on_drag(self, layer: Any, event: Any):
        """Placement mode: click = ROI at the point; press-drag-release = caliper."""
        if not self.placing or self.annset is None:
            return
        slot = self.protocol.slot(self._active)
        start = np.asarray(event.position, dtype=float)
        if slot.kind == "roi":
            try:
                self.place_roi_at(start)
            except M1Error as exc:
                self._warn(str(exc))
            return
        yield
        end = start
        while event.type == "mouse_move":
            end = np.asarray(event.position, dtype=float)
            yield
        end = np.asarray(event.position, dtype=float)
        try:
            self.place_caliper(start, end)
        except M1Error as exc:
            self._warn(str(exc))

    # ------------------------------------------------------------------ keys
    def _bind_keys(self) -> None:
        for key, method in KEYMAP.items():

            def handler(viewer: Any, _m: str = method) -> None:
                try:
                    getattr(self, _m)()
                except M1Error as exc:
                    self._warn(str(exc))

            self.viewer.bind_key(key, handler, overwrite=True)
            self._bound_keys.append(key)
