"""The reader's verbs on the annotation model: walk the protocol, place, edit, undo,
set the midline; canvas events from the annotation layer become model changes here.

:class:`EditsMixin` is the half of :class:`~._controller.AnnotationController` that
changes the model; the other half attaches cases and shows the model.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from ..annotation import (
    MIDLINE_SLOT,
    Annotation,
    caliper_annotation,
    midline_annotation,
    roi_annotation,
)
from ..errors import M1Error
from ..geometry import hemisphere
from ..measure import sample_profile, suggest_band
from ..protocol import DEFAULT_ROI_AREA_MM2
from ._layer import LABEL_MODES

if TYPE_CHECKING:
    from ._controller import AnnotationController

__all__ = ["HEMISPHERE_WORDS", "EditsMixin", "walk_order"]

log = logging.getLogger(__name__)

HEMISPHERE_WORDS = {"L": "left", "R": "right", "M": "midline"}


def walk_order(protocol: Any) -> tuple[str, ...]:
    """Slot ids grouped by region in order of first appearance (both hemispheres of a
    region together), keeping the protocol's order within a region."""
    regions: dict[str, int] = {}
    for s in protocol.slots:
        regions.setdefault(s.region, len(regions))
    order = sorted(range(len(protocol.slots)), key=lambda i: regions[protocol.slots[i].region])
    return tuple(protocol.slots[i].id for i in order)


