"""Dock widget "M1 study report": build the study report from the coordinator's files.

Only wiring: the report itself is :func:`napari_m1.stats.build_report` (pure, no Qt),
run in a napari worker thread so the viewer stays responsive.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QUrl, Signal
from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..errors import M1Error

if TYPE_CHECKING:
    import napari

    from ..stats import ReportResult

__all__ = ["ReportWidget"]

log = logging.getLogger(__name__)

CSV_FILTER = "CSV files (*.csv);;All files (*)"


class _PathField(QWidget):
    """A line edit with a "…" button that opens a file or folder dialog."""

    def __init__(self, placeholder: str, *, folder: bool = False, title: str = "") -> None:
        super().__init__()
        self.folder = folder
        self.title = title or placeholder
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.button = QPushButton("…")
        self.button.setFixedWidth(32)
        self.button.setToolTip(f"Choose {self.title.lower()}")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.edit)
        lay.addWidget(self.button)
        self.button.clicked.connect(self._on_browse_clicked)

    def path(self) -> Path | None:
        text = self.edit.text().strip()
        return Path(text).expanduser() if text else None

    def set_path(self, path: str | Path | None) -> None:
        self.edit.setText("" if path is None else str(path))

    def _on_browse_clicked(self) -> None:
        start = self.edit.text() or str(Path.home())
        if self.folder:
            chosen = QFileDialog.getExistingDirectory(self, self.title, start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, self.title, start, CSV_FILTER)
        if chosen:
            self.set_path(chosen)


class ReportWidget(QWidget):
    """Build the M1 study report (``report.html`` + ``tables/*.csv``) from three CSVs.

    Signals
    -------
    report_built(str)
        Emitted with the path of ``report.html`` when the report was written.
    report_failed(str)
        Emitted with the one-line error message when an input was unusable.
    """

    report_built = Signal(str)
    report_failed = Signal(str)

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self._worker: Any = None
        self.result: ReportResult | None = None

        self.readings = _PathField("unblinded readings.csv", title="Unblinded readings CSV")
        self.clinical = _PathField("clinical.csv", title="Clinical CSV")
        self.measurements = _PathField(
            "measurements.csv (optional)", title="Measurements CSV (optional)"
        )
        self.out_dir = _PathField("report folder", folder=True, title="Report folder")
        self.echo = QSpinBox()
        self.echo.setRange(0, 64)
        self.echo.setSpecialValueText("last echo")
        self.echo.setToolTip("GRE echo used for normalised SI (1-based); default the last one")
        self.build_button = QPushButton("Build report")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.link = QLabel("")
        self.link.setOpenExternalLinks(True)
        self.link.setWordWrap(True)
        self.issues = QListWidget()
        self.issues.setWordWrap(True)
        self.issues.setSpacing(3)  # wrapped items stay apart
        self.issues.setToolTip("Data issues: what was excluded or could not be computed")

        form = QFormLayout()
        form.addRow("Readings", self.readings)
        form.addRow("Clinical", self.clinical)
        form.addRow("Measurements", self.measurements)
        form.addRow("Output", self.out_dir)
        form.addRow("SI echo", self.echo)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.build_button)
        lay.addWidget(self.status)
        lay.addWidget(self.link)
        lay.addWidget(QLabel("Data issues"))
        lay.addWidget(self.issues, 1)

        self.build_button.clicked.connect(self._on_build_clicked)

    # ------------------------------------------------------------------ actions
    def build(self, *, block: bool = False) -> None:
        """Build the report from the fields' paths.

        ``block=True`` runs in the calling thread (tests, scripts); otherwise the
        work runs in a napari worker thread and the result is shown when it ends.
        """
        readings, clinical, out = (
            self.readings.path(),
            self.clinical.path(),
            self.out_dir.path(),
        )
        missing = [
            name
            for name, p in (("readings", readings), ("clinical", clinical), ("output folder", out))
            if p is None
        ]
        if missing:
            self._on_failed(M1Error(f"choose the {' and '.join(missing)} first"))
            return
        measurements = self.measurements.path()
        echo = self.echo.value() or None

        def job() -> ReportResult:
            from ..stats import build_report

            return build_report(readings, clinical, out, measurements=measurements, echo=echo)

        self.status.setText("Building report…")
        self.link.setText("")
        self.issues.clear()
        self.build_button.setEnabled(False)
        if block:
            try:
                result = job()
            except M1Error as exc:
                self._on_failed(exc)
                return
            self._on_built(result)
            return
        from napari.qt.threading import create_worker

        self._worker = create_worker(job, _ignore_errors=True)
        self._worker.returned.connect(self._on_built)
        self._worker.errored.connect(self._on_failed)
        self._worker.start()

    # ------------------------------------------------------------------ handlers
    def _on_build_clicked(self) -> None:
        self.build()

    def _on_built(self, result: ReportResult) -> None:
        self.build_button.setEnabled(True)
        self.result = result
        n = result.n_issues
        self.status.setText(
            f"Report written; {n} data issue{'s' if n != 1 else ''}." if n else "Report written."
        )
        url = QUrl.fromLocalFile(str(Path(result.html).resolve())).toString()
        self.link.setText(
            f"<a href='{html.escape(url, quote=True)}'>{html.escape(str(result.html))}</a>"
        )
        for issue in result.issues:
            line = issue.one_line()
            self.issues.addItem(line if issue.severity == "issue" else f"note: {line}")
        if n:
            from napari.utils.notifications import show_warning

            show_warning(f"M1 report: {n} data issue(s); see the dock or the report")
        self.report_built.emit(str(result.html))

    def _on_failed(self, exc: BaseException) -> None:
        self.build_button.setEnabled(True)
        msg = str(exc) if isinstance(exc, M1Error) else f"{type(exc).__name__}: {exc}"
        msg = msg.splitlines()[0] if msg else type(exc).__name__
        log.debug("report failed: %s", msg)
        self.status.setText(
            f"<span style='color:#e55'>Could not build the report: {html.escape(msg)}</span>"
        )
        from napari.utils.notifications import show_error

        show_error(msg)
        self.report_failed.emit(msg)
