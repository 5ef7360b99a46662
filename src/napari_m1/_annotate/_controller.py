"""AnnotationController: the protocol annotation of the case open in a viewer (no Qt).

It wires four parts that talk through events: the :class:`~napari_m1.annotation.AnnotationSet`
(the model, saved first through its :class:`~napari_m1.annotation.AnnotationStore`), the
:class:`~napari_m1.measure.MeasurementEngine` that follows it, the
:class:`~._layer.AnnotationLayer` that displays it (and reports canvas edits), and the
:class:`~._case.ViewerCase` that follows the viewer's layers. Widgets subscribe to the
controller's psygnal signals; the dock only wires them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal

from ..annotation import (
    Annotation,
    AnnotationSet,
    AnnotationStore,
    Change,
    FileAnnotationStore,
    load_annotations,
    save_annotations,
)
from ..errors import M1Error
from ..geometry import index_to_ras, ras_to_index, ras_to_world, world_to_ras
from ..measure import MeasurementEngine
from ..protocol import Protocol, get_protocol
from ._case import ViewerCase, default_store
from ._edits import EditsMixin
from ._keys import bind_keys, unbind_keys
from ._layer import AnnotationLayer
from ._placement import PlacementTool

__all__ = ["AnnotationController"]

log = logging.getLogger(__name__)


class AnnotationController(EditsMixin):
    """Protocol annotation of the case open in a viewer.

    Signals
    -------
    active_changed(str)
        The active slot id changed.
    annotations_changed(str)
        A slot's annotation was added, edited, deleted, undone or redone.
    measurements_changed(tuple)
        The measurement rows of these slots changed (also during a drag, before it is
        committed); every slot of the protocol after a case or map change. Read them
        with ``ctl.engine.rows_for(slot)`` or all with :meth:`export_rows`.
    case_changed()
        A (new) case was attached, or the case was closed.
    placing_changed(bool)
        Placement mode switched on or off (button, O key or code).
    display_changed()
        A display option changed (canvas labels).
    """

    active_changed = Signal(str)
    annotations_changed = Signal(str)
    measurements_changed = Signal(tuple)
    case_changed = Signal()
    placing_changed = Signal(bool)
    display_changed = Signal()

    def __init__(
        self,
        viewer: Any,
        *,
        protocol: Protocol | str = "m1-7t",
        reader: str = "",
        autosave_path: str | Path | None = None,
        store: AnnotationStore | None = None,
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
        self._store_override: AnnotationStore | None = store or (
            FileAnnotationStore(autosave_path) if autosave_path else None
        )
        self.annset: AnnotationSet | None = None
        self.engine: MeasurementEngine | None = None
        self._active = self.protocol.slot_ids[0]
        self._drag_preview: dict[str, Annotation] = {}
        self._armed: str | None = None  # "replace" or "midline": what the next click does
        self._scale_bar_set = False
        self.view = AnnotationLayer(viewer)
        self.view.shape_edited.connect(self._on_shape_edited)
        self.view.shapes_deleted.connect(self._on_shapes_deleted)
        self.view.shape_drawn.connect(self._on_shape_drawn)
        self.placer = PlacementTool(viewer)
        self.view.created.connect(self.placer.attach)
        self.placer.clicked.connect(self._on_clicked)
        self.placer.line_drawn.connect(self._on_line_drawn)
        self.case = ViewerCase(viewer)
        self.case.opened.connect(self.attach_case)
        self.case.closed.connect(self.detach)
        self.case.maps_changed.connect(self._on_maps_changed)
        self._bound_keys: list[str] = self._bind_keys() if bind_keys else []
        self.attach_case()

    def _bind_keys(self) -> list[str]:
        return bind_keys(self.viewer, self, self._warn)

    # ------------------------------------------------------------------ case
    @property
    def has_case(self) -> bool:
        """True when a GRE reference layer is loaded and the model is attached."""
        return self.annset is not None

    @property
    def layer(self) -> Any:
        """The "M1 annotations" Shapes layer (None before a case)."""
        return self.view.layer

    @property
    def store(self) -> AnnotationStore | None:
        """Where the annotations are saved (None before a case)."""
        return self.annset.store if self.annset is not None else None

    @property
    def autosave_path(self) -> Path | None:
        """The autosave file (None when annotations go to a study database)."""
        return getattr(self.store, "path", None)

    def attach_case(self) -> bool:
        """Attach to the case in the viewer (reference GRE + maps); load its annotations.

        Returns False when no napari-m1 GRE layer is present yet.
        """
        ref = self.case.find()
        if ref is None:
            return False
        if ref is self.case.ref and self.annset is not None:
            return True
        self.case.ref = ref
        fp = self.case.fingerprint()
        self.engine = self.case.engine(self.protocol, self.reader)
        store = self._store_override or default_store(fp, self.reader, self.protocol)
        annset = AnnotationSet(self.protocol, fp, self.reader, store=store)
        try:
            annset.load()
        except (M1Error, ValueError, TypeError, KeyError) as exc:
            self._warn(f"stored annotations not restored: {exc}")
        self.annset = annset
        self.engine.set_all(annset.items.values())
        annset.subscribe(self._on_model_change)
        self.view.author = self.reader
        self.case.on_top = [self.view.ensure(ref, self.case.ras_affine, self.protocol.id)]
        self.hemisphere_warnings.clear()
        for ann in annset.items.values():
            self._check_hemisphere(ann, quiet=True)
        order = self.slot_order
        self._active = next((s for s in order if s not in annset), order[0])
        self._show_scale_bar()
        self._refresh_layer()
        self.case_changed.emit()
        self.active_changed.emit(self._active)
        self.measurements_changed.emit(self.protocol.slot_ids)
        return True

    def _show_scale_bar(self) -> None:
        """A scale bar in mm, on by default once a case is shown."""
        bar = getattr(self.viewer, "scale_bar", None)
        if bar is not None and not self._scale_bar_set:
            bar.visible = True
            bar.unit = "mm"
            self._scale_bar_set = True

    def reconfigure(
        self,
        *,
        protocol: Protocol | str | None = None,
        reader: str | None = None,
        store: AnnotationStore | None = None,
        locked: bool = False,
    ) -> None:
        """Switch protocol, reader and/or storage; reloads that combination's annotations.

        ``store``: where this case's annotations live (e.g. a study's
        :class:`~napari_m1.session.SessionAnnotationStore`); None keeps the current
        choice (the per-user autosave file unless set). ``locked`` makes the set read-only.
        """
        if store is not None:
            self._store_override = store
        if protocol is not None:
            self.protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
        if reader is not None:
            self.reader = reader
        self._forget()
        self.case.ref = None
        self._active = self.protocol.slot_ids[0]
        self.attach_case()
        if self.annset is not None:
            self.annset.locked = bool(locked)

    def _forget(self) -> None:
        if self.annset is not None:
            self.annset.unsubscribe(self._on_model_change)
        self.annset = None
        self._drag_preview.clear()
        self.hemisphere_warnings.clear()
        self._armed = None

    def detach(self, *, keep_layer: bool = False) -> None:
        """Forget the case (its layers are being removed): no model, no shapes.

        A study store belongs to one read: the next case uses the default file store
        unless :meth:`reconfigure` gives another. ``keep_layer``: empty the annotation
        layer but keep it in the viewer, for the next case to reuse (a case change that
        swaps the image layers' data in place; removing and adding a layer is slow).
        """
        self._forget()
        self.engine = None
        self.case.ref = None
        self._store_override = None
        if keep_layer and self.view.layer is not None:
            self.view.show({}, [], {}, {})
            self.view.publish_rows([])
        else:
            self.view.remove()
            self.case.on_top = []
        self.case_changed.emit()

    def save_as(self, path: str | Path) -> Path:
        """Save to a chosen file and keep autosaving there."""
        aset = self._require()
        self._store_override = aset.store = FileAnnotationStore(path)
        return save_annotations(path, aset)

    def open_file(self, path: str | Path) -> None:
        """Load an annotations file onto this case (checked against it); not undoable."""
        aset = self._require()
        loaded = load_annotations(path, case=aset.case, protocol=self.protocol)
        aset.replace_all(loaded.items.values())
        self._refresh_layer()

    def _on_maps_changed(self) -> None:
        """A map added (or removed) after the case: measure on it too (or no longer)."""
        if self.annset is None:
            self.attach_case()
            return
        self.engine = self.case.engine(self.protocol, self.reader)
        self.engine.set_all(self.annset.items.values())
        self._refresh_layer()
        self.measurements_changed.emit(self.protocol.slot_ids)

    def close(self) -> None:
        """Unbind keys and stop following the viewer."""
        unbind_keys(self.viewer, self._bound_keys)
        self._bound_keys.clear()
        self.case.close()
        self.closed = True

    # ------------------------------------------------------------------ geometry
    def _ras_affine(self) -> np.ndarray:
        return self.case.ras_affine

    def world_to_ras(self, world: Any) -> np.ndarray:
        """RAS mm of a world point (any leading axes ignored)."""
        ref = self.case.ref
        return world_to_ras(world, self._ras_affine(), ref.scale, ref.translate)

    def ras_to_world(self, ras: Any) -> np.ndarray:
        """3D world point (spatial axes) of a RAS point."""
        ref = self.case.ref
        return ras_to_world(ras, self._ras_affine(), ref.scale, ref.translate)

    def ras_to_data(self, ras: Any) -> np.ndarray:
        """Reference-grid index (the annotation layer's data coordinates) of RAS points."""
        return ras_to_index(ras, self._ras_affine())

    def data_to_ras(self, idx: Any) -> np.ndarray:
        """RAS mm of reference-grid indices (..., 3)."""
        return index_to_ras(idx, self._ras_affine())

    # ------------------------------------------------------------------ model -> view
    def _require(self) -> AnnotationSet:
        if self.annset is None:
            raise M1Error("open a case first (no GRE layer in the viewer)")
        return self.annset

    def _on_model_change(self, change: Change) -> None:
        self._drag_preview.pop(change.slot, None)
        changed: tuple[str, ...] = (change.slot,)
        if self.engine is not None:
            changed = self.engine.update(change.slot, change.after) or changed
        if change.slot == self.midline_slot:
            self._recheck_all_hemispheres()
            self._refresh_layer()
        else:
            self._check_hemisphere(change.after)
            if change.after is None:
                self.hemisphere_warnings.pop(change.slot, None)
            self._show_slot(change.slot)
        self.view.publish_rows(self.export_rows())
        self.annotations_changed.emit(change.slot)
        self.measurements_changed.emit(changed)
        if (
            change.after is not None
            and self.auto_advance
            and change.before is None
            and change.action == "add"
            and change.slot == self._active
            and change.after.kind in ("roi", "mrsi_voxel")  # a caliper: after its profile
        ):
            self.next_missing()

    def _colour(self, sid: str) -> str:
        from ._layer import COLOURS

        if sid in self.hemisphere_warnings:
            return COLOURS["warn"]
        if sid == self._active:
            return COLOURS["active"]
        ann = self._shown(sid)
        return COLOURS[ann.kind if ann is not None else "roi"]

    def _shown(self, sid: str) -> Annotation | None:
        if self.annset is None:
            return None
        return self._drag_preview.get(sid) or self.annset.items.get(sid)

    def _label(self, sid: str) -> str:
        from ._layer import short_label

        return short_label(self.protocol.slot(sid), self._shown(sid))

    def _show_slot(self, sid: str) -> None:
        """One slot changed: update its shape only (full rebuild on add/delete)."""
        if self.annset is None:
            return
        ann = self._shown(sid)
        if not self.view.update(sid, ann, self._colour(sid), self._label(sid), self._active):
            self._refresh_layer()
        elif ann is None and sid in self.view.shown_slots:
            self._refresh_layer()

    def _refresh_layer(self) -> None:
        if self.annset is None:
            return
        order = self.annset.done()
        shown = {s: self._shown(s) for s in order}
        self.view.show(
            shown,
            order,
            {s: self._colour(s) for s in order},
            {s: self._label(s) for s in order},
            self._active,
        )
        self.view.publish_rows(self.export_rows())