class EditsMixin:
    """Protocol navigation and edits of an :class:`AnnotationController`."""

    midline_slot = MIDLINE_SLOT

    # ------------------------------------------------------------------ slots
    @property
    def active(self: AnnotationController) -> str:
        """The slot the next placement fills."""
        return self._active

    @active.setter
    def active(self: AnnotationController, slot_id: str) -> None:
        self.protocol.slot(slot_id)
        if slot_id != self._active:
            old, self._active = self._active, slot_id
            self._armed = None if self._armed == "replace" else self._armed
            self.view.restyle({old: self._colour(old), slot_id: self._colour(slot_id)}, slot_id)
            if self.placing:
                self.placer.set_kind(self.protocol.slot(slot_id).kind)
            self.active_changed.emit(slot_id)

    @property
    def slot_order(self: AnnotationController) -> tuple[str, ...]:
        """The order the reader walks the slots in: area by area, both hemispheres of an
        area together (ROI then caliper), so the slices are swept once (foot at the
        vertex down to face, then the reference) instead of twice, once per hemisphere."""
        return walk_order(self.protocol)

    def next_missing(self: AnnotationController) -> str | None:
        """Make the next empty slot (after the active one in :attr:`slot_order`,
        wrapping) active."""
        if self.annset is None:
            return None
        ids = self.slot_order
        i = ids.index(self._active)
        for s in ids[i + 1 :] + ids[: i + 1]:
            if s not in self.annset:
                self.active = s
                return s
        return None

    def previous_slot(self: AnnotationController) -> str:
        """Make the previous slot (in :attr:`slot_order`, wrapping) active."""
        ids = self.slot_order
        self.active = ids[(ids.index(self._active) - 1) % len(ids)]
        return self._active

    def toggle_placing(self: AnnotationController, on: bool | None = None) -> bool:
        """Placement mode: a click places the active ROI, a drag draws its caliper.

        A done slot is never moved by a click: re-place it with :meth:`arm_replace`
        (Shift-R) or move it with the shape select tool. Dragging pans for ROIs; hold
        Space to pan while drawing calipers; the wheel zooms.
        """
        new = (not self.placing) if on is None else bool(on)
        self._armed = None if not new else self._armed
        changed = new != self.placing
        self.placing = new
        self.placer.set_kind(self.protocol.slot(self._active).kind if new else None)
        if changed:
            self.placing_changed.emit(new)
        return self.placing

    def arm_replace(self: AnnotationController) -> None:
        """The next click (ROI) or drag (caliper) re-places the active slot, even if done."""
        self._require()
        self._armed = "replace"
        self.toggle_placing(True)
        self._info(f"Click to re-place {self.protocol.slot(self._active).label or self._active}")

    def arm_midline(self: AnnotationController) -> None:
        """The next click on the interhemispheric fissure sets the midline (undoable)."""
        self._require()
        self._armed = "midline"
        self.toggle_placing(True)
        self.placer.set_kind("roi")  # a click, not a drag
        self._info("Click on the interhemispheric fissure to set the midline")

    def cycle_labels(self: AnnotationController) -> str:
        """Canvas labels: short (caliper lengths) -> all (names too) -> off."""
        mode = LABEL_MODES[(LABEL_MODES.index(self.view.label_mode) + 1) % len(LABEL_MODES)]
        self.view.set_label_mode(mode, self._active)
        self.display_changed.emit()
        return mode

    # ------------------------------------------------------------------ edits
    def place_roi_at(
        self: AnnotationController,
        world: Any,
        *,
        slot: str | None = None,
        area_mm2: float | None = None,
    ) -> Annotation:
        """Place an oval (a circle of the requested area) centred at a world point."""
        aset = self._require()
        sid = slot or self._active
        s = self.protocol.slot(sid)
        if s.kind != "roi":
            raise M1Error(f"{sid} is a caliper slot: drag a line instead")
        area = float(area_mm2 or self.area_override_mm2 or s.area_mm2 or DEFAULT_ROI_AREA_MM2)
        r = float(np.sqrt(area / np.pi))
        rz = self._ras_affine()[:3, :3]
        col, row = rz[:, 2], rz[:, 1]
        col, row = col / np.linalg.norm(col), row / np.linalg.norm(row)
        ann = roi_annotation(sid, self.world_to_ras(world), r * col, r * row, author=self.reader)
        aset.put(ann)
        return ann

    def place_mrsi_voxel_at(
        self: AnnotationController, world: Any, *, slot: str | None = None
    ) -> Annotation:
        """Fill an "MRSI voxel" slot with the MRSI voxel at a world point.

        The voxel is looked up through the MRSI grid's affine (scanner RAS, not the screen);
        the annotation keeps its indices and, for display, its in-plane square on the
        clicked slice (half-edges: the voxel's extent along the slice's two axes).
        """
        from .._mrsi_view import get_mrsi_view
        from ..annotation import mrsi_voxel_annotation

        aset = self._require()
        sid = slot or self._active
        s = self.protocol.slot(sid)
        if s.kind != "mrsi_voxel":
            raise M1Error(f"{sid} is not an MRSI voxel slot")
        hit = get_mrsi_view(self.viewer).voxel_at(world)
        if hit is None:
            raise M1Error(f"{s.label or sid}: no MRSI voxel here (click inside the MRSI grid)")
        aff = hit.source.fit.affine
        centre = (aff @ np.array([*hit.ijk, 1.0]))[:3]
        rz = self._ras_affine()[:3, :3]
        normal, col, row = (rz[:, a] / np.linalg.norm(rz[:, a]) for a in (0, 2, 1))
        centre = centre + float((hit.ras_mm - centre) @ normal) * normal  # on the clicked slice
        half = [0.5 * float(np.abs(d @ aff[:3, :3]).sum()) for d in (col, row)]
        ann = mrsi_voxel_annotation(
            sid, hit.ijk, centre, half[0] * col, half[1] * row, author=self.reader
        )
        aset.put(ann)
        return ann

    def place_caliper(
        self: AnnotationController, world1: Any, world2: Any, *, slot: str | None = None
    ) -> Annotation:
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

    def set_midline(self: AnnotationController, world: Any) -> Annotation:
        """Set the mid-sagittal plane through a world point (RAS x); undoable, stored."""
        ann = midline_annotation(self.world_to_ras(world), author=self.reader)
        self._require().put(ann, action="set midline")
        return ann

    @property
    def midline_x_mm(self: AnnotationController) -> float:
        """RAS x of the reader's midline (0, the scanner's mid-sagittal plane, if unset)."""
        ann = self.annset.get(MIDLINE_SLOT) if self.annset is not None else None
        return float(ann.centre_ras[0]) if ann is not None else 0.0

    def delete_active(self: AnnotationController) -> None:
        """Empty the active slot (undoable)."""
        self._require().delete(self._active)

    def undo(self: AnnotationController) -> None:
        """Undo the last annotation change."""
        self._require().undo()

    def redo(self: AnnotationController) -> None:
        """Redo the last undone annotation change."""
        self._require().redo()

    def accept_suggestion(
        self: AnnotationController, slot: str | None = None, *, echo: int | None = None
    ) -> bool:
        """Replace a caliper's end points with the suggested band edges (undoable); with
        auto-advance on, then go to the next missing slot (the profile was checked)."""
        sid = slot or self._active
        prof, sug = self.profile(sid, echo=echo)
        if prof is None or not sug.ok:
            return False
        ann = caliper_annotation(
            sid, prof.ras_at(sug.x1_mm), prof.ras_at(sug.x2_mm), author=self.reader,
            source="suggested",
        )  # fmt: skip
        self._require().put(ann, action="accept suggestion")
        if self.auto_advance and sid == self._active:
            self.next_missing()  # the profile was checked: on to the next slot
        return True

    def go_to(self: AnnotationController, slot: str | None = None) -> bool:
        """Show a slot's annotation: its slice, centred in the view (zoom kept).
        False when the slot is empty."""
        ann = self._shown(slot or self._active) if self.annset is not None else None
        if ann is None:
            return False
        from .._viewer import camera_of

        w = self.ras_to_world(ann.centre_ras)
        self.viewer.dims.set_point(self.viewer.dims.ndim - 3, float(w[0]))
        cam = camera_of(self.viewer)
        cam.center = tuple(float(x) for x in w[-len(cam.center) :])
        return True

    def shown(self: AnnotationController, slot: str) -> Annotation | None:
        """The annotation a slot shows: its drag preview while dragged, else the stored one."""
        return self._shown(slot)

    def profile(self: AnnotationController, slot: str | None = None, *, echo: int | None = None):
        """(Profile, BandSuggestion) along a caliper slot on a GRE echo (default: last)."""
        self._require()
        ann = self._shown(slot or self._active)
        if ann is None or ann.kind != "caliper":
            return None, None
        src = self.engine.reference  # type: ignore[union-attr]
        vols = src.volumes()
        e = (echo or len(vols)) - 1
        prof = sample_profile(vols[e][1], src.ras_affine, *ann.points)
        return prof, suggest_band(prof)

    def export_rows(self: AnnotationController) -> list[dict[str, Any]]:
        """Current measurement rows (the measurements.csv schema)."""
        return self.engine.rows() if self.engine is not None else []

    # ------------------------------------------------------------------ hemisphere
    def _check_hemisphere(self: AnnotationController, ann: Annotation | None, quiet=False) -> None:
        if ann is None or ann.slot == MIDLINE_SLOT:
            return
        slot = self.protocol.slot(ann.slot)
        got = hemisphere(ann.centre_ras, midline_x_mm=self.midline_x_mm)
        if got != slot.hemisphere:
            off = ann.centre_ras[0] - self.midline_x_mm
            msg = (
                f"{slot.label or ann.slot}: placed in the {HEMISPHERE_WORDS[got]} "
                f"{'plane' if got == 'M' else 'hemisphere'} ({off:+.1f} mm from the midline "
                f"at RAS x = {self.midline_x_mm:.1f} mm), expected {slot.hemisphere}"
            )
            self.hemisphere_warnings[ann.slot] = msg
            if not quiet:
                self._warn(msg)
        else:
            self.hemisphere_warnings.pop(ann.slot, None)

    def _recheck_all_hemispheres(self: AnnotationController) -> None:
        self.hemisphere_warnings.clear()
        for ann in (self.annset.items if self.annset is not None else {}).values():
            self._check_hemisphere(ann, quiet=True)

    def _warn(self, msg: str) -> None:
        log.warning(msg)
        from napari.utils.notifications import show_warning

        show_warning(msg)

    def _info(self, msg: str) -> None:
        from napari.utils.notifications import show_info

        show_info(msg)

    # ------------------------------------------------------------------ canvas -> model
    def _on_clicked(self: AnnotationController, world: Any) -> None:
        if self.annset is None:
            return
        armed, self._armed = self._armed, None
        try:
            if armed == "midline":
                self.set_midline(world)
                self.placer.set_kind(self.protocol.slot(self._active).kind)
            elif self.protocol.slot(self._active).kind == "roi":
                if self._active in self.annset and armed != "replace":
                    self._refuse_done()
                    return
                self.place_roi_at(world)
            elif self.protocol.slot(self._active).kind == "mrsi_voxel":
                if self._active in self.annset and armed != "replace":
                    self._refuse_done()
                    return
                self.place_mrsi_voxel_at(world)
        except M1Error as exc:
            self._warn(str(exc))

    def _on_line_drawn(self: AnnotationController, world1: Any, world2: Any) -> None:
        if self.annset is None:
            return
        armed, self._armed = self._armed, None
        if self._active in self.annset and armed != "replace":
            self._refuse_done()
            return
        try:
            self.place_caliper(world1, world2)
        except M1Error as exc:
            self._warn(str(exc))

    def _refuse_done(self: AnnotationController) -> None:
        s = self.protocol.slot(self._active)
        self._warn(
            f"{s.label or s.id} is done: press Shift-R to re-place it, or move it with the "
            "select tool (S); N goes to the next missing slot"
        )

    def _on_shape_edited(self: AnnotationController, sid: str, ann: Annotation, final: bool):
        if self.annset is None or sid not in self.annset:
            return
        if not final:  # live preview during a drag
            self._drag_preview[sid] = ann
            changed = self.engine.update(sid, ann) if self.engine is not None else (sid,)
            if changed:  # napari repeats the last position at release: nothing to redraw
                self.measurements_changed.emit(changed)
            return
        try:
            self.annset.put(ann, action="move/resize")
        except M1Error as exc:
            self._drag_preview.pop(sid, None)
            changed = self.engine.update(sid, self.annset.items.get(sid)) if self.engine else ()
            self._warn(str(exc))
            self._refresh_layer()
            self.measurements_changed.emit(changed or (sid,))

    def _on_shapes_deleted(self: AnnotationController, slots: tuple[str, ...]) -> None:
        try:
            for s in slots:
                if self.annset is not None and s in self.annset:
                    self.annset.delete(s)
        except M1Error as exc:
            self._warn(str(exc))
            self._refresh_layer()

    def _on_shape_drawn(self: AnnotationController, shape_type: str, verts: Any) -> None:
        """A shape drawn with napari's own tools: give it the active slot, or refuse."""
        if self.annset is None:
            return
        slot = self.protocol.slot(self._active)
        if slot.kind == "mrsi_voxel":
            self._warn(f"{slot.label or slot.id}: click the voxel with Place on (no drawing)")
            self._refresh_layer()
            return
        want = "ellipse" if slot.kind == "roi" else "line"
        if self._active in self.annset or shape_type != want:
            why = (
                "is already filled: move or delete its shape"
                if self._active in self.annset
                else f"needs a {want}"
            )
            self._warn(f"{slot.label or slot.id} {why}")
            self._refresh_layer()
            return
        ann = self.view.annotation_from_shape(self._active, verts, slot.kind)
        try:
            if ann is None:
                raise M1Error(f"{slot.label or slot.id}: degenerate shape")
            self.annset.put(ann)
        except M1Error as exc:
            self._warn(str(exc))
            self._refresh_layer()
