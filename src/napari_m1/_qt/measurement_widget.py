"""Dock widget "M1 measurements": the reader's summary, the full table, the caliper profile.

The summary answers the reader's question first: per Penfield area, left and right,
normalised SI (on the chosen echo), deep-layer thickness, χ and the MRSI ratio. The long
table (every row of the measurements CSV) is one tab away. Both update only the cells
that changed; the profile plot is redrawn only when its caliper or echo changes.
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from .._annotate import AnnotationController, get_controller

if TYPE_CHECKING:
    import napari

__all__ = [
    "SUMMARY_COLUMNS",
    "TABLE_COLUMNS",
    "MeasurementWidget",
    "fmt_number",
    "set_numbers_hidden",
]

#: Long table: (header, row key, format). "g3": three significant digits.
TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Slot", "slot", "s"),
    ("Map", "_map", "s"),
    ("Mean", "mean", "g3"),
    ("SD", "sd", "g3"),
    ("Median", "median", "g3"),
    ("Voxels", "n_voxels", ".1f"),
    ("Area mm²", "area_mm2", ".2f"),
    ("Norm. SI", "normalised_si", ".3f"),
    ("Thick. mm", "thickness_mm", ".2f"),
    ("χ ppb", "_chi_ppb", ".0f"),
    ("Coverage", "coverage_fraction", ".0%"),
)
#: Summary: one row per Penfield area and hemisphere.
SUMMARY_COLUMNS: tuple[str, ...] = ("Area", "Norm SI", "Thick mm", "χ ppb", "MRSI ratio")
HIDDEN_TEXT = "Numbers hidden for this read (study setting)."

_HIDDEN: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
_WIDGETS: weakref.WeakSet[MeasurementWidget] = weakref.WeakSet()


def set_numbers_hidden(viewer: Any, hidden: bool) -> None:
    """Hide (or show) live numbers in every measurement dock of ``viewer`` (now and later)
    and the map values of the hover readout (the position stays).

    For blinded reads where numbers could bias the reader's visual answers.
    """
    from .._reading import get_reading_tools

    _HIDDEN[viewer] = bool(hidden)
    get_reading_tools(viewer).hide_values = bool(hidden)  # the hover readout too
    for w in list(_WIDGETS):
        if w.viewer == viewer:  # napari hands plugins a proxy of the viewer
            w.hide_numbers = bool(hidden)


def fmt_number(v: Any, f: str) -> str:
    """Format a cell: ``""`` for missing/NaN, ``"g3"`` = 3 significant digits, fixed point.

    >>> fmt_number(0.045, "g3"), fmt_number(512.34, "g3"), fmt_number(1.6, "g3")
    ('0.0450', '512', '1.60')
    """
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if f == "s":
        return str(v)
    if f == "g3":
        x = float(v)
        if x == 0:
            return "0"
        digits = max(0, 2 - math.floor(math.log10(abs(x))))
        return f"{x:.{digits}f}"
    return format(v, f)


def _map_name(r: dict[str, Any]) -> str:
    kind = r.get("layer_kind") or ""
    if kind == "gre":
        te = r.get("te_ms")
        return f"GRE e{r['echo']}" + (f" (TE {te:g} ms)" if te else "")
    if kind == "qsm":
        return "QSM χ ppm"
    if kind == "mrsi":
        return f"MRSI {r.get('metabolite')}"
    return "caliper"


def _item(text: str) -> QTableWidgetItem:
    it = QTableWidgetItem(text)
    it.setFlags(it.flags() & ~Qt.ItemFlag.ItemIsEditable)
    return it


#: profile key meaning "redraw on the next refresh" (None means "no caliper, drawn")
_STALE = object()


class _IncrementalTable(QTableWidget):
    """A read-only table that changes only the cells whose text changed.

    A new set of row keys rebuilds the table with updates disabled and resizes the
    columns once at the end (never per cell).
    """

    def __init__(self, headers: tuple[str, ...]) -> None:
        super().__init__(0, len(headers))
        self.setHorizontalHeaderLabels(list(headers))
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(20)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.horizontalHeader().setStretchLastSection(True)
        self._keys: list[Any] = []
        #: cells written by the last fill (a test and benchmark seam)
        self.cells_written = 0

    def fill(self, keys: list[Any], cells: list[list[tuple[str, str]]]) -> None:
        """``cells[i][j] = (text, tooltip)`` for row key ``keys[i]``."""
        self.cells_written = 0
        if keys != self._keys:
            self.setUpdatesEnabled(False)
            try:
                self.setRowCount(len(keys))
                for i, row in enumerate(cells):
                    for j, (text, tip) in enumerate(row):
                        it = _item(text)
                        if tip:
                            it.setToolTip(tip)
                        self.setItem(i, j, it)
                        self.cells_written += 1
                self._keys = list(keys)
                self.resizeColumnsToContents()
            finally:
                self.setUpdatesEnabled(True)
            return
        for i, row in enumerate(cells):
            for j, (text, tip) in enumerate(row):
                it = self.item(i, j)
                if it is None:
                    it = _item("")
                    self.setItem(i, j, it)
                if it.text() != text:
                    it.setText(text)
                    self.cells_written += 1
                if it.toolTip() != tip:
                    it.setToolTip(tip)


class MeasurementWidget(QWidget):
    """Live measurements of every annotation; the profile of the current caliper.

    The profile follows the active slot when it is a caliper, otherwise the caliper
    edited or selected last, so it can still be checked (and its suggestion accepted) after the
    checklist moved on.
    """

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.ctl: AnnotationController = get_controller(napari_viewer)
        self._hide = bool(_HIDDEN.get(napari_viewer, False))
        self._last_caliper: str | None = None
        self._profile_key: Any = _STALE
        self._profile_empty = False  # True: the axes show no profile (nothing to redraw)
        self._long_dirty = True
        #: profile redraws so far (a test and benchmark seam)
        self.profile_draws = 0

        self.echo_box = QComboBox()
        self.echo_box.setToolTip("Echo for the summary's normalised SI and for the profile")
        self.summary = _IncrementalTable(SUMMARY_COLUMNS)
        self.summary.setToolTip(
            "Norm. SI: ROI mean / reference ROI mean on the chosen echo. Thick.: deep-layer "
            "caliper in the slice plane. χ: QSM ROI mean in ppb (parts per billion)."
        )
        self.table = _IncrementalTable(tuple(c[0] for c in TABLE_COLUMNS))
        self.tabs = QTabWidget()
        self.tabs.addTab(self.summary, "Summary")
        self.tabs.addTab(self.table, "All rows")
        self.tabs.setMinimumHeight(120)
        self.hidden_label = QLabel(HIDDEN_TEXT)
        self.hidden_label.setWordWrap(True)
        self.hidden_label.setVisible(self._hide)
        self.accept_button = QPushButton("Accept suggested")
        self.accept_button.setToolTip("Move the caliper's ends to the suggested band edges")
        self.profile_title = QLabel("")
        self.profile_title.setWordWrap(True)
        self.profile_label = QLabel("Select a caliper slot to see its profile.")
        self.profile_label.setWordWrap(True)

        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4, 1.6), tight_layout=True)
        self.figure.patch.set_facecolor("#262930")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(110)
        self.ax = self.figure.add_subplot(111)

        top = QHBoxLayout()
        top.addWidget(QLabel("Echo"))
        top.addWidget(self.echo_box, 1)
        prow = QHBoxLayout()
        prow.addWidget(self.profile_title, 1)
        prow.addWidget(self.accept_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(3)
        lay.addLayout(top)
        lay.addWidget(self.tabs, 3)
        self.tabs.setVisible(not self._hide)
        lay.addWidget(self.hidden_label)
        lay.addLayout(prow)
        lay.addWidget(self.canvas, 2)
        lay.addWidget(self.profile_label)

        self.accept_button.clicked.connect(self._on_accept)
        self.echo_box.currentIndexChanged.connect(self._on_echo_changed)
        self.tabs.currentChanged.connect(lambda _i: self._fill_long())
        self.ctl.measurements_changed.connect(self._refresh)
        self.ctl.annotations_changed.connect(self._on_annotation_changed)
        self.ctl.active_changed.connect(self._on_active_changed)
        self.ctl.case_changed.connect(self._on_case_changed)
        _WIDGETS.add(self)
        self._refresh_echoes()
        self.hide_numbers = self._hide  # shows or hides the tables, then fills them

    # ------------------------------------------------------------------ blinding
    @property
    def hide_numbers(self) -> bool:
        """True: live numbers are hidden (blinded visual reads); the profile shape stays."""
        return self._hide

    @hide_numbers.setter
    def hide_numbers(self, value: bool) -> None:
        if bool(value) == self._hide:  # set at every case change: no redraw when unchanged
            return
        self._hide = bool(value)
        self.tabs.setVisible(not self._hide)
        self.hidden_label.setVisible(self._hide)
        self._profile_key = _STALE
        self._refresh()

    # ------------------------------------------------------------------ tables
    def rows(self) -> list[dict[str, Any]]:
        """The rows of the long table (the export rows, MRSI ratios included)."""
        return self.ctl.export_rows()

    def current_echo(self) -> int | None:
        """Echo (1-based) for the summary's normalised SI and the profile."""
        return self.echo_box.currentData()

    def summary_rows(self, rows: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Per area and hemisphere: ``norm_si``, ``thickness_mm``, ``chi_ppb``, ``ratio``.

        Values are floats (NaN when not measured yet); ``ratio_name`` names the MRSI ratio
        (the first ``NAA/…`` ratio measured, else the first ratio).
        """
        rows = self.rows() if rows is None else rows
        proto = self.ctl.protocol
        echo = self.current_echo()
        ratio_names = [
            str(r["metabolite"])
            for r in rows
            if r.get("layer_kind") == "mrsi" and "/" in str(r.get("metabolite") or "")
        ]
        ratio = next((m for m in ratio_names if m.startswith("NAA/")), None) or next(
            iter(ratio_names), None
        )
        by_slot: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_slot.setdefault(r["slot"], []).append(r)
        nan = float("nan")
        recs: dict[tuple[str, str], dict[str, Any]] = {}
        for s in proto.slots:
            if s.role == "measure" and (s.region, "L") not in recs:
                for hemi in ("L", "R"):
                    recs[(s.region, hemi)] = dict(
                        area=s.region,
                        hemisphere=hemi,
                        norm_si=nan,
                        norm_si_note="",
                        thickness_mm=nan,
                        chi_ppb=nan,
                        ratio=nan,
                        ratio_name=ratio or "",
                    )
        # one pass over the slots in protocol order (each area's and hemisphere's own
        # slots in the same order as before): O(slots + rows), not areas x slots
        for s in proto.slots:
            rec = recs.get((s.region, s.hemisphere)) if s.role == "measure" else None
            if rec is None:
                continue
            for r in by_slot.get(s.id, ()):
                kind = r.get("layer_kind")
                if s.kind == "caliper" and math.isnan(rec["thickness_mm"]):
                    rec["thickness_mm"] = _f(r.get("thickness_mm"))
                elif kind == "gre" and r.get("echo") == echo:
                    rec["norm_si"] = _f(r.get("normalised_si"))
                    rec["norm_si_note"] = r.get("normalised_si_note") or ""
                elif kind == "qsm" and r.get("chi_ppm") is not None:
                    rec["chi_ppb"] = 1000.0 * _f(r.get("chi_ppm"))
                elif kind == "mrsi" and ratio and r.get("metabolite") == ratio:
                    rec["ratio"] = _f(r.get("mean"))
        out = list(recs.values())
        return out

    def _refresh(self, *args: Any) -> None:
        if not self._hide:
            rows = self.rows()
            self._fill_summary(rows)
            self._long_dirty = True
            self._fill_long(rows)
        self._refresh_profile()

    def _fill_summary(self, rows: list[dict[str, Any]]) -> None:
        recs = self.summary_rows(rows)
        ratio = next((r["ratio_name"] for r in recs if r["ratio_name"]), "")
        head = self.summary.horizontalHeaderItem(4)
        if head is not None and head.text() != (ratio or "MRSI ratio"):
            head.setText(ratio or "MRSI ratio")
            self.summary.resizeColumnsToContents()
        echo = self.current_echo()
        si_head = self.summary.horizontalHeaderItem(1)
        want = f"Norm SI e{echo}" if echo else "Norm SI"
        if si_head is not None and si_head.text() != want:
            si_head.setText(want)
            self.summary.resizeColumnsToContents()
        cells = [
            [
                (f"{r['area']} {r['hemisphere']}", ""),
                (fmt_number(r["norm_si"], ".2f"), r["norm_si_note"]),
                (fmt_number(r["thickness_mm"], ".2f"), ""),
                (fmt_number(r["chi_ppb"], ".0f"), ""),
                (fmt_number(r["ratio"], ".2f"), ""),
            ]
            for r in recs
        ]
        self.summary.fill([(r["area"], r["hemisphere"]) for r in recs], cells)

    def _fill_long(self, rows: list[dict[str, Any]] | None = None) -> None:
        """Fill the long table (only while its tab is shown; otherwise on showing it)."""
        if not self._long_dirty or self._hide or self.tabs.currentWidget() is not self.table:
            return
        rows = self.rows() if rows is None else rows
        keys, cells = [], []
        for r in rows:
            chi = r.get("chi_ppm")
            r = dict(r, _map=_map_name(r), _chi_ppb=None if chi is None else 1000.0 * chi)
            keys.append((r["slot"], r["_map"]))
            cells.append(
                [
                    (
                        fmt_number(r.get(key), f),
                        (r.get("normalised_si_note") or "") if key == "normalised_si" else "",
                    )
                    for _h, key, f in TABLE_COLUMNS
                ]
            )
        self.table.fill(keys, cells)
        self.tabs.setTabText(1, f"All rows ({len(rows)})")
        self._long_dirty = False

    # ------------------------------------------------------------------ profile
    def _on_case_changed(self) -> None:
        self._last_caliper = None
        self._profile_key = _STALE
        self._refresh_echoes()

    def _on_annotation_changed(self, slot_id: str) -> None:
        if self._is_caliper(slot_id):
            aset = self.ctl.annset
            self._last_caliper = slot_id if aset is not None and slot_id in aset else None

    def _on_active_changed(self, slot_id: str) -> None:
        aset = self.ctl.annset
        if aset is not None and slot_id in aset and self._is_caliper(slot_id):
            self._last_caliper = slot_id
        self._refresh_profile()

    def _is_caliper(self, slot_id: str) -> bool:
        try:
            return self.ctl.protocol.slot(slot_id).kind == "caliper"
        except Exception:  # a slot of another protocol
            return False

    def _on_echo_changed(self, _i: int) -> None:
        self._refresh()

    def _refresh_echoes(self) -> None:
        self.echo_box.blockSignals(True)
        self.echo_box.clear()
        eng = self.ctl.engine
        if eng is not None:
            vols = eng.reference.volumes()
            tes = eng.reference.echo_times_ms or []
            for n, _v in vols:
                e = n or 1
                te = f" · TE {tes[e - 1]:g} ms" if len(tes) >= e else ""
                self.echo_box.addItem(f"echo {e}{te}", e)
            self.echo_box.setCurrentIndex(len(vols) - 1)
        self.echo_box.blockSignals(False)

    def profile_slot(self) -> str | None:
        """The caliper whose profile is shown: the active slot, else the last edited one."""
        ctl = self.ctl
        if ctl.annset is None:
            return None
        if ctl.protocol.slot(ctl.active).kind == "caliper" and ctl.active in ctl.annset:
            return ctl.active
        if self._last_caliper is not None and self._last_caliper in ctl.annset:
            return self._last_caliper
        return ctl.active if ctl.protocol.slot(ctl.active).kind == "caliper" else None

    def _refresh_profile(self) -> None:
        sid = self.profile_slot() if self.ctl.has_case else None
        ann = self.ctl.shown(sid) if sid else None
        echo = self.current_echo()
        # annotations are immutable: the same object on the same echo is the same profile,
        # so an edit of another slot neither resamples nor redraws it
        if self._profile_key is not _STALE and self._profile_key == (sid, echo, ann):
            return
        prof, sug = self.ctl.profile(sid, echo=echo) if sid else (None, None)
        self.accept_button.setEnabled(bool(prof is not None and sug.ok))
        self._profile_key = (sid, echo, ann)
        self._draw_profile(sid, prof, sug)

    def _draw_profile(self, sid: str | None, prof: Any, sug: Any) -> None:
        if prof is None and self._profile_empty:
            # the plot is already empty (a case change detaches and attaches): only the
            # label may change; matplotlib is not redrawn
            self._set_empty_label()
            return
        self.profile_draws += 1
        self._profile_empty = prof is None
        ax = self.ax
        ax.clear()
        ax.set_facecolor("#262930")
        for s in ax.spines.values():
            s.set_color("#9aa3ad")
        ax.tick_params(colors="#d0d4d9", labelsize=7)
        if prof is None:
            self._set_empty_label()
            self.canvas.draw_idle()
            return
        label = self.ctl.protocol.slot(sid).label or sid
        self.profile_title.setText(f"Profile: {label}")
        ax.plot(prof.x_mm, prof.values, color="#e0e0e0", lw=1.2)
        ax.axvspan(0, prof.length_mm, color="#ff5cf0", alpha=0.15, label="your caliper")
        if self._hide:
            text = "Caliper profile (numbers hidden)."
        else:
            text = f"Your caliper: {prof.length_mm:.2f} mm."
        if sug.ok:
            ax.axvline(sug.x1_mm, color="#ffd400", ls="--", lw=1)
            ax.axvline(sug.x2_mm, color="#ffd400", ls="--", lw=1, label="suggested")
            if not self._hide:
                text += (
                    f" Suggested (half-level edges of the dark band): {sug.thickness_mm:.2f} mm."
                )
        else:
            text += f" No suggestion: {sug.reason}."
        ax.set_xlabel("distance along caliper (mm)", color="#d0d4d9", fontsize=7)
        ax.set_ylabel("signal (a.u.)", color="#d0d4d9", fontsize=7)
        if self._hide:
            ax.set_yticklabels([])
        ax.legend(fontsize=6, loc="lower right", facecolor="#262930", labelcolor="#d0d4d9")
        self.profile_label.setText(text)
        self.canvas.draw_idle()

    def _set_empty_label(self) -> None:
        self.profile_title.setText("")
        self.profile_label.setText(
            "Select a caliper slot to see its profile." if self.ctl.has_case else ""
        )

    def _on_accept(self) -> None:
        sid = self.profile_slot()
        if sid is not None:
            self.ctl.accept_suggestion(sid, echo=self.current_echo())


def _f(v: Any) -> float:
    try:
        return float(v) if v is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")
