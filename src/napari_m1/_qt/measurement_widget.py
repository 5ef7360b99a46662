"""Dock widget "M1 measurements": live table and the intensity profile of the active caliper."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .._annotate import AnnotationController, get_controller

if TYPE_CHECKING:
    import napari

__all__ = ["TABLE_COLUMNS", "MeasurementWidget"]

#: (header, row key, format)
TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Slot", "slot", "s"),
    ("Map", "_map", "s"),
    ("Mean", "mean", ".1f"),
    ("SD", "sd", ".1f"),
    ("Median", "median", ".1f"),
    ("Voxels", "n_voxels", ".1f"),
    ("Area mm²", "area_mm2", ".2f"),
    ("Norm. SI", "normalised_si", ".3f"),
    ("Thick. mm", "thickness_mm", ".2f"),
    ("Coverage", "coverage_fraction", ".0%"),
)


def _fmt(v: Any, f: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return format(v, f) if f != "s" else str(v)


def _map_name(r: dict[str, Any]) -> str:
    kind = r.get("layer_kind") or ""
    if kind == "gre":
        te = r.get("te_ms")
        return f"GRE e{r['echo']}" + (f" ({te:g} ms)" if te else "")
    if kind == "qsm":
        return "QSM χ ppm"
    if kind == "mrsi":
        return f"MRSI {r.get('metabolite')}"
    return "caliper"


class MeasurementWidget(QWidget):
    """Live measurements of every annotation; the active caliper's intensity profile."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.ctl: AnnotationController = get_controller(napari_viewer)
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels([c[0] for c in TABLE_COLUMNS])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMinimumHeight(220)
        self.echo_box = QComboBox()
        self.accept_button = QPushButton("Accept suggested end points")
        self.profile_label = QLabel("Select a caliper slot to see its profile.")
        self.profile_label.setWordWrap(True)

        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4, 2.4), tight_layout=True)
        self.figure.patch.set_facecolor("#262930")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(200)
        self.ax = self.figure.add_subplot(111)

        row = QHBoxLayout()
        row.addWidget(QLabel("Profile echo"))
        row.addWidget(self.echo_box)
        row.addWidget(self.accept_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table)
        lay.addLayout(row)
        lay.addWidget(self.canvas)
        lay.addWidget(self.profile_label)

        self.accept_button.clicked.connect(self._on_accept)
        self.echo_box.currentIndexChanged.connect(lambda _i: self._refresh_profile())
        self.ctl.measurements_changed.connect(self._refresh)
        self.ctl.active_changed.connect(lambda _s: self._refresh_profile())
        self.ctl.case_changed.connect(self._refresh_echoes)
        self._refresh_echoes()
        self._refresh()

    # ------------------------------------------------------------------ table
    def rows(self) -> list[dict[str, Any]]:
        """The rows shown (the export rows, MRSI ratios included)."""
        return self.ctl.export_rows()

    def _refresh(self, *args: Any) -> None:
        rows = self.rows()
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            r = dict(r, _map=_map_name(r))
            for j, (_h, key, f) in enumerate(TABLE_COLUMNS):
                item = QTableWidgetItem(_fmt(r.get(key), f))
                if key == "normalised_si" and r.get("normalised_si_note"):
                    item.setToolTip(r["normalised_si_note"])
                self.table.setItem(i, j, item)
        self._refresh_profile()

    # ------------------------------------------------------------------ profile
    def _refresh_echoes(self) -> None:
        self.echo_box.blockSignals(True)
        self.echo_box.clear()
        eng = self.ctl.engine
        if eng is not None:
            vols = eng.reference.volumes()
            tes = eng.reference.echo_times_ms or []
            for n, _v in vols:
                e = n or 1
                te = f" ({tes[e - 1]:g} ms)" if len(tes) >= e else ""
                self.echo_box.addItem(f"echo {e}{te}", e)
            self.echo_box.setCurrentIndex(len(vols) - 1)
        self.echo_box.blockSignals(False)

    def current_echo(self) -> int | None:
        """Echo used for the profile (1-based)."""
        return self.echo_box.currentData()

    def _refresh_profile(self) -> None:
        ax = self.ax
        ax.clear()
        ax.set_facecolor("#262930")
        for s in ax.spines.values():
            s.set_color("#9aa3ad")
        ax.tick_params(colors="#d0d4d9", labelsize=7)
        self.accept_button.setEnabled(False)
        if not self.ctl.has_case:
            self.canvas.draw_idle()
            return
        prof, sug = self.ctl.profile(echo=self.current_echo())
        if prof is None:
            self.profile_label.setText("Select a caliper slot to see its profile.")
            self.canvas.draw_idle()
            return
        ax.plot(prof.x_mm, prof.values, color="#e0e0e0", lw=1.2)
        ax.axvspan(0, prof.length_mm, color="#ff5cf0", alpha=0.15, label="your caliper")
        text = f"Your caliper: {prof.length_mm:.2f} mm."
        if sug.ok:
            ax.axvline(sug.x1_mm, color="#ffd400", ls="--", lw=1)
            ax.axvline(sug.x2_mm, color="#ffd400", ls="--", lw=1, label="suggested")
            text += f" Suggested (half-level edges of the dark band): {sug.thickness_mm:.2f} mm."
            self.accept_button.setEnabled(True)
        else:
            text += f" No suggestion: {sug.reason}."
        ax.set_xlabel("distance along caliper (mm)", color="#d0d4d9", fontsize=8)
        ax.set_ylabel("signal", color="#d0d4d9", fontsize=8)
        ax.legend(fontsize=7, loc="lower right", facecolor="#262930", labelcolor="#d0d4d9")
        self.profile_label.setText(text)
        self.canvas.draw_idle()

    def _on_accept(self) -> None:
        self.ctl.accept_suggestion(echo=self.current_echo())
