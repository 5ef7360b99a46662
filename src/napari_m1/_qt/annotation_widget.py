"""Dock widget "M1 annotation": the protocol checklist and the placement tools."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .._annotate import KEYMAP, AnnotationController, get_controller
from .._viewer import get_orientation
from ..annotation import FileAnnotationStore
from ..errors import M1Error
from ..protocol import DEFAULT_ROI_AREA_MM2, available_protocols

if TYPE_CHECKING:
    import napari

__all__ = ["AnnotationWidget"]

_KEY_OF = {m: k for k, m in KEYMAP.items()}


class AnnotationWidget(QWidget):
    """Checklist of the protocol's slots (done / missing / active) and the tools to fill them.

    Place: click in the image to put the active slot's oval (requested area, current
    slice) or press-drag-release to draw its caliper. Move or resize with napari's
    shape select tool (S) on the "M1 annotations" layer; every edit is undoable,
    autosaved and measured at once (see the "M1 measurements" dock).
    """

    def __init__(
        self,
        napari_viewer: napari.Viewer,
        parent: QWidget | None = None,
        *,
        dock_measurements: bool = True,
    ) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.ctl: AnnotationController = get_controller(napari_viewer)
        get_orientation(napari_viewer)

        self.protocol_box = QComboBox()
        self._protocols = available_protocols()
        for pid, proto in self._protocols.items():
            self.protocol_box.addItem(proto.name, pid)
        self.protocol_box.setCurrentIndex(list(self._protocols).index(self.ctl.protocol.id))
        self.reader_edit = QLineEdit(self.ctl.reader)
        self.reader_edit.setPlaceholderText("reader id (optional outside a study)")
        self.area_spin = QDoubleSpinBox()
        self.area_spin.setRange(0.25, 100.0)
        self.area_spin.setDecimals(2)
        self.area_spin.setSuffix(" mm²")
        self.area_spin.setValue(self.ctl.area_override_mm2 or DEFAULT_ROI_AREA_MM2)
        self.area_spin.setToolTip(
            "Area of a newly placed oval; the protocol's default is "
            f"{DEFAULT_ROI_AREA_MM2:g} mm². The true area is always reported."
        )
        self.advance_box = QCheckBox("After placing, go to the next missing slot")
        self.advance_box.setChecked(self.ctl.auto_advance)

        self.checklist = QListWidget()
        self.checklist.setMinimumHeight(260)
        self.progress = QLabel("")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        def btn(text: str, method: str) -> QPushButton:
            key = _KEY_OF.get(method)
            b = QPushButton(f"{text} ({key})" if key else text)
            b.setToolTip(f"Shortcut: {key}" if key else text)
            return b

        self.place_button = btn("Place", "toggle_placing")
        self.place_button.setCheckable(True)
        self.place_button.setToolTip(
            "Shortcut: O. On: a click places the active ROI (a drag pans), a drag draws its "
            "caliper (hold Space to pan); the wheel zooms. A done slot is never moved by a "
            "click: Shift-R re-places it, the select tool (S) moves it."
        )
        self.replace_button = btn("Re-place", "arm_replace")
        self.replace_button.setToolTip("Shift-R: the next click/drag re-places the active slot")
        self.midline_button = btn("Set midline", "arm_midline")
        self.midline_button.setToolTip(
            "Shift-M, then click on the interhemispheric fissure: hemispheres are judged "
            "against this sagittal plane (stored with the annotations; undoable)"
        )
        self.midline_label = QLabel("")
        self.midline_label.setWordWrap(True)
        self.midline_label.setToolTip(
            "L/R: the side of the midline an annotation lies on (scanner RAS x, from the "
            "affine). M: exactly on the midline plane."
        )
        self.labels_box = QComboBox()
        for mode, text in (
            ("short", "Labels: lengths"),
            ("all", "Labels: all"),
            ("off", "Labels: off"),
        ):
            self.labels_box.addItem(text, mode)
        self.labels_box.setToolTip("Shift-T cycles the canvas labels")  # fmt: skip
        self.next_button = btn("Next missing", "next_missing")
        self.prev_button = btn("Previous", "previous_slot")
        self.delete_button = btn("Delete", "delete_active")
        self.undo_button = btn("Undo", "undo")
        self.redo_button = btn("Redo", "redo")
        self.export_button = QPushButton("Export CSV…")
        self.save_button = QPushButton("Save annotations as…")
        self.open_button = QPushButton("Open annotations…")

        form = self._form = QFormLayout()
        form.addRow("Protocol", self.protocol_box)
        form.addRow("Reader", self.reader_edit)
        form.addRow("ROI area", self.area_spin)
        grid = QGridLayout()
        for i, b in enumerate(
            (
                self.place_button,
                self.next_button,
                self.replace_button,
                self.prev_button,
                self.delete_button,
                self.midline_button,
                self.undo_button,
                self.redo_button,
                self.labels_box,
            )
        ):
            grid.addWidget(b, i // 3, i % 3)
        files = QGridLayout()
        files.addWidget(self.export_button, 0, 0, 1, 2)
        files.addWidget(self.save_button, 1, 0)
        files.addWidget(self.open_button, 1, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.advance_box)
        lay.addWidget(self.progress)
        lay.addWidget(self.checklist)
        lay.addLayout(grid)
        lay.addWidget(self.midline_label)
        lay.addLayout(files)
        lay.addWidget(self.status)
        lay.addStretch(1)

        self.checklist.currentRowChanged.connect(self._on_row_changed)
        self.checklist.itemClicked.connect(self._on_item_clicked)
        self.replace_button.clicked.connect(lambda: self._call("arm_replace"))
        self.midline_button.clicked.connect(lambda: self._call("arm_midline"))
        self.labels_box.currentIndexChanged.connect(self._on_labels_changed)
        self.place_button.toggled.connect(self._on_place_toggled)
        self.next_button.clicked.connect(lambda: self._call("next_missing"))
        self.prev_button.clicked.connect(lambda: self._call("previous_slot"))
        self.delete_button.clicked.connect(lambda: self._call("delete_active"))
        self.undo_button.clicked.connect(lambda: self._call("undo"))
        self.redo_button.clicked.connect(lambda: self._call("redo"))
        self.export_button.clicked.connect(lambda: self.export_csv())
        self.save_button.clicked.connect(lambda: self.save_as())
        self.open_button.clicked.connect(lambda: self.open_annotations())
        self.protocol_box.currentIndexChanged.connect(self._on_protocol_changed)
        self.reader_edit.editingFinished.connect(self._on_reader_changed)
        self.area_spin.valueChanged.connect(self._on_area_changed)
        self.advance_box.toggled.connect(self._on_advance_toggled)
        self.ctl.active_changed.connect(self._on_active_changed)
        self.ctl.annotations_changed.connect(self._refresh)
        self.ctl.case_changed.connect(self._refresh)
        self.ctl.placing_changed.connect(self._on_placing_changed)
        self.ctl.display_changed.connect(self._refresh)
        self._refresh()
        if dock_measurements:
            self._dock_measurements()

    def _dock_measurements(self) -> None:
        from .measurement_widget import MeasurementWidget

        window = getattr(self.viewer, "window", None)
        docks = getattr(window, "dock_widgets", {}) if window is not None else {}
        if window is None or any(isinstance(w, MeasurementWidget) for w in docks.values()):
            return
        try:
            window.add_plugin_dock_widget("napari-m1", "M1 measurements")
        except Exception:  # docking is a convenience, never fatal
            return

    # ------------------------------------------------------------------ actions
    def _call(self, method: str) -> None:
        try:
            getattr(self.ctl, method)()
        except M1Error as exc:
            self.status.setText(str(exc))
        self._refresh()

    def export_csv(self, path: str | Path | None = None) -> Path | None:
        """Write the measurements CSV (asks for a file when ``path`` is None)."""
        from ..measure import write_measurements_csv

        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Export measurements", "measurements.csv", "CSV (*.csv)"
            )
            if not path:
                return None
        out = write_measurements_csv(path, self.ctl.export_rows())
        self.status.setText(f"Exported {Path(out).name}")
        return out

    def save_as(self, path: str | Path | None = None) -> Path | None:
        """Save the annotations to a chosen file (autosave then goes there)."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self,
                "Save annotations",
                "annotations.m1ann.jsonl",
                "napari-m1 annotations (*.jsonl)",
            )
            if not path:
                return None
        try:
            out = self.ctl.save_as(path)
        except M1Error as exc:
            self.status.setText(str(exc))
            return None
        self.status.setText(f"Saving to {Path(out).name}")
        return out

    def open_annotations(self, path: str | Path | None = None) -> bool:
        """Load an annotations file onto the open case (refused if it is another case's)."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self, "Open annotations", "", "napari-m1 annotations (*.jsonl)"
            )
            if not path:
                return False
        try:
            self.ctl.open_file(path)
        except M1Error as exc:
            from napari.utils.notifications import show_error

            self.status.setText(str(exc))
            show_error(str(exc))
            return False
        self._refresh()
        return True

    # ------------------------------------------------------------------ handlers
    def _on_place_toggled(self, on: bool) -> None:
        if self.ctl.placing != on:
            self.ctl.toggle_placing(on)

    def _on_row_changed(self, row: int) -> None:
        ids = self.ctl.slot_order
        if 0 <= row < len(ids) and ids[row] != self.ctl.active:
            self.ctl.active = ids[row]
            self.ctl.go_to(ids[row])  # a done slot: its slice, centred

    def _on_item_clicked(self, item: QListWidgetItem) -> None:
        sid = item.data(Qt.ItemDataRole.UserRole)
        if sid == self.ctl.active:  # a click on the active row also jumps back to it
            self.ctl.go_to(sid)

    def _on_placing_changed(self, on: bool) -> None:
        self.place_button.blockSignals(True)
        self.place_button.setChecked(on)
        self.place_button.blockSignals(False)

    def _on_labels_changed(self, index: int) -> None:
        mode = self.labels_box.itemData(index)
        if mode and mode != self.ctl.view.label_mode:
            self.ctl.view.set_label_mode(mode, self.ctl.active)

    def _on_active_changed(self, slot_id: str) -> None:
        self._refresh()

    def _on_protocol_changed(self, index: int) -> None:
        pid = self.protocol_box.itemData(index)
        if pid and pid != self.ctl.protocol.id:
            self.ctl.reconfigure(protocol=self._protocols[pid])
            self._refresh()

    def _on_reader_changed(self) -> None:
        reader = self.reader_edit.text().strip()
        if reader != self.ctl.reader:
            self.ctl.reconfigure(reader=reader)
            self._refresh()

    def _on_area_changed(self, value: float) -> None:
        self.ctl.area_override_mm2 = float(value)

    def _on_advance_toggled(self, on: bool) -> None:
        self.ctl.auto_advance = bool(on)

    def _refresh(self, *args: Any) -> None:
        ctl = self.ctl
        in_study = ctl.store is not None and not isinstance(ctl.store, FileAnnotationStore)
        if self.reader_edit.text() != ctl.reader:
            self.reader_edit.setText(ctl.reader)
        for w in (self.protocol_box, self.reader_edit, self.save_button, self.open_button):
            w.setEnabled(not in_study)  # a study fixes protocol, reader and storage
        # ... and the Reader session dock names them: less height in a study
        self._form.setRowVisible(self.protocol_box, not in_study)
        self._form.setRowVisible(self.reader_edit, not in_study)
        self.save_button.setVisible(not in_study)
        self.open_button.setVisible(not in_study)
        self.place_button.blockSignals(True)
        self.place_button.setChecked(ctl.placing)
        self.place_button.blockSignals(False)
        self.checklist.blockSignals(True)
        aset = ctl.annset
        order = ctl.slot_order
        ids = [self.checklist.item(i).data(Qt.ItemDataRole.UserRole) for i in range(
            self.checklist.count())]  # fmt: skip
        if ids != list(order):  # another protocol: rebuild; otherwise update in place
            self.checklist.clear()
            for sid in order:
                item = QListWidgetItem()
                item.setData(Qt.ItemDataRole.UserRole, sid)
                self.checklist.addItem(item)
        for i, sid in enumerate(order):
            slot = ctl.protocol.slot(sid)
            done = aset is not None and slot.id in aset
            warn = slot.id in ctl.hemisphere_warnings
            mark = "⚠" if warn else ("✓" if done else "○")
            item = self.checklist.item(i)
            text = f"{mark}  {slot.label or slot.id}"
            if item.text() != text:
                item.setText(text)
            colour = "#ff6b5e" if warn else ("" if done else "#9aa3ad")
            if item.data(Qt.ItemDataRole.UserRole + 1) != colour:
                item.setData(Qt.ItemDataRole.UserRole + 1, colour)
                item.setForeground(QColor(colour) if colour else self.palette().text())
            tip = ctl.hemisphere_warnings.get(slot.id, "")
            if item.toolTip() != tip:
                item.setToolTip(tip)
        self.checklist.setCurrentRow(ctl.slot_order.index(ctl.active))
        self.checklist.blockSignals(False)
        if aset is None:
            self.progress.setText("Open a case to start annotating.")
        else:
            n = len(ctl.protocol.slots)
            self.progress.setText(
                f"{len(aset.done())} of {n} slots done · active: "
                f"{ctl.protocol.slot(ctl.active).label}"
            )
        self.undo_button.setEnabled(bool(aset and aset.can_undo))
        midline = aset.get("midline") if aset is not None else None
        self.midline_label.setText(
            f"Midline: RAS x = {midline.centre_ras[0]:.1f} mm (set by the reader). "
            "Hemisphere check: L / R of it, M = on it."
            if midline is not None
            else "Midline: the scanner's x = 0 plane (Set midline to click the fissure). "
            "Hemisphere check: L / R of it, M = on it."
        )
        i = self.labels_box.findData(ctl.view.label_mode)
        if i >= 0 and i != self.labels_box.currentIndex():
            self.labels_box.blockSignals(True)
            self.labels_box.setCurrentIndex(i)
            self.labels_box.blockSignals(False)
        self.redo_button.setEnabled(bool(aset and aset.can_redo))
