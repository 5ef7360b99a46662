"""Dock widget "M1 spectrum": the spectrum of the MRSI voxel under the cursor, its QC, and
the QC thresholds (a small magicgui form that re-masks the ratio maps live).

The spectrum is the real part against ppm, 4.2 -> 0.2 ppm (reversed, as spectroscopists
plot it): data black, fit red, baseline blue, residual grey below. The y range is the same
for every voxel of a case, so hovering compares voxels; a move redraws only the lines
(matplotlib blitting). In a blinded reader session the dock shows data only: no file or
folder names, no header fields (:attr:`~napari_m1._mrsi_view.MRSIView.blinded`); when the
study hides live numbers, the %SD/FWHM/S/N table and ratio values are hidden too (the
spectrum and the kept/excluded verdict stay).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QEvent, QTimer, Signal
from qtpy.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .._mrsi_view import REASON_COLOURS, VoxelHit, get_mrsi_view
from .._reading import get_reading_tools
from ..mrsi import PPM_WINDOW, QCThresholds

if TYPE_CHECKING:
    import napari

__all__ = ["SpectrumWidget", "ThresholdForm"]

QC_HEADERS = ("Metabolite", "%SD", "FWHM ppm", "S/N")
#: a study that hides live numbers (``set_numbers_hidden``): the QC verdict stays
HIDDEN_TEXT = "Numbers hidden for this read (study setting)."
LINES = (  # name, colour, width, style
    ("data", "black", 1.0, "-"),
    ("fit", "#d62728", 1.2, "-"),
    ("baseline", "#1f77b4", 1.0, "--"),
    ("residual", "#7f7f7f", 0.8, "-"),
)


def _num(v: float, digits: int) -> str:
    return "" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


class ThresholdForm(QWidget):
    """%SD, FWHM (ppm) and S/N thresholds (magicgui); every change re-masks live."""

    def __init__(self, view: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from magicgui.widgets import Container, FloatSpinBox

        th = view.thresholds
        self.view = view
        self.max_sd = FloatSpinBox(value=th.max_sd_pct, min=0, max=999, step=1, label="%SD ≤")
        self.max_sd.native.setDecimals(1)
        self.max_fwhm = FloatSpinBox(
            value=th.max_fwhm_ppm, min=0, max=2, step=0.01, label="FWHM ≤"
        )
        self.max_fwhm.native.setSuffix(" ppm")
        self.min_snr = FloatSpinBox(value=th.min_snr, min=0, max=1000, step=0.5, label="S/N ≥")
        self.form = Container(
            widgets=[self.max_sd, self.max_fwhm, self.min_snr], labels=True, layout="horizontal"
        )
        self.form.native.layout().setContentsMargins(0, 0, 0, 0)
        tips = {
            self.max_sd: "Largest %SD (Cramér-Rao bound) kept",
            self.max_fwhm: "Largest linewidth (FWHM, ppm) kept",
            self.min_snr: "Smallest S/N kept",
        }
        for w, tip in tips.items():
            w.tooltip = f"{tip}; a voxel failing it (numerator or tCr) is excluded (NaN)"
            w.native.setButtonSymbols(w.native.ButtonSymbols.NoButtons)  # narrow: fits the dock
            w.native.setMinimumWidth(48)
            w.changed.connect(self._on_changed)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.form.native)

    def thresholds(self) -> QCThresholds:
        return QCThresholds(
            max_sd_pct=float(self.max_sd.value),
            max_fwhm_ppm=float(self.max_fwhm.value),
            min_snr=float(self.min_snr.value),
        )

    def _on_changed(self, _value: Any = None) -> None:
        self.view.set_thresholds(self.thresholds())


class SpectrumWidget(QWidget):
    """See the module docstring.

    Attributes
    ----------
    hit : VoxelHit or None
        The voxel shown.
    draws, paints : int
        Spectrum redraws so far, and paint events of the plot (test and benchmark seams).

    Signals
    -------
    spectra_ready()
        The case's spectra are in memory (read in a worker thread).
    """

    spectra_ready = Signal()

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.view = get_mrsi_view(napari_viewer)
        self.view.defer = lambda f: QTimer.singleShot(0, f)  # after the frame that added it
        self.hit: VoxelHit | None = None
        self.draws = 0
        self._bg: Any = None
        self._loading: Any = None

        self.source_label = QLabel("")
        self.source_label.setObjectName("m1_spectrum_source")
        self.source_label.setWordWrap(True)
        self.voxel_label = QLabel("Hover over the MRSI grid to see a voxel's spectrum.")
        self.voxel_label.setWordWrap(True)
        self.verdict_label = QLabel("")
        self.verdict_label.setWordWrap(True)

        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4.0, 2.4), dpi=80, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(140)
        self.ax = self.figure.add_subplot(111)
        self.ax.set_xlim(*PPM_WINDOW)  # 4.2 -> 0.2: ppm reversed
        self.ax.set_xlabel("chemical shift (ppm)")
        self.ax.set_yticks([])
        self.ax.tick_params(labelsize=8)
        self.lines = {}
        for name, colour, width, style in LINES:
            (self.lines[name],) = self.ax.plot(
                [], [], color=colour, lw=width, ls=style, label=name, animated=True
            )
        self.ax.legend(loc="upper left", fontsize=7, frameon=False, ncol=4)
        self.canvas.mpl_connect("draw_event", self._on_draw)
        self.paints = 0  # paint events of the plot (a benchmark seam: pixels on screen)
        self.canvas.installEventFilter(self)

        self.qc_table = QTableWidget(0, len(QC_HEADERS))
        self.qc_table.setHorizontalHeaderLabels(QC_HEADERS)
        self.qc_table.verticalHeader().setVisible(False)
        self.qc_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.qc_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.qc_table.verticalHeader().setDefaultSectionSize(20)
        rows_h = 20 * 4
        self.qc_table.setFixedHeight(
            rows_h + self.qc_table.horizontalHeader().sizeHint().height() + 4
        )
        self.thresholds = ThresholdForm(self.view)

        legend = QHBoxLayout()
        legend.addWidget(QLabel("Excluded:"))
        for reason, colour in REASON_COLOURS.items():
            sw = QLabel(f"■ {reason}")
            sw.setStyleSheet(f"color: {colour}")
            sw.setToolTip(_REASON_TIPS[reason])
            legend.addWidget(sw)
        legend.addStretch(1)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(3)
        lay.addWidget(self.source_label)
        lay.addWidget(self.voxel_label)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.qc_table)
        lay.addWidget(self.verdict_label)
        lay.addWidget(self.thresholds)
        lay.addLayout(legend)

        napari_viewer.cursor.events.position.connect(self._on_cursor)
        self.view.sources_changed.connect(self._on_sources)
        self.view.thresholds_changed.connect(self._on_thresholds)
        self._on_sources()

    # ------------------------------------------------------------------ sources
    def _on_sources(self) -> None:
        src = self.view.source()
        self.hit = None
        self._show_source_text()
        sp = None if src is None else src.spectra
        if sp is None or (sp.loaded and getattr(sp, "y_range", None) is not None):
            self._set_y_range()
            return
        from napari.qt.threading import create_worker

        worker = create_worker(sp.load, _ignore_errors=True)
        worker.returned.connect(self._on_spectra_loaded)
        worker.errored.connect(self._on_spectra_failed)
        self._loading = worker
        worker.start()

    def _on_spectra_loaded(self, _result: Any = None) -> None:
        self._loading = None
        self._set_y_range()
        self._show_source_text()
        self.spectra_ready.emit()
        if self.hit is not None:
            self.show_voxel(self.hit)

    def _on_spectra_failed(self, exc: BaseException) -> None:
        self._loading = None
        from napari.utils.notifications import show_warning

        show_warning(f"MRSI spectra not shown: {str(exc).splitlines()[0] if str(exc) else exc}")

    def _set_y_range(self) -> None:
        src = self.view.source()
        sp = None if src is None else src.spectra
        lo, hi = getattr(sp, "y_range", None) or (0.0, 1.0)
        span = hi - lo
        self._res_offset = lo - 0.15 * span  # the residual sits below the spectrum
        self.ax.set_ylim(lo - 0.3 * span, hi)
        self.canvas.draw()

    def _show_source_text(self) -> None:
        """What the spectra come from: the fit's kind always; folder and header fields
        only outside a blinded session."""
        src = self.view.source()
        if src is None:
            self.source_label.setText("No MRSI fit in this case.")
            return
        sp = src.spectra
        kind = getattr(sp, "kind", "no spectra (QC only)")
        if self.view.blinded:
            self.source_label.setText(f"Spectra: {kind}")
            return
        mhz = src.fit.spectrometer_frequency_mhz
        extra = f" · {mhz:.1f} MHz" if mhz else ""
        self.source_label.setText(f"Spectra: {kind} · {src.fit.source.name}{extra}")

    # ------------------------------------------------------------------ hover
    def _on_cursor(self, event: Any = None) -> None:
        if not self.isVisible():
            return  # a hidden tab or closed dock: nothing to redraw (refreshed when shown)
        hit = self.view.voxel_at(self.viewer.cursor.position)
        if hit is None:
            return  # off the grid: keep the last voxel on screen
        if self.hit is not None and hit.ijk == self.hit.ijk and hit.source is self.hit.source:
            return
        self.show_voxel(hit)

    def eventFilter(self, obj: Any, event: Any) -> bool:
        if obj is self.canvas and event.type() == QEvent.Type.Paint:
            self.paints += 1
        return False

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self.hit is not None:
            self.show_voxel(self.hit)

    def _on_thresholds(self, _th: Any = None) -> None:
        if self.hit is not None:
            self._show_qc(self.hit)

    def show_voxel(self, hit: VoxelHit) -> None:
        """Draw ``hit``'s spectra and list its QC."""
        self.hit = hit
        i, j, k = hit.ijk
        c = hit.source.fit.affine[:3, :3] @ [i, j, k] + hit.source.fit.affine[:3, 3]
        self.voxel_label.setText(
            f"Voxel ({i}, {j}, {k}) · centre RAS ({c[0]:.1f}, {c[1]:.1f}, {c[2]:.1f}) mm"
        )
        self._draw_spectrum(hit)
        self._show_qc(hit)

    def _draw_spectrum(self, hit: VoxelHit) -> None:
        sp = hit.source.spectra
        spec = sp.at(hit.ijk) if sp is not None and sp.loaded and self._loading is None else None
        for name, line in self.lines.items():
            y = None if spec is None else getattr(spec, name)
            if y is None:
                line.set_data([], [])
            else:
                line.set_data(spec.ppm, y + self._res_offset if name == "residual" else y)
        if self._bg is None:
            self.canvas.draw()
        else:
            self.canvas.restore_region(self._bg)
            for line in self.lines.values():
                self.ax.draw_artist(line)
            # painted with the window's next frame (a synchronous blit would force an
            # extra flush of the whole window, napari's OpenGL canvas included)
            self.canvas.update()
        self.draws += 1

    def _on_draw(self, _event: Any = None) -> None:
        self._bg = self.canvas.copy_from_bbox(self.ax.bbox)
        for line in self.lines.values():
            self.ax.draw_artist(line)

    def _show_qc(self, hit: VoxelHit) -> None:
        qc = hit.source.voxel_qc(hit.ijk)
        t = self.qc_table
        if get_reading_tools(self.viewer).hide_values:  # the study hides live numbers
            t.setRowCount(0)
            self.verdict_label.setText(f"QC {qc.verdict}. {HIDDEN_TEXT}")
            return
        t.setRowCount(len(qc.metabolites))
        for r, (name, sd, fwhm, snr) in enumerate(qc.metabolites):
            for c, text in enumerate((name, _num(sd, 0), _num(fwhm, 3), _num(snr, 1))):
                item = t.item(r, c)
                if item is None:
                    t.setItem(r, c, QTableWidgetItem(text))
                elif item.text() != text:
                    item.setText(text)
        parts = []
        for name, value, failed in qc.ratios:
            v = _num(value, 2) or "n/a"
            state = f"excluded ({', '.join(failed)})" if failed else "kept"
            parts.append(f"{name} {v}: {state}")
        self.verdict_label.setText(f"QC {qc.verdict}. " + " · ".join(parts))


_REASON_TIPS = {
    "crlb": "%SD (Cramér-Rao bound) above the threshold, or undefined",
    "fwhm": "linewidth (FWHM, ppm) above the threshold",
    "snr": "signal-to-noise below the threshold",
    "mask": "outside the MRSI mask",
}
